//! The per-thread Waiter: how a thread blocks for a reply and still runs the
//! work other threads post to it.
//!
//! # Protocol
//!
//! Every thread that makes calls (and every server worker) has one `Waiter`.
//! Other threads hand it two things:
//!
//! - **jobs** (`post`): closures that must run on this very thread, such as a
//!   callback from the peer while this thread is blocked in a call to it, or a
//!   request for a worker;
//! - **replies** (`Reply::send`): the value a blocked `wait` is waiting for.
//!
//! A reply is stored in its own [`Slot`] first and then `notified` is set under
//! the Waiter's lock; `wait` checks its slot before it sleeps and sleeps only
//! while no job is queued and `notified` is clear. So neither a job nor a reply
//! can be missed, and waits nest: a job run inside `wait` may itself `wait`
//! for a nested reply. A reply that arrives for an outer wait while an inner
//! one is running stays in its slot; the outer wait finds it as soon as the
//! inner one returns, because `wait` always looks at its slot before sleeping.
//! How deep waits nest is bounded by the thread's stack: `wait` counts the
//! jobs it runs, and a request refuses to start nested when too little stack
//! is left (`stack`).
//!
//! A worker thread runs `serve`, which runs jobs until `close`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;

use crate::error::{Error, Result};
use crate::mailbox::Job;
use crate::placement::{CpuHint, WakePlace};
use crate::spin::{History, Spin, yield_now};
#[cfg(not(loom))]
use crate::sync::Weak;
use crate::sync::global::{AtomicU64, Ordering};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    notified: bool,
    closed: bool,
    busy: bool,
    waiting_for: Vec<String>,
    /// Where the owning thread wakes when work wakes it (`placement`).
    place: WakePlace,
}

/// Blocks one thread until its reply arrives, running the jobs posted to that
/// thread in the meantime.
///
/// # Thread affinity
///
/// `wait` and `serve` must only be called by the thread the Waiter belongs to;
/// `post`, `close` and [`Reply::send`] may be called from any thread.
///
/// # Ordering
///
/// Jobs run in the order they were posted (FIFO), one at a time.
pub struct Waiter {
    state: Mutex<State>,
    cv: Condvar,
    /// Shared with whoever else keeps the thread's name (a worker's
    /// `ThreadServer` and thread-local), so it is stored once.
    name: Arc<str>,
    /// The CPU this thread spins on while it waits (see `placement`).
    spinning_on: CpuHint,
    /// Whether the thread may spin before it sleeps (see `spin`).
    spins: bool,
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Where a reply is left for a waiting thread.
pub struct Slot<T> {
    value: Mutex<Option<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn take(&self) -> Option<T> {
        self.value.lock().take()
    }
}

/// The sending side of a [`Slot`]: delivers one value and wakes the waiter.
///
/// Dropping a `Reply` without sending delivers the error it was created with,
/// so a waiting thread is never left behind when, say, the loop drops an
/// in-flight call because the connection died.
pub struct Reply<T> {
    slot: Option<Arc<Slot<Result<T>>>>,
    waiter: Arc<Waiter>,
    on_drop: OnDrop,
}

/// The error a [`Reply`] dropped unsent delivers: ready made, or made only
/// then (sparing a call the formatting of an error it almost never needs).
enum OnDrop {
    Ready(Error),
    Make(fn(&'static str) -> Error, &'static str),
}

impl OnDrop {
    fn into_error(self) -> Error {
        match self {
            OnDrop::Ready(error) => error,
            OnDrop::Make(make, what) => make(what),
        }
    }
}

impl<T> Reply<T> {
    /// Delivers `value` and wakes the waiting thread.
    pub fn send(mut self, value: Result<T>) {
        self.deliver(value);
    }

    fn deliver(&mut self, value: Result<T>) {
        if let Some(slot) = self.slot.take() {
            *slot.value.lock() = Some(value);
            self.waiter.notify();
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if self.slot.is_none() {
            return;
        }
        let on_drop = std::mem::replace(&mut self.on_drop, OnDrop::Ready(Error::LoopShutDown));
        let error = on_drop.into_error();
        // A deliberately broken protocol that the loom models must reject
        // (`--cfg loom_broken_reply`): a dropped `Reply` fills its slot but
        // does not wake the waiter, as if the waiter polled its slot. A
        // waiter already asleep never sees the error.
        #[cfg(all(loom, loom_broken_reply))]
        if let Some(slot) = self.slot.take() {
            *slot.value.lock() = Some(Err(error));
            return;
        }
        self.deliver(Err(error));
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Waiter>>> = const { RefCell::new(None) };
    /// What this thread's waits for replies have been like (adaptive
    /// spinning, see `spin`).
    static REPLY_WAITS: History = const { History::new() };
    /// What this thread's waits for its next job have been like (a worker
    /// between requests).
    static IDLE_WAITS: History = const { History::new() };
}

#[cfg(not(loom))]
static REGISTRY: Mutex<Vec<Weak<Waiter>>> = Mutex::new(Vec::new());

#[cfg(not(loom))]
fn register(waiter: &Arc<Waiter>) {
    let mut registry = REGISTRY.lock();
    registry.retain(|w| w.strong_count() > 0);
    registry.push(Arc::downgrade(waiter));
}

#[cfg(loom)]
fn register(_waiter: &Arc<Waiter>) {}

impl Waiter {
    /// A new Waiter for the thread called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Arc<Self> {
        Self::with_spinning(name.into(), true)
    }

    /// A new Waiter for the thread called `name` that never spins: it
    /// sleeps as soon as it has nothing to do. For a thread whose work
    /// nobody waits for (the loop's cleanup thread): spinning would buy it
    /// nothing and take a spinning place, and CPU time, from the threads a
    /// call goes through.
    pub fn never_spinning(name: impl Into<Arc<str>>) -> Arc<Self> {
        Self::with_spinning(name.into(), false)
    }

    fn with_spinning(name: Arc<str>, spins: bool) -> Arc<Self> {
        let waiter = Arc::new(Self {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            name,
            spinning_on: CpuHint::new(),
            spins,
        });
        register(&waiter);
        waiter
    }

    /// A spell of spinning for this Waiter's thread.
    fn spin(&self) -> Spin {
        if self.spins {
            Spin::for_waiter()
        } else {
            Spin::never()
        }
    }

    /// The calling thread's Waiter, created on first use.
    pub fn current() -> Arc<Waiter> {
        CURRENT.with(|current| {
            current
                .borrow_mut()
                .get_or_insert_with(|| Waiter::new(crate::thread_name()))
                .clone()
        })
    }

    /// Installs `waiter` as the calling thread's Waiter (for worker threads,
    /// whose Waiter is created before the thread starts).
    pub fn set_current(waiter: Arc<Waiter>) {
        CURRENT.with(|current| *current.borrow_mut() = Some(waiter));
    }

    /// The name of the thread this Waiter belongs to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A slot for one reply and the [`Reply`] that fills it. If the `Reply` is
    /// dropped unsent, the slot receives `on_drop`.
    pub fn reply_slot<T>(self: &Arc<Self>, on_drop: Error) -> (Arc<Slot<Result<T>>>, Reply<T>) {
        self.new_reply_slot(OnDrop::Ready(on_drop))
    }

    /// Like [`reply_slot`](Self::reply_slot), but the error for a `Reply`
    /// dropped unsent is made only then, by `make(what)`.
    pub fn reply_slot_with<T>(
        self: &Arc<Self>,
        make: fn(&'static str) -> Error,
        what: &'static str,
    ) -> (Arc<Slot<Result<T>>>, Reply<T>) {
        self.new_reply_slot(OnDrop::Make(make, what))
    }

    fn new_reply_slot<T>(self: &Arc<Self>, on_drop: OnDrop) -> (Arc<Slot<Result<T>>>, Reply<T>) {
        let slot = Arc::new(Slot {
            value: Mutex::new(None),
        });
        let reply = Reply {
            slot: Some(slot.clone()),
            waiter: self.clone(),
            on_drop,
        };
        (slot, reply)
    }

    /// Queues `job` to run on this Waiter's thread. Fails, returning the job,
    /// if the Waiter was closed.
    pub fn post(&self, job: Job) -> Result<(), Job> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(job);
        }
        state.jobs.push_back(job);
        state.place.waking();
        drop(state);
        self.cv.notify_one();
        self.hand_over();
        Ok(())
    }

    fn notify(&self) {
        let mut state = self.state.lock();
        state.notified = true;
        state.place.waking();
        drop(state);
        self.cv.notify_one();
        self.hand_over();
    }

    /// Yields the CPU once while spinning, telling the threads that hand
    /// this one work which CPU it is waiting on meanwhile.
    fn yield_spinning(&self) {
        self.spinning_on.spinning();
        yield_now();
        self.spinning_on.stopped();
    }

    /// Called by a thread that just gave this one work: if that is a loop
    /// thread and this thread spins on the same CPU, the loop yields now, so
    /// the work starts at once rather than after the loop has finished its
    /// batch and looked at its sockets (see `placement`).
    fn hand_over(&self) {
        if self.spinning_on.spins_here() && crate::event_loop::on_a_loop_thread() {
            yield_now();
        }
    }

    /// Blocks until `slot` is filled, running posted jobs meanwhile. `what`
    /// says what the thread waits for, for [`dump_waiters`].
    pub fn wait<T>(&self, slot: &Slot<T>, what: impl Fn() -> String) -> T {
        let mut described = false;
        let mut spin = self.spin();
        REPLY_WAITS.with(|history| spin.begin(history));
        loop {
            if let Some(value) = slot.take() {
                REPLY_WAITS.with(|history| spin.end(history));
                if described {
                    self.state.lock().waiting_for.pop();
                }
                return value;
            }
            let job = {
                let mut state = self.state.lock();
                loop {
                    // A deliberately broken protocol that the loom models must
                    // reject (`--cfg loom_broken_fifo`): a waiting thread runs
                    // the newest queued job first, so two requests queued
                    // behind a busy worker's call run out of order.
                    #[cfg(all(loom, loom_broken_fifo))]
                    if let Some(newest) = state.jobs.pop_back() {
                        state.jobs.push_front(newest);
                    }
                    if let Some(job) = state.jobs.pop_front() {
                        break Some(job);
                    }
                    if std::mem::take(&mut state.notified) {
                        break None;
                    }
                    if spin.again() {
                        drop(state);
                        self.yield_spinning();
                        state = self.state.lock();
                        continue;
                    }
                    // Described (for `dump_waiters`) only once it is about
                    // to sleep: a reply caught while spinning costs no
                    // formatting.
                    if !described {
                        state.waiting_for.push(String::new());
                        described = true;
                        drop(state);
                        let text = what();
                        state = self.state.lock();
                        if let Some(last) = state.waiting_for.last_mut() {
                            *last = text;
                        }
                        continue;
                    }
                    state = self.sleep(state);
                }
            };
            if let Some(job) = job {
                // The job may run long: give back the spinning place first.
                // The wait for it is over; the wait after it is another.
                REPLY_WAITS.with(|history| spin.end(history));
                // Counted, so that a request that would nest too deep for
                // the stack left is refused (`stack::check_nesting`).
                let nested = crate::stack::Nested::enter();
                job();
                drop(nested);
                REPLY_WAITS.with(|history| spin.begin(history));
                // A deliberately broken protocol that the loom models must
                // reject (`--cfg loom_broken_waiter`): after a job, it sleeps
                // until the next job or notification before it looks at the
                // slot again. A reply that arrived while the job ran a nested
                // wait, which consumed its notification, is never seen.
                #[cfg(all(loom, loom_broken_waiter))]
                {
                    let mut state = self.state.lock();
                    while state.jobs.is_empty() && !std::mem::take(&mut state.notified) {
                        state = self.cv.wait(state);
                    }
                }
            }
        }
    }

    /// Blocks on the condition variable (lock held on entry and return). A
    /// thread that hands it work meanwhile may have it woken on its own CPU
    /// (`placement::WakePlace`); it gets its own CPU mask back here, with
    /// the lock let go meanwhile (one system call, only then), so that
    /// threads handing it more work do not wait for the kernel.
    fn sleep<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.place.going_to_sleep();
        state = self.cv.wait(state);
        SLEEPS.fetch_add(1, Ordering::Relaxed);
        let restore = state.place.awake();
        if restore.is_needed() {
            drop(state);
            restore.apply();
            state = self.state.lock();
        }
        state
    }

    /// Runs posted jobs until [`close`](Self::close) is called. Jobs still
    /// queued at close are dropped unrun (their replies then report the error
    /// they carry).
    pub fn serve(&self) {
        loop {
            let mut spin = self.spin();
            IDLE_WAITS.with(|history| spin.begin(history));
            let job = {
                let mut state = self.state.lock();
                state.busy = false;
                loop {
                    if state.closed {
                        let leftover = std::mem::take(&mut state.jobs);
                        drop(state);
                        drop(leftover);
                        return;
                    }
                    if let Some(job) = state.jobs.pop_front() {
                        state.busy = true;
                        break job;
                    }
                    if spin.again() {
                        drop(state);
                        self.yield_spinning();
                        state = self.state.lock();
                        continue;
                    }
                    state = self.sleep(state);
                }
            };
            // The job may run long: give back the spinning place first.
            IDLE_WAITS.with(|history| spin.end(history));
            drop(spin);
            job();
        }
    }

    /// Stops [`serve`](Self::serve) and refuses further posts. Returns
    /// whether the serving thread was idle (not running a job, none queued),
    /// in which case it is about to return from `serve` without running user
    /// code. Queued jobs count: `serve` drops them on its own thread, and
    /// what they captured may have a destructor that blocks or calls out.
    pub fn close(&self) -> bool {
        let mut state = self.state.lock();
        state.closed = true;
        let idle = !state.busy && state.jobs.is_empty();
        drop(state);
        self.cv.notify_all();
        idle
    }

    /// Number of jobs queued and not yet started.
    pub fn queued(&self) -> usize {
        self.state.lock().jobs.len()
    }

    // Only `dump_waiters` uses it, and there is no registry under loom.
    #[cfg_attr(loom, allow(dead_code))]
    fn describe(&self) -> Option<String> {
        let state = self.state.lock();
        if state.waiting_for.is_empty() && state.jobs.is_empty() && !state.busy {
            return None;
        }
        let mut text = format!("{}: ", self.name);
        if state.busy {
            text.push_str("running a request; ");
        }
        if !state.waiting_for.is_empty() {
            text.push_str(&format!("waiting for {}; ", state.waiting_for.join(" > ")));
        }
        if !state.jobs.is_empty() {
            text.push_str(&format!("{} jobs queued", state.jobs.len()));
        }
        Some(text)
    }
}

/// Blocking waits of this process's Waiters that really slept: every return
/// from the condition variable's wait in [`Waiter::wait`] and
/// [`Waiter::serve`], after the spinning budget ran out (or spinning was off).
/// A reply or job caught while spinning costs a yield, not a sleep, and is not
/// counted. Relaxed: a statistic, ordered with nothing.
static SLEEPS: AtomicU64 = AtomicU64::new(0);

/// How many times, so far, a thread of this process blocked in a Waiter (for
/// a reply, or a worker for its next request) and was woken: sleeps, as
/// opposed to the yields of spinning (see the `spin` module). Event-loop
/// threads blocking in `epoll_wait` are not counted.
///
/// # Examples
///
/// ```
/// let before = multiprocess_event_loop::waiter::sleeps();
/// // ... calls ...
/// let slept = multiprocess_event_loop::waiter::sleeps() - before;
/// # let _ = slept;
/// ```
pub fn sleeps() -> u64 {
    SLEEPS.load(Ordering::Relaxed)
}

/// Describes every thread that is waiting for a reply or running a request
/// ("worker-3: waiting for reply #12 Probe.add"): what a watchdog prints when a
/// test is stuck.
#[cfg(not(loom))]
pub fn dump_waiters() -> String {
    let waiters: Vec<Arc<Waiter>> = REGISTRY.lock().iter().filter_map(Weak::upgrade).collect();
    let mut out = String::new();
    for waiter in waiters {
        if let Some(line) = waiter.describe() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Describes every waiting thread (not tracked under loom).
#[cfg(loom)]
pub fn dump_waiters() -> String {
    String::new()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_with_queued_jobs_is_not_idle_at_close() {
        // Nobody serves these waiters: `close` only reports their state.
        let idle = Waiter::new("idle");
        assert!(idle.close(), "nothing running, nothing queued");
        let queued = Waiter::new("queued");
        assert!(queued.post(Box::new(|| {})).is_ok());
        // The serving thread will drop the queued job (and what it captured)
        // itself, so its owner must not join it inline.
        assert!(!queued.close());
    }

    #[test]
    fn a_never_spinning_waiter_sleeps_at_once_and_others_may_spin() {
        let mut spell = Waiter::never_spinning("cleanup").spin();
        assert!(!spell.again(), "a never-spinning waiter spun");
        // An ordinary Waiter's spell may spin (if spinning is on): only
        // look at what it would do, without taking a place.
        let spell = Waiter::new("worker").spin();
        assert!(!spell.never);
    }

    #[test]
    fn a_worker_that_blocks_and_is_woken_counts_a_sleep() {
        // A never-spinning worker sleeps as soon as it runs out of jobs, so
        // a job handed to it once it has run the previous one wakes it from
        // a sleep, or (if the job came first) finds it awake; a few rounds
        // see a sleep counted. No fixed pause: each round waits for the
        // job's signal, every wait bounded.
        let waiter = Waiter::never_spinning("sleeper");
        let (exited, exit) = crate::sync::channel::unbounded();
        let worker = {
            let waiter = Arc::clone(&waiter);
            std::thread::spawn(move || {
                waiter.serve();
                let _ = exited.send(());
            })
        };
        let before = sleeps();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (ran, signal) = crate::sync::channel::unbounded();
        while sleeps() == before {
            assert!(std::time::Instant::now() < deadline, "no sleep counted");
            let ran = ran.clone();
            assert!(
                waiter
                    .post(Box::new(move || {
                        let _ = ran.send(());
                    }))
                    .is_ok(),
                "the worker refused a job"
            );
            signal
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the worker ran its job");
        }
        waiter.close();
        exit.recv_timeout(std::time::Duration::from_secs(60))
            .expect("serve returned once closed");
        worker.join().expect("worker thread");
    }
}
