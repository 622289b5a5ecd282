//! The loop's mailbox: closures posted to the loop and tasks woken for it.
//!
//! # Protocol
//!
//! Any thread may `post` a job or `schedule` a task; only the loop thread calls
//! `take_work`. One mutex guards the queues and a `sleeping` flag. The loop
//! sets `sleeping` under the lock when it finds no work, and only then blocks
//! (in epoll, or on a stand-in under loom). A producer that finds `sleeping`
//! set clears it and wakes the loop once, after unlocking; a producer that
//! finds it clear knows the loop will look at the queues again before it
//! sleeps, so it makes no system call. Because the flag and the queues change
//! under one lock, a wake-up cannot be lost: either the loop sees the job
//! before it sets `sleeping`, or the producer sees `sleeping` and wakes it.
//!
//! After `close`, `post` fails and hands the job back; the loop drains what
//! was queued before it.

use std::collections::VecDeque;

use crate::placement::WakePlace;
use crate::sync::Mutex;

/// A unit of work posted to the loop thread.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// How the mailbox wakes the loop thread when it is blocked.
///
/// On a real loop this writes to a `mio::Waker`; in loom models a thread
/// standing in for the loop waits on a condition variable instead.
pub trait Wake: Send + Sync {
    /// Makes the loop's next (or current) blocking wait return.
    fn wake(&self);
}

/// What the loop should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Run the jobs and poll the tasks handed out.
    Work,
    /// Nothing to do: block until woken.
    Sleep,
    /// Nothing to do, and the loop asked not to sleep yet (it is spinning):
    /// producers will not wake it, so it must look again soon.
    Idle,
    /// Closed and drained: exit.
    Exit,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    ready: Vec<usize>,
    sleeping: bool,
    closed: bool,
    wakeups: u64,
    /// Where the loop wakes when a producer wakes it (`placement`).
    place: WakePlace,
}

/// The queues between the loop thread and every other thread.
pub struct Mailbox<W: Wake> {
    state: Mutex<State>,
    waker: W,
}

impl<W: Wake> Mailbox<W> {
    /// An open, empty mailbox that wakes the loop with `waker`.
    pub fn new(waker: W) -> Self {
        Self {
            state: Mutex::new(State::default()),
            waker,
        }
    }

    /// Queues `job` to run on the loop thread. Fails, returning the job, once
    /// the mailbox is closed.
    pub fn post(&self, job: Job) -> Result<(), Job> {
        let wake = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(job);
            }
            state.jobs.push_back(job);
            Self::claim_wakeup(&mut state)
        };
        if wake {
            self.waker.wake();
        }
        Ok(())
    }

    /// Marks task `id` ready to be polled. Ignored once closed.
    pub fn schedule(&self, id: usize) {
        let wake = {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            state.ready.push(id);
            Self::claim_wakeup(&mut state)
        };
        if wake {
            self.waker.wake();
        }
    }

    fn claim_wakeup(state: &mut State) -> bool {
        let wake = std::mem::replace(&mut state.sleeping, false);
        if wake {
            state.wakeups += 1;
            state.place.waking();
        }
        wake
    }

    /// Refuses further posts and wakes the loop so that it drains and exits.
    /// Returns false if it was already closed.
    pub fn close(&self) -> bool {
        let wake = {
            let mut state = self.state.lock();
            if state.closed {
                return false;
            }
            state.closed = true;
            Self::claim_wakeup(&mut state)
        };
        if wake {
            self.waker.wake();
        }
        true
    }

    /// Closes the mailbox and hands back the jobs still queued, for a loop
    /// thread that is dying (a panic escaped it) and will never run them:
    /// dropping them fails the callers waiting for them.
    pub fn abandon(&self) -> VecDeque<Job> {
        let mut state = self.state.lock();
        state.closed = true;
        state.ready.clear();
        // The loop thread is the caller: it sleeps no more, so no producer
        // may narrow it (its thread id may soon be another thread's).
        state.place.awake().apply();
        std::mem::take(&mut state.jobs)
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Loop thread only: moves queued jobs and ready tasks into the given
    /// buffers and says what to do. With nothing to do, it returns
    /// [`Next::Idle`] if `may_sleep` is false; otherwise [`Next::Sleep`],
    /// recording that the loop is about to block, so the next producer wakes
    /// it.
    pub fn take_work(
        &self,
        jobs: &mut VecDeque<Job>,
        ready: &mut Vec<usize>,
        may_sleep: bool,
    ) -> Next {
        let mut state = self.state.lock();
        if state.jobs.is_empty() && state.ready.is_empty() {
            if state.closed {
                return Next::Exit;
            }
            if !may_sleep {
                return Next::Idle;
            }
            // A deliberately broken protocol that the loom models must reject
            // (`--cfg loom_broken_wakeup`): the loop decides to sleep under one
            // lock and records it under another, so a job posted in between
            // finds `sleeping` clear, wakes nobody, and waits forever.
            #[cfg(all(loom, loom_broken_wakeup))]
            {
                drop(state);
                state = self.state.lock();
            }
            state.sleeping = true;
            state.place.going_to_sleep();
            return Next::Sleep;
        }
        state.sleeping = false;
        std::mem::swap(jobs, &mut state.jobs);
        std::mem::swap(ready, &mut state.ready);
        Next::Work
    }

    /// Loop thread only: the loop returned from its blocking wait (woken by
    /// a socket, or by a producer). Until it next finds no work, producers
    /// need not wake it; this also keeps tasks woken by socket readiness on
    /// the loop thread itself from writing to the loop's own waker.
    /// If the producer that woke it narrowed its CPU mask to wake it near
    /// itself (see `placement`), the loop gets its own mask back here.
    pub fn awake(&self) {
        let restore = {
            let mut state = self.state.lock();
            state.sleeping = false;
            state.place.awake()
        };
        restore.apply();
    }

    /// How many times a producer had to wake the loop (a system call each).
    pub fn wakeups(&self) -> u64 {
        self.state.lock().wakeups
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::global::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_loop_woken_by_a_producer_is_woken_once_and_keeps_its_mask() {
        let mailbox = Mailbox::new(CountWakes::default());
        let (mut jobs, mut ready) = (VecDeque::new(), Vec::new());
        let mask = crate::placement::tests::affinity();
        // The loop is awake: a post wakes nobody.
        assert!(mailbox.post(Box::new(|| {})).is_ok());
        assert_eq!(mailbox.take_work(&mut jobs, &mut ready, true), Next::Work);
        assert_eq!(mailbox.wakeups(), 0);
        // The loop goes to sleep: the next post wakes it, once.
        assert_eq!(mailbox.take_work(&mut jobs, &mut ready, true), Next::Sleep);
        mailbox.schedule(7);
        mailbox.schedule(8);
        assert_eq!(mailbox.waker.0.load(Ordering::Relaxed), 1);
        assert_eq!(mailbox.wakeups(), 1);
        // Here the "loop" and the producer are one thread, on one CPU: no
        // mask is narrowed, and none is left narrowed.
        mailbox.awake();
        assert_eq!(crate::placement::tests::affinity(), mask);
    }
}
