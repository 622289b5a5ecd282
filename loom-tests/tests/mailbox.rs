//! Loom models of the loop's mailbox: posting jobs, scheduling tasks, the
//! `sleeping` wake-up protocol, `close`, and the `sync` round trip.
//!
//! A loom thread stands in for the event loop: it runs `take_work` like
//! `EventLoop::run` does and, when told [`Next::Sleep`], blocks on a
//! [`Doorbell`] instead of `mio::Poll`.
#![cfg(loom)]

use std::collections::VecDeque;

use loom_tests::model;
use multiprocess_event_loop::mailbox::{Job, Mailbox, Next, Wake};
use multiprocess_event_loop::sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering, thread};
use multiprocess_event_loop::{Error, Waiter};

/// Stands in for `mio::Poll` plus its `mio::Waker`: a ring that comes before
/// the loop blocks is kept (like the eventfd write behind `mio::Waker`), so the
/// next `sleep` returns at once.
struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            rung: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    fn sleep(&self) {
        let mut rung = self.rung.lock();
        while !*rung {
            rung = self.cv.wait(rung);
        }
        *rung = false;
    }

    fn ring(&self) {
        *self.rung.lock() = true;
        self.cv.notify_one();
    }
}

/// The mailbox's [`Wake`] seam, wired to a [`Doorbell`].
struct Bell(Arc<Doorbell>);

impl Wake for Bell {
    fn wake(&self) {
        self.0.ring();
    }
}

/// Counts arrivals and lets a thread block until `n` have arrived: how the
/// models learn that jobs ran without calling `close`, whose own wake-up
/// would hide a lost one.
struct Latch {
    count: Mutex<usize>,
    cv: Condvar,
}

impl Latch {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            count: Mutex::new(0),
            cv: Condvar::new(),
        })
    }

    fn arrive(&self) {
        *self.count.lock() += 1;
        self.cv.notify_all();
    }

    fn wait_for(&self, n: usize) {
        let mut count = self.count.lock();
        while *count < n {
            count = self.cv.wait(count);
        }
    }
}

/// A mailbox and the stand-in loop thread draining it.
struct Loop {
    mailbox: Arc<Mailbox<Bell>>,
    thread: thread::JoinHandle<Stats>,
}

/// What the stand-in loop saw, returned when it exits.
struct Stats {
    /// Task ids handed out by `take_work`, in order.
    polled: Vec<usize>,
    /// How many times it blocked on the doorbell.
    sleeps: u64,
    /// How many posted jobs it ran.
    jobs: usize,
}

impl Loop {
    /// Starts the stand-in loop; `on_task` is called for each ready task, as
    /// the real loop polls it.
    fn start(on_task: impl Fn(usize) + Send + 'static) -> Self {
        let doorbell = Doorbell::new();
        let mailbox = Arc::new(Mailbox::new(Bell(doorbell.clone())));
        let thread = {
            let mailbox = mailbox.clone();
            thread::spawn(move || {
                let mut jobs = VecDeque::new();
                let mut ready = Vec::new();
                let mut stats = Stats {
                    polled: Vec::new(),
                    sleeps: 0,
                    jobs: 0,
                };
                // Like `EventLoop::run`, the stand-in spins once (looks
                // without offering to sleep) before it sleeps, so that the
                // models also cover work arriving while the loop spins.
                let mut spun = false;
                loop {
                    match mailbox.take_work(&mut jobs, &mut ready, spun) {
                        Next::Work => {
                            for job in jobs.drain(..) {
                                job();
                                stats.jobs += 1;
                            }
                            for id in ready.drain(..) {
                                on_task(id);
                                stats.polled.push(id);
                            }
                            spun = false;
                        }
                        Next::Idle => spun = true,
                        Next::Sleep => {
                            stats.sleeps += 1;
                            doorbell.sleep();
                            // As `EventLoop::run` does once its poll returns.
                            mailbox.awake();
                            spun = false;
                        }
                        Next::Exit => return stats,
                    }
                }
            })
        };
        Self { mailbox, thread }
    }

    fn join(self) -> Stats {
        self.thread
            .join()
            .expect("the stand-in loop thread panicked")
    }
}

/// A job that adds `bit` to `counter` and then arrives at `latch`.
fn job(counter: &Arc<AtomicUsize>, latch: &Arc<Latch>, bit: usize) -> Job {
    let counter = counter.clone();
    let latch = latch.clone();
    Box::new(move || {
        counter.fetch_add(bit, Ordering::SeqCst);
        latch.arrive();
    })
}

/// A job posted and a task scheduled by two other threads both reach the loop
/// without `close`, each exactly once, and the loop then drains and exits.
///
/// Why it holds: the loop decides to sleep and sets `sleeping` under the same
/// lock under which producers queue work and read the flag. So either the loop
/// sees the new work before it sleeps, or the producer sees `sleeping` and
/// rings the doorbell; a ring that comes before the loop blocks is kept. Each
/// ring clears the flag, so there is at most one wake-up (a system call on the
/// real loop) per sleep. After `close`, `post` hands the job back unrun.
#[test]
fn posted_jobs_and_scheduled_tasks_run_once_without_lost_wakeups() {
    model(|| {
        let counter = Arc::new(AtomicUsize::new(0));
        let arrived = Latch::new();
        let event_loop = {
            let arrived = arrived.clone();
            Loop::start(move |_| arrived.arrive())
        };
        let mailbox = event_loop.mailbox.clone();

        let producer = {
            let mailbox = mailbox.clone();
            thread::spawn(move || mailbox.schedule(7))
        };
        assert!(mailbox.post(job(&counter, &arrived, 1)).is_ok());

        // Waiting here, not in `close`, is what catches a lost wake-up: a
        // lost one leaves this thread and the loop both blocked (a deadlock),
        // whereas `close` would wake the loop and hide it.
        arrived.wait_for(2);
        producer.join().expect("producer panicked");
        assert_eq!(counter.load(Ordering::SeqCst), 1);

        assert!(mailbox.close());
        assert!(
            !mailbox.close(),
            "a second close reports it was already closed"
        );
        let refused = mailbox
            .post(job(&counter, &arrived, 2))
            .expect_err("post after close must fail");
        mailbox.schedule(8); // ignored once closed

        let stats = event_loop.join();
        assert_eq!(stats.polled, vec![7]);
        assert!(
            mailbox.wakeups() <= stats.sleeps,
            "at most one wake-up per sleep"
        );
        assert_eq!(
            counter.load(Ordering::SeqCst),
            1,
            "the refused job must not have run"
        );

        // The job handed back is the one we posted, still runnable.
        refused();
        assert_eq!(counter.load(Ordering::SeqCst), 3);
    });
}

/// The loop's reference count reaching zero racing a last post. The thread
/// that drops the last `LoopHandle` closes the mailbox and joins the loop
/// thread, as `LoopHandle::drop` does off the loop, while a `LoopPoster` (a
/// worker handing over its join, say) posts two jobs. Each post either runs
/// exactly once, on the loop and before it exits, or is refused and handed
/// back unrun; once a post is refused, later ones are too; the loop exits,
/// and only after draining every job it accepted.
///
/// Why it holds: `post` checks `closed` and queues under the same lock `close`
/// sets it under, so each post is ordered entirely before or after the close
/// (and `closed` is never cleared); the loop answers `Exit` only when the
/// queue is empty and `closed` is set, so everything queued before the close
/// is drained first; and `close` claims the wake-up like a post, so a
/// sleeping loop hears about it and the join returns.
#[test]
fn last_reference_dropped_racing_a_post_runs_or_hands_back_each_job() {
    model(|| {
        let counter = Arc::new(AtomicUsize::new(0));
        let arrived = Latch::new();
        let event_loop = Loop::start(|_| {});
        let mailbox = event_loop.mailbox.clone();

        let last_handle = {
            let mailbox = mailbox.clone();
            thread::spawn(move || {
                assert!(mailbox.close());
                event_loop.join()
            })
        };
        let first = mailbox.post(job(&counter, &arrived, 1));
        let second = mailbox.post(job(&counter, &arrived, 2));

        let stats = last_handle
            .join()
            .expect("the last handle's thread panicked");
        assert!(
            first.is_ok() || second.is_err(),
            "a post after a refused one is refused too"
        );
        let accepted = usize::from(first.is_ok()) + usize::from(second.is_ok());
        assert_eq!(
            stats.jobs, accepted,
            "the loop ran every accepted job, and only those, before it exited"
        );
        let accepted_bits = if first.is_ok() { 1 } else { 0 } + if second.is_ok() { 2 } else { 0 };
        assert_eq!(
            counter.load(Ordering::SeqCst),
            accepted_bits,
            "a refused job must not run"
        );

        // The jobs handed back are the ones we posted, still runnable.
        for refused in [first, second].into_iter().filter_map(Result::err) {
            refused();
        }
        assert_eq!(counter.load(Ordering::SeqCst), 3);
    });
}

/// `LoopHandle::sync` as the event loop implements it (`sync_job`), on a
/// stand-in loop: post a job that sends the closure's result through a
/// `Waiter` reply, then wait for it.
///
/// (The real code uses `Waiter::current()`, a std `thread_local!`; loom runs
/// its threads on one OS thread, so the models create Waiters explicitly.)
fn sync(
    mailbox: &Mailbox<Bell>,
    f: impl FnOnce() -> u32 + Send + 'static,
) -> multiprocess_event_loop::Result<u32> {
    let waiter = Waiter::new("caller");
    let (slot, reply) = waiter.reply_slot::<u32>(Error::LoopShutDown);
    mailbox
        .post(Box::new(move || reply.send(Ok(f()))))
        .map_err(|_| Error::LoopShutDown)?;
    waiter.wait(&slot, || "the loop to run a closure".to_string())
}

/// Two threads `sync` with the loop at once: each gets its own value back.
///
/// Why it holds: the job reaches the loop (the mailbox protocol above), the
/// loop runs it and `Reply::send` stores the value in the caller's slot before
/// setting `notified` under the Waiter's lock; the caller looks at its slot
/// before it sleeps and sleeps only while `notified` is clear, so whichever
/// comes first, it wakes with the value.
#[test]
fn sync_round_trip_delivers_the_value() {
    model(|| {
        let event_loop = Loop::start(|_| {});
        let mailbox = event_loop.mailbox.clone();

        let other = {
            let mailbox = mailbox.clone();
            thread::spawn(move || sync(&mailbox, || 2).expect("sync failed"))
        };
        assert_eq!(sync(&mailbox, || 1).expect("sync failed"), 1);
        assert_eq!(other.join().expect("caller panicked"), 2);

        assert!(mailbox.close());
        event_loop.join();
    });
}

/// `sync` racing `close`: the caller gets the value or `LoopShutDown`, and
/// never hangs.
///
/// Why it holds: a refused post hands the job back and dropping it drops its
/// `Reply`, which delivers `LoopShutDown`; an accepted post is drained before
/// the loop exits (see `last_reference_dropped_racing_a_post_runs_or_hands_back_each_job`).
#[test]
fn sync_racing_close_gets_the_value_or_loop_shut_down() {
    model(|| {
        let event_loop = Loop::start(|_| {});
        let mailbox = event_loop.mailbox.clone();

        let closer = {
            let mailbox = mailbox.clone();
            thread::spawn(move || assert!(mailbox.close()))
        };
        match sync(&mailbox, || 1) {
            Ok(value) => assert_eq!(value, 1),
            Err(error) => assert!(
                matches!(error, Error::LoopShutDown),
                "unexpected error: {error}"
            ),
        }

        closer.join().expect("closer panicked");
        event_loop.join();
    });
}
