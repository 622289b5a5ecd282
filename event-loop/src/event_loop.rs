//! The event-loop thread and the handles other threads use to reach it.
//!
//! # Design
//!
//! One named OS thread per [`EventLoop`] owns a mio `Poll`, the executor of
//! `!Send` futures and, through the code that runs on it, every capnp-rpc
//! object. Other threads never touch those objects: they [`post`] closures
//! to the loop (fire and forget) or [`sync`] them (wait for the value). The
//! loop thread alternates between running posted closures and ready tasks,
//! and blocking in epoll when there is nothing to do (see `mailbox.rs` for
//! the wake-up protocol).
//!
//! ```text
//!  app thread ──post/sync──▶ ┌──────────── loop thread ────────────┐
//!  app thread ──post/sync──▶ │ mailbox ─▶ jobs, ready tasks ─▶ epoll │◀── sockets
//!  worker     ──wake task──▶ └──────────────────────────────────────┘
//! ```
//!
//! # Lifetime
//!
//! The loop is reference-counted by its [`LoopHandle`]s (connections and
//! proxies hold one). When the last one is dropped the loop runs what was
//! already posted, drops its tasks (failing the calls still in flight) and
//! exits; if the last handle was dropped on another thread, that thread
//! joins the loop thread before returning. [`LoopPoster`]s can post but do not
//! keep the loop alive: posting through one after shutdown fails with
//! [`Error::LoopShutDown`].
//!
//! [`post`]: LoopHandle::post
//! [`sync`]: LoopHandle::sync

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::io::{AsyncStream, Reactor, WAKE_TOKEN};
use crate::mailbox::{Mailbox, Next, Wake};
use crate::spin::{self, Spin};
use crate::timer::{Sleep, Timers};
// sync-facade: allow (task wakers hold the mailbox, and std::task::Wake needs std's Arc)
use std::sync::Arc as StdArc;

use crate::sync::global::AtomicU64;
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, thread};
use crate::waiter::Waiter;

struct MioWake(mio::Waker);

impl Wake for MioWake {
    fn wake(&self) {
        if let Err(e) = self.0.wake() {
            tracing::error!(target: "multiprocess", "waking the event loop failed: {e}");
        }
    }
}

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

struct Shared {
    id: u64,
    name: String,
    mailbox: StdArc<Mailbox<MioWake>>,
    refs: AtomicUsize,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Shared {
    /// A new loop's shared state, with one reference (its first handle).
    fn new(name: &str, waker: mio::Waker) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            mailbox: StdArc::new(Mailbox::new(MioWake(waker))),
            refs: AtomicUsize::new(1),
            thread: Mutex::new(None),
        })
    }
}

thread_local! {
    static LOOP_ID: Cell<u64> = const { Cell::new(0) };
    static CONTEXT: RefCell<Option<Rc<LoopContext>>> = const { RefCell::new(None) };
}

/// Starts event loops.
#[derive(Debug)]
pub struct EventLoop;

impl EventLoop {
    /// Starts a loop on a new thread called `name` and returns the first
    /// handle to it.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = multiprocess_event_loop::EventLoop::start("example-loop").unwrap();
    /// let answer = handle.sync(|| 6 * 7).unwrap();
    /// assert_eq!(answer, 42);
    /// ```
    pub fn start(name: &str) -> io::Result<LoopHandle> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        let shared = Shared::new(name, waker);
        let thread_shared = shared.clone();
        let (started_tx, started_rx) = crate::sync::channel::unbounded::<io::Result<()>>();
        let creator_cpu = crate::placement::current_cpu();
        let join = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                crate::placement::start_near(creator_cpu);
                let context = match Reactor::new(poll) {
                    Ok(reactor) => {
                        let _ = started_tx.send(Ok(()));
                        LoopContext::new(thread_shared, reactor)
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                // If a panic escapes the loop, no post may wait for it.
                let _abandon = AbandonOnPanic(context.shared.clone());
                context.run();
            })?;
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = join.join();
                return Err(e);
            }
            Err(_) => return Err(io::Error::other("event loop thread died while starting")),
        }
        *shared.thread.lock() = Some(join);
        tracing::debug!(target: "multiprocess", loop_name = name, "event loop started");
        Ok(LoopHandle { shared })
    }
}

/// Runs [`LoopContext::exit`] when the loop's `run` ends, by return or by
/// unwinding.
struct ExitOnDrop(Rc<LoopContext>);

impl Drop for ExitOnDrop {
    fn drop(&mut self) {
        self.0.exit();
    }
}

/// Closes a dying loop's mailbox: held by the loop thread while it runs, it
/// acts only if a panic unwinds out of the loop (the loop catches panics of
/// closures and tasks, so this is a last resort). Posts then fail with
/// [`Error::LoopShutDown`] instead of waiting forever, and the jobs already
/// queued are dropped, which fails the callers waiting for them.
struct AbandonOnPanic(Arc<Shared>);

impl Drop for AbandonOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let jobs = self.0.mailbox.abandon();
        for job in jobs {
            // A job's captures may panic as they drop; the others must still go.
            crate::contain::caught(move || drop(job));
        }
        crate::executor::report(&format!(
            "event loop thread {} panicked; it no longer accepts work",
            self.0.name
        ));
    }
}

/// The loop thread's own state: its executor, its reactor and code that must
/// run when it exits. Reached with [`LoopContext::with`] on the loop thread;
/// it does not exist anywhere else.
pub struct LoopContext {
    shared: Arc<Shared>,
    executor: Executor,
    reactor: Rc<Reactor>,
    at_exit: RefCell<Vec<Box<dyn FnOnce()>>>,
    after_tasks: RefCell<Vec<Box<dyn FnOnce()>>>,
    when_idle: RefCell<Vec<IdleHook>>,
    /// How many things this loop expects soon ([`LoopContext::expect_soon`]).
    expecting: Rc<Cell<usize>>,
    /// The deadlines its tasks sleep until ([`LoopContext::sleep_until`]).
    timers: Rc<Timers>,
}

/// Something the loop expects soon, until dropped ([`LoopContext::expect_soon`]).
/// Loop thread only.
#[derive(Debug)]
pub struct Expecting {
    count: Rc<Cell<usize>>,
}

impl Drop for Expecting {
    fn drop(&mut self) {
        self.count.set(self.count.get().saturating_sub(1));
    }
}

/// Code the loop runs when it runs out of work ([`LoopContext::when_idle`]).
type IdleHook = Box<dyn Fn(bool)>;

impl fmt::Debug for LoopContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopContext")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl LoopContext {
    fn new(shared: Arc<Shared>, reactor: Reactor) -> Rc<Self> {
        let scheduler: crate::executor::SchedulerArc = shared.mailbox.clone();
        let context = Rc::new(Self {
            executor: Executor::new(scheduler),
            reactor: Rc::new(reactor),
            at_exit: RefCell::new(Vec::new()),
            after_tasks: RefCell::new(Vec::new()),
            when_idle: RefCell::new(Vec::new()),
            expecting: Rc::new(Cell::new(0)),
            timers: Rc::new(Timers::default()),
            shared,
        });
        LOOP_ID.with(|id| id.set(context.shared.id));
        CONTEXT.with(|c| *c.borrow_mut() = Some(context.clone()));
        context
    }

    /// Runs `f` with the current thread's loop context, or returns `None` if
    /// the current thread is not an event-loop thread.
    pub fn with<R>(f: impl FnOnce(&LoopContext) -> R) -> Option<R> {
        let context = CONTEXT.with(|c| c.borrow().clone())?;
        Some(f(&context))
    }

    /// Spawns a `!Send` future on this loop.
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) {
        self.executor.spawn(Box::pin(future));
    }

    /// Registers a connected socket (a Unix stream or a TCP stream) with
    /// this loop's reactor.
    pub fn stream(&self, stream: impl Into<crate::socket::Socket>) -> io::Result<AsyncStream> {
        AsyncStream::new(self.reactor.clone(), stream.into())
    }

    /// Registers a listening socket with this loop's reactor, to accept
    /// connections on the loop.
    pub fn listener(
        &self,
        socket: crate::socket::ListenSocket,
    ) -> io::Result<crate::socket::AsyncListener> {
        crate::socket::AsyncListener::new(self.reactor.clone(), socket)
    }

    /// Registers `f` to run on the loop thread when the loop exits, before its
    /// tasks are dropped (to drop loop-thread tables of capnp objects).
    pub fn at_exit(&self, f: impl FnOnce() + 'static) {
        self.at_exit.borrow_mut().push(Box::new(f));
    }

    /// Registers `f` to run on the loop thread when the loop exits, after
    /// its tasks are dropped (to drop tables that dropping tasks still use).
    pub fn after_tasks(&self, f: impl FnOnce() + 'static) {
        self.after_tasks.borrow_mut().push(Box::new(f));
    }

    /// Registers `f` to run on the loop thread each time the loop has run
    /// out of work: with `false` at each look while it spins, with `true`
    /// just before it sleeps. For work that may wait until the loop is
    /// idle (waking the cleanup thread for a batch of destructors). `f`
    /// must be quick, and must not register another hook.
    pub fn when_idle(&self, f: impl Fn(bool) + 'static) {
        self.when_idle.borrow_mut().push(Box::new(f));
    }

    /// Tells the loop that something it will wait for should come soon
    /// (the reply to a call it has sent, a worker's answer to a request it
    /// handed over), until the returned guard is dropped. The adaptive
    /// spinning policy keeps apart what the loop's waits have been like
    /// while it expects something and while it does not, so that the idle
    /// time between calls a millisecond apart does not stop it spinning for
    /// the replies within a call, nor the other way round.
    pub fn expect_soon(&self) -> Expecting {
        self.expecting.set(self.expecting.get() + 1);
        Expecting {
            count: self.expecting.clone(),
        }
    }

    /// A future that completes once `deadline` has passed, for a task of
    /// this loop (an accept loop pausing after a failure, say). The loop
    /// sleeps no longer than until the earliest such deadline.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(self.timers.clone(), deadline)
    }

    /// [`sleep_until`](Self::sleep_until) `duration` from now.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        let now = Instant::now();
        // A duration too long to add never ends: as good as a century.
        let deadline = now
            .checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        self.sleep_until(deadline)
    }

    /// Runs the [`when_idle`](Self::when_idle) hooks; `sleeping` says
    /// whether the loop is about to sleep.
    fn idle(&self, sleeping: bool) {
        let Ok(hooks) = self.when_idle.try_borrow() else {
            return;
        };
        for hook in hooks.iter() {
            if !crate::contain::caught(|| hook(sleeping)) {
                crate::executor::report("an idle hook of the event loop panicked");
            }
        }
    }

    /// A handle to this loop (counts as a reference).
    pub fn handle(&self) -> LoopHandle {
        self.shared.refs.fetch_add(1, Ordering::Relaxed);
        LoopHandle {
            shared: self.shared.clone(),
        }
    }

    /// A poster for this loop (does not keep it alive).
    pub fn poster(&self) -> LoopPoster {
        LoopPoster {
            shared: self.shared.clone(),
        }
    }

    /// The loop's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many tasks are alive on this loop.
    pub fn task_count(&self) -> usize {
        self.executor.len()
    }

    fn run(self: Rc<Self>) {
        let _exit = ExitOnDrop(self.clone());
        let mut jobs = std::collections::VecDeque::new();
        let mut ready = Vec::new();
        // The loop spins (polls its sockets without blocking and yields)
        // for a while before it sleeps in epoll: see `spin`.
        let mut spin = Spin::for_loop();
        // What its waits have been like (adaptive spinning, see `spin`),
        // kept apart for the two kinds: waits while it expects something
        // soon (`expect_soon`), and waits with nothing expected.
        let expecting_waits = spin::History::new();
        let other_waits = spin::History::new();
        let mut waiting: Option<&spin::History> = None;
        let mut batches: u32 = 0;
        loop {
            let mailbox = &self.shared.mailbox;
            if !self.timers.is_empty() {
                self.timers.fire_due(Instant::now());
            }
            let next = match mailbox.take_work(&mut jobs, &mut ready, false) {
                Next::Idle => {
                    if waiting.is_none() {
                        let history = if self.expecting.get() > 0 {
                            &expecting_waits
                        } else {
                            &other_waits
                        };
                        spin.begin(history);
                        waiting = Some(history);
                    }
                    if spin.again() {
                        Next::Idle
                    } else {
                        mailbox.take_work(&mut jobs, &mut ready, true)
                    }
                }
                next => next,
            };
            match next {
                Next::Work => {
                    // Not spinning while it works: the place goes back now.
                    match waiting.take() {
                        Some(history) => spin.end(history),
                        None => spin.reset(),
                    }
                    for job in jobs.drain(..) {
                        // A panicking closure must not take the loop, and
                        // every connection on it, down with it.
                        if !crate::contain::caught(job) {
                            crate::executor::report("a closure posted to the event loop panicked");
                        }
                    }
                    for id in ready.drain(..) {
                        self.executor.poll(id);
                    }
                    // Sockets are otherwise looked at only when the queues
                    // run dry: under a steady stream of posted work, look
                    // every few batches so that no connection starves.
                    batches = batches.wrapping_add(1);
                    if batches % IO_EVERY_BATCHES == 0 {
                        self.poll_io(Some(Duration::ZERO), false);
                    }
                }
                Next::Idle => {
                    self.idle(false);
                    if !self.poll_io(Some(Duration::ZERO), false) {
                        spin::yield_now();
                    }
                }
                Next::Sleep => {
                    self.idle(true);
                    // Until a socket or a producer wakes it, or the
                    // earliest timer is due.
                    let timeout = self
                        .timers
                        .next_deadline()
                        .map(|deadline| deadline.saturating_duration_since(Instant::now()));
                    self.poll_io(timeout, true);
                    spin.reset();
                }
                Next::Exit => break,
            }
        }
    }

    /// What the loop does last, whether it returns or a panic unwinds out of
    /// it: runs the `at_exit` hooks and drops every task while the context
    /// is still installed (task destructors may use it), then uninstalls it.
    /// Each step is guarded, so a panic in one (a subscriber that panics
    /// on every event, say) neither skips the others nor, raised while
    /// unwinding, aborts the process.
    fn exit(&self) {
        let name = &self.shared.name;
        crate::contain::caught(|| {
            tracing::debug!(target: "multiprocess", loop_name = %name, "event loop exiting");
        });
        run_hooks(&self.at_exit);
        if !crate::contain::caught(|| self.executor.drop_all()) {
            crate::executor::report("dropping the event loop's tasks panicked");
        }
        run_hooks(&self.after_tasks);
        let context = CONTEXT.with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.take()));
        LOOP_ID.with(|id| id.set(0));
        drop(context);
    }

    /// Polls the sockets (for at most `timeout`, `None` for as long as it
    /// takes an event or a wake-up to come) and wakes the tasks waiting on
    /// the ready ones. `slept`: the mailbox was told the loop sleeps
    /// (`Next::Sleep`), which it is told the loop no longer does here.
    /// Returns whether any event came. A failing poll closes the loop.
    fn poll_io(&self, timeout: Option<Duration>, slept: bool) -> bool {
        let polled = self.reactor.poll_events(timeout);
        if slept {
            // Awake again before waking any task: a task woken on the loop
            // thread itself must not write to the loop's own waker.
            self.shared.mailbox.awake();
        }
        match polled {
            Ok(any) => {
                self.reactor.dispatch_events();
                any
            }
            Err(e) => {
                crate::executor::report(&format!("event loop poll failed: {e}"));
                self.shared.mailbox.close();
                false
            }
        }
    }
}

/// Runs exit hooks, last registered first, each under `catch_unwind`.
fn run_hooks(hooks: &RefCell<Vec<Box<dyn FnOnce()>>>) {
    let hooks = match hooks.try_borrow_mut() {
        Ok(mut hooks) => std::mem::take(&mut *hooks),
        Err(_) => Vec::new(),
    };
    for f in hooks.into_iter().rev() {
        if !crate::contain::caught(f) {
            crate::executor::report("an exit hook of the event loop panicked");
        }
    }
}

/// How many batches of posted work the loop runs between two looks at its
/// sockets while work keeps coming.
const IO_EVERY_BATCHES: u32 = 32;

/// Whether the calling thread runs an event loop (any loop): a thread that
/// must never block waiting for a reply. A thread-local read.
pub fn on_a_loop_thread() -> bool {
    LOOP_ID.with(|id| id.get()) != 0
}

fn on_loop_thread(shared: &Shared) -> bool {
    LOOP_ID.with(|id| id.get()) == shared.id
}

fn post_job(shared: &Shared, f: impl FnOnce() + Send + 'static) -> Result<()> {
    if on_loop_thread(shared) {
        f();
        return Ok(());
    }
    shared
        .mailbox
        .post(Box::new(f))
        .map_err(|_| Error::LoopShutDown)
}

fn sync_job<R: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R> {
    if on_loop_thread(shared) {
        return Ok(f());
    }
    // Waiting here would stall every connection of the calling thread's own
    // loop for a round trip, and deadlock if the other loop syncs back.
    if on_a_loop_thread() {
        return Err(Error::WrongThread(format!(
            "sync to event loop {} from the thread of another event loop; post instead",
            shared.name
        )));
    }
    let waiter = Waiter::current();
    let (slot, reply) = waiter.reply_slot::<std::thread::Result<R>>(Error::LoopShutDown);
    // A panic in `f` is the caller's, as it would be if `f` ran inline: it
    // goes back to the caller (the loop, which is fine, carries on) rather
    // than dropping the reply, which would say the loop had shut down.
    shared
        .mailbox
        .post(Box::new(move || {
            reply.send(Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                f,
            ))))
        }))
        .map_err(|_| Error::LoopShutDown)?;
    let outcome = waiter.wait(&slot, || {
        format!("event loop {} to run a closure", shared.name)
    })?;
    outcome.map_err(|panic| std::panic::resume_unwind(panic))
}

/// A handle to an event loop that keeps it alive. `Send + Sync + Clone`.
///
/// # Differences from a plain channel
///
/// Closures posted or synced from the loop thread itself (from a posted
/// closure or a task) run at once, inline, so code that may run on either
/// side never deadlocks by waiting for itself.
///
/// # Ordering
///
/// Closures posted from one thread run in the order they were posted. One
/// posted from the loop thread runs before `post` returns, so ahead of any
/// closure still queued.
pub struct LoopHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Clone for LoopHandle {
    fn clone(&self) -> Self {
        self.shared.refs.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        if self.shared.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        self.shared.mailbox.close();
        if on_loop_thread(&self.shared) {
            // The loop thread exits by itself once it has drained its work.
            return;
        }
        let join = self.shared.thread.lock().take();
        if let Some(join) = join
            && join.join().is_err()
        {
            tracing::error!(target: "multiprocess", "event loop thread {} panicked", self.shared.name);
        }
    }
}

impl LoopHandle {
    /// Runs `f` on the loop thread without waiting for it.
    ///
    /// From another thread, `f` is queued behind the closures already
    /// posted. On the loop thread itself (in a posted closure or a task) `f`
    /// is not queued: it runs at once, inline, before `post` returns (ahead
    /// of closures other threads queued earlier), and a panic in it unwinds
    /// into the caller.
    ///
    /// Fails with [`Error::LoopShutDown`] if the loop has shut down; on the
    /// loop thread itself it cannot fail.
    pub fn post(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        post_job(&self.shared, f)
    }

    /// [`post`](Self::post) for a job already boxed, with no second box. If
    /// it fails, the job has been dropped by the time it returns.
    pub fn post_boxed(&self, job: crate::mailbox::Job) -> Result<()> {
        if on_loop_thread(&self.shared) {
            job();
            return Ok(());
        }
        self.shared
            .mailbox
            .post(job)
            .map_err(|_| Error::LoopShutDown)
    }

    /// Runs `f` on the loop thread and returns its value. While waiting, the
    /// calling thread runs callbacks posted to it (see [`Waiter`]). If `f`
    /// panics, the panic resumes in the caller, as if `f` had run there; the
    /// loop carries on.
    ///
    /// On the loop thread itself (in a posted closure or a task) `sync` does
    /// not wait: it calls `f` at once, inline, and returns its value, so a
    /// closure that syncs a closure that syncs never deadlocks. It does not
    /// fail there either, even while the loop is shutting down. From the
    /// thread of *another* loop it fails with [`Error::WrongThread`]: that
    /// loop would stop serving its connections while it waits, and two loops
    /// syncing each other would deadlock (post instead).
    ///
    /// ```
    /// # let handle = multiprocess_event_loop::EventLoop::start("doc-sync").unwrap();
    /// let on_loop = handle.sync(|| std::thread::current().name().map(String::from)).unwrap();
    /// assert_eq!(on_loop.as_deref(), Some("doc-sync"));
    /// ```
    pub fn sync<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        sync_job(&self.shared, f)
    }

    /// Spawns the future `make()` builds on the loop thread. `make` is `Send`;
    /// the future it returns need not be.
    pub fn spawn<F, Fut>(&self, make: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.post(move || {
            LoopContext::with(|cx| cx.spawn(make()));
        })
    }

    /// A poster for this loop that does not keep it alive.
    pub fn poster(&self) -> LoopPoster {
        LoopPoster {
            shared: self.shared.clone(),
        }
    }

    /// Whether the calling thread is this loop's thread.
    pub fn is_loop_thread(&self) -> bool {
        on_loop_thread(&self.shared)
    }

    /// The loop thread's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many times another thread had to wake the loop from epoll: each
    /// is one system call (for benchmarks and tests of the wake-up protocol).
    pub fn wakeups(&self) -> u64 {
        self.shared.mailbox.wakeups()
    }
}

/// Posts to a loop without keeping it alive: what worker threads hold.
#[derive(Clone)]
pub struct LoopPoster {
    shared: Arc<Shared>,
}

impl fmt::Debug for LoopPoster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopPoster")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl LoopPoster {
    /// Like [`LoopHandle::post`]: inline on the loop thread; from another
    /// thread, fails once the loop has shut down.
    pub fn post(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        post_job(&self.shared, f)
    }

    /// Like [`LoopHandle::sync`]: inline on the loop thread; from another
    /// loop's thread, fails with [`Error::WrongThread`]; from any other
    /// thread, fails once the loop has shut down.
    pub fn sync<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        sync_job(&self.shared, f)
    }

    /// Whether the calling thread is this loop's thread.
    pub fn is_loop_thread(&self) -> bool {
        on_loop_thread(&self.shared)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_loop_thread_killed_by_a_panic_fails_queued_and_later_posts() {
        let poll = mio::Poll::new().expect("poll");
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN).expect("waker");
        let shared = Shared::new("dying-loop", waker);
        // A `sync` queued before the loop thread dies.
        let waiter = Waiter::current();
        let (slot, reply) = waiter.reply_slot::<i32>(Error::LoopShutDown);
        assert!(
            shared
                .mailbox
                .post(Box::new(move || reply.send(Ok(1))))
                .is_ok()
        );
        let dying = shared.clone();
        let died = std::thread::spawn(move || {
            let _abandon = AbandonOnPanic(dying);
            panic!("deliberate: a panic escapes the loop");
        })
        .join();
        assert!(died.is_err());
        // Its caller is failed at once (a hang here would be the bug)...
        assert!(matches!(slot.take(), Some(Err(Error::LoopShutDown))));
        // ...and nothing can be posted any more.
        assert!(matches!(post_job(&shared, || {}), Err(Error::LoopShutDown)));
    }

    /// A task sleeping on a loop that has nothing else to do is woken at
    /// its deadline: the loop sleeps in epoll no longer than until then
    /// (without timers it would sleep until a socket or a post woke it).
    /// The deadlines are in order: the shorter sleep ends first.
    #[test]
    fn a_sleeping_task_wakes_at_its_deadline_on_an_idle_loop() {
        let handle = EventLoop::start("timer-loop").expect("loop");
        let (done_tx, done_rx) = crate::sync::channel::unbounded::<(u32, Duration)>();
        handle
            .sync(move || {
                LoopContext::with(|cx| {
                    for (which, millis) in [(2u32, 80u64), (1, 30)] {
                        let sleep = cx.sleep(Duration::from_millis(millis));
                        let done = done_tx.clone();
                        let start = Instant::now();
                        cx.spawn(async move {
                            sleep.await;
                            let _ = done.send((which, start.elapsed()));
                        });
                    }
                })
            })
            .expect("spawned")
            .expect("on the loop");
        let bound = Duration::from_secs(20);
        let first = done_rx
            .recv_timeout(bound)
            .expect("the first sleep never ended");
        let second = done_rx
            .recv_timeout(bound)
            .expect("the second sleep never ended");
        assert_eq!((first.0, second.0), (1, 2), "the shorter sleep ends first");
        assert!(first.1 >= Duration::from_millis(30), "{first:?}");
        assert!(second.1 >= Duration::from_millis(80), "{second:?}");
    }
}
