//! Server worker threads: one OS thread per remote client thread.
//!
//! # Lifecycle
//!
//! A worker runs [`Waiter::serve`]: it runs the requests posted to it, one at
//! a time, in order. It is owned by the `ThreadServer` behind the `Thread`
//! capability `makeThread` returned; when the peer releases that capability
//! (or the connection dies) the loop thread drops the `ThreadServer`, which
//! closes the worker's Waiter:
//!
//! - if the worker is idle, it is about to return without running user code,
//!   so the loop thread joins it at once;
//! - if it is still running a request (the connection died mid-call), joining
//!   would block the loop, so the worker, once its request ends, posts a job
//!   that joins it to the loop.
//!
//! Whichever path takes the `JoinHandle` joins; the other finds it gone. So
//! a worker is joined at most once and never by the loop while it runs user
//! code.

use std::io;

use multiprocess_event_loop::{Waiter, mailbox::Job};

#[cfg(not(loom))]
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crate::sync::Condvar;
use crate::sync::global::{AtomicUsize, Ordering};
use crate::sync::{Arc, Mutex, thread};

static STACK_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Where a worker hands its own join when it outlives its owner: the loop's
/// `post` in production ([`loop_reaper`]); a stand-in loop thread in loom
/// models. A loop that is gone drops the join unrun: the thread is then
/// left detached, with nothing left to join it.
pub(crate) type Reaper = Box<dyn Fn(Job) + Send>;

/// The reaper that posts a worker's join to the loop behind `poster`.
pub(crate) fn loop_reaper(poster: multiprocess_event_loop::LoopPoster) -> Reaper {
    Box::new(move |job| {
        let _ = poster.post(job);
    })
}

/// Count of live workers, with a condition variable to wait for it to drop.
#[cfg(not(loom))]
struct LiveWorkers {
    count: Mutex<usize>,
    cv: Condvar,
}

#[cfg(not(loom))]
fn live() -> &'static LiveWorkers {
    static LIVE: std::sync::OnceLock<LiveWorkers> = std::sync::OnceLock::new();
    LIVE.get_or_init(|| LiveWorkers {
        count: Mutex::new(0),
        cv: Condvar::new(),
    })
}

#[cfg(loom)]
fn add_live(_delta: isize) {}

#[cfg(not(loom))]
fn add_live(delta: isize) {
    let live = live();
    let mut count = live.count.lock();
    *count = count.saturating_add_signed(delta);
    drop(count);
    live.cv.notify_all();
}

/// How many worker threads of this process are alive (started and not yet
/// finished serving).
#[cfg(not(loom))]
pub fn live_workers() -> usize {
    *live().count.lock()
}

/// Blocks until at most `count` workers are alive, or `timeout` passes.
/// Returns whether the count was reached. A worker counts as gone once it
/// has stopped serving and handed its join to its loop.
#[cfg(not(loom))]
pub fn wait_for_workers(count: usize, timeout: Duration) -> bool {
    let live = live();
    let deadline = Instant::now() + timeout;
    let mut current = live.count.lock();
    while *current > count {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        current = live.cv.wait_timeout(current, deadline - now);
    }
    true
}

/// Sets the stack size of worker threads started from now on (0: the
/// platform default).
pub fn set_worker_stack_size(bytes: usize) {
    STACK_SIZE.store(bytes, Ordering::Relaxed);
}

/// How many workers one connection's peer may have at once unless
/// [`set_max_workers_per_connection`] says otherwise.
pub const DEFAULT_MAX_WORKERS_PER_CONNECTION: usize = 4096;

static MAX_WORKERS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_WORKERS_PER_CONNECTION);

/// Sets how many worker threads (from `makeThread` and `makePool`) the peer
/// of one connection may have at once; a `makeThread` or `makePool` beyond it
/// fails with an error for the caller instead of starting threads. A thread
/// counts until it has exited, even after the peer released its `Thread`
/// (while it still runs a request, say). A peer cannot then exhaust the
/// process's threads by asking for them.
pub fn set_max_workers_per_connection(count: usize) {
    MAX_WORKERS.store(count, Ordering::Relaxed);
}

/// The limit [`set_max_workers_per_connection`] set.
pub fn max_workers_per_connection() -> usize {
    MAX_WORKERS.load(Ordering::Relaxed)
}

type JoinSlot = Arc<Mutex<Option<thread::JoinHandle<()>>>>;

/// One server worker thread.
pub(crate) struct Worker {
    waiter: Arc<Waiter>,
    join: JoinSlot,
}

impl Worker {
    /// Starts a worker whose descriptive name is `name` (the OS name is
    /// `os_name`); it hands its own join to `reaper` if it outlives its owner.
    /// `peer_threads`, if given, counts the thread from now until it exits
    /// (the worker threads one connection's peer has: see
    /// [`set_max_workers_per_connection`]).
    pub(crate) fn spawn(
        name: Arc<str>,
        os_name: String,
        reaper: Reaper,
        peer_threads: Option<Arc<AtomicUsize>>,
    ) -> io::Result<Self> {
        Self::start(name, os_name, reaper, 1, peer_threads)
    }

    /// Starts a loop's cleanup thread: a worker that serves no peer, so it
    /// is not counted in [`live_workers`].
    pub(crate) fn spawn_cleanup(
        name: Arc<str>,
        os_name: String,
        reaper: Reaper,
    ) -> io::Result<Self> {
        Self::start(name, os_name, reaper, 0, None)
    }

    fn start(
        name: Arc<str>,
        os_name: String,
        reaper: Reaper,
        counted: isize,
        peer_threads: Option<Arc<AtomicUsize>>,
    ) -> io::Result<Self> {
        let waiter = Waiter::new(name.clone());
        let join: JoinSlot = Arc::new(Mutex::new(None));
        let thread_waiter = waiter.clone();
        let thread_join = join.clone();
        let mut builder = thread::Builder::new().name(os_name);
        let stack = STACK_SIZE.load(Ordering::Relaxed);
        if stack > 0 {
            builder = builder.stack_size(stack);
        }
        let counted = Counted::enter(counted, peer_threads);
        // Started on the loop's CPU: the loop hands it every request.
        let creator_cpu = multiprocess_event_loop::placement::current_cpu();
        let spawned = builder.spawn(move || {
            multiprocess_event_loop::placement::start_near(creator_cpu);
            tracing::debug!(target: "multiprocess", worker = %name, tid = multiprocess_event_loop::os_thread_id(), "worker thread started");
            crate::names::set_current_thread_name(name);
            Waiter::set_current(thread_waiter.clone());
            thread_waiter.serve();
            reaper(Box::new(move || reap(&thread_join)));
            drop(counted);
        });
        // A thread that could not start dropped its closure, and its counts
        // with it.
        let handle = spawned?;
        *join.lock() = Some(handle);
        Ok(Self { waiter, join })
    }

    /// Queues a request on the worker. Fails if the worker was closed.
    pub(crate) fn post(&self, job: Job) -> Result<(), Job> {
        self.waiter.post(job)
    }

    /// The worker's Waiter (loom models inspect it).
    #[cfg(all(test, loom))]
    pub(crate) fn waiter(&self) -> &Arc<Waiter> {
        &self.waiter
    }

    /// The slot holding the worker thread's `JoinHandle` until someone joins
    /// it (loom models check that it ends empty, and who emptied it).
    #[cfg(all(test, loom))]
    pub(crate) fn join_slot(&self) -> JoinSlot {
        self.join.clone()
    }
}

/// A worker thread's place in the counts it is in: the process's live
/// workers (`live` is 0 for a thread that serves no peer) and, if given, its
/// connection's worker threads. Taken before the thread starts; given back
/// when the thread ends, unwinds, or could not start.
struct Counted {
    live: isize,
    peer: Option<Arc<AtomicUsize>>,
}

impl Counted {
    fn enter(live: isize, peer: Option<Arc<AtomicUsize>>) -> Self {
        add_live(live);
        if let Some(peer) = &peer {
            peer.fetch_add(1, Ordering::Relaxed);
        }
        Self { live, peer }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        add_live(-self.live);
        if let Some(peer) = &self.peer {
            peer.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn reap(join: &JoinSlot) {
    let handle = join.lock().take();
    if let Some(handle) = handle
        && handle.join().is_err()
    {
        tracing::error!(target: "multiprocess", "a worker thread panicked outside a request");
    }
}

impl Worker {
    /// Ends the worker: at once if idle (joined here), else after its current
    /// request (joined by the loop). Idempotent.
    pub(crate) fn shutdown(&self) {
        let idle = self.waiter.close();
        // A deliberately broken protocol that the loom models must reject
        // (`--cfg loom_broken_worker`): the owner joins the worker even when
        // `close` says it is still running a request. If that request waits
        // for the loop (an outgoing call), the loop, blocked in the join,
        // never answers it.
        #[cfg(all(loom, loom_broken_worker))]
        let idle = {
            let _busy_or_idle = idle;
            true
        };
        if idle {
            reap(&self.join);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
