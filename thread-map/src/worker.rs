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
//!
//! # Counts and caps
//!
//! A worker counts in the process's live workers ([`live_workers`]) from
//! before its thread starts until the thread ends, and in its connection's
//! workers as long. Both are capped ([`set_max_workers`],
//! [`set_max_workers_per_connection`]): a peer that asks for more is
//! refused. A worker closed while still running a request (its connection
//! died, or the peer released its `Thread`, while the method ran) is
//! *orphaned*: nobody can reach it any more, but it keeps its place in both
//! counts until its method returns, and [`orphaned_workers`] counts it, so
//! that threads stuck in user code are visible rather than silently
//! piling up. The orphan state of a worker changes under the live count's
//! lock, so the count cannot miss a worker that ends as it is orphaned.

use std::io;

use multiprocess_event_loop::{Waiter, mailbox::Job};

#[cfg(not(loom))]
use std::time::Duration;

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

/// The process's worker counts.
#[cfg(not(loom))]
#[derive(Default)]
struct Counts {
    /// Workers alive (orphaned ones included).
    live: usize,
    /// Workers closed by their owner while still running a request.
    orphaned: usize,
}

/// The counts, with a condition variable to wait for the live count to drop.
#[cfg(not(loom))]
struct LiveWorkers {
    count: Mutex<Counts>,
    cv: Condvar,
}

#[cfg(not(loom))]
fn live() -> &'static LiveWorkers {
    static LIVE: std::sync::OnceLock<LiveWorkers> = std::sync::OnceLock::new();
    LIVE.get_or_init(|| LiveWorkers {
        count: Mutex::new(Counts::default()),
        cv: Condvar::new(),
    })
}

/// Under loom there is no process-wide count: the models start a handful
/// of workers, and a `static` cannot hold loom's primitives.
#[cfg(loom)]
fn enter_live(_delta: usize, _limit: usize) -> Result<(), usize> {
    Ok(())
}

/// Adds `delta` live workers, unless that would take the count past
/// `limit`: then fails with the count.
#[cfg(not(loom))]
fn enter_live(delta: usize, limit: usize) -> Result<(), usize> {
    let mut count = live().count.lock();
    if delta > 0 && count.live.saturating_add(delta) > limit {
        return Err(count.live);
    }
    count.live += delta;
    Ok(())
}

#[cfg(loom)]
fn leave_live(_delta: usize, _orphan: &AtomicUsize) {}

/// Removes `delta` live workers, and the worker's orphan count if it had
/// one (its state becomes [`ENDED`]).
#[cfg(not(loom))]
fn leave_live(delta: usize, orphan: &AtomicUsize) {
    let live = live();
    let mut count = live.count.lock();
    count.live = count.live.saturating_sub(delta);
    if orphan.swap(ENDED, Ordering::Relaxed) == ORPHANED {
        count.orphaned = count.orphaned.saturating_sub(1);
    }
    drop(count);
    live.cv.notify_all();
}

// A worker's orphan state (`Worker::orphan`): changed only under the live
// count's lock (not tracked under loom).
const OWNED: usize = 0;
#[cfg_attr(loom, allow(dead_code))]
const ORPHANED: usize = 1;
#[cfg_attr(loom, allow(dead_code))]
const ENDED: usize = 2;

#[cfg(loom)]
fn orphan(_state: &AtomicUsize) {}

/// Counts a worker closed while it still runs a request as orphaned, once,
/// unless its thread has already ended.
#[cfg(not(loom))]
fn orphan(state: &AtomicUsize) {
    let mut count = live().count.lock();
    if state.load(Ordering::Relaxed) == OWNED {
        state.store(ORPHANED, Ordering::Relaxed);
        count.orphaned += 1;
    }
}

/// How many worker threads of this process are alive (started and not yet
/// finished serving), orphaned ones included.
#[cfg(not(loom))]
pub fn live_workers() -> usize {
    live().count.lock().live
}

/// How many worker threads are still running a request although nobody
/// can reach them any more: their connection closed, or the peer released
/// their `Thread`, while the method ran (blocked in user code, say). They
/// count in [`live_workers`], and so against [`max_workers`] and their
/// connection's cap, until the method returns and the thread ends.
#[cfg(not(loom))]
pub fn orphaned_workers() -> usize {
    live().count.lock().orphaned
}

/// Blocks until at most `count` workers are alive, or `timeout` passes
/// (`Duration::MAX`: no limit). Returns whether the count was reached. A
/// worker counts as gone once it has stopped serving and handed its join
/// to its loop. On an event-loop thread, which ends workers by closing
/// their connections, it only looks.
#[cfg(not(loom))]
pub fn wait_for_workers(count: usize, timeout: Duration) -> bool {
    let live = live();
    let deadline = crate::deadline::deadline_after(timeout);
    let mut current = live.count.lock();
    while current.live > count {
        match live.cv.wait_until(current, deadline) {
            Ok(guard) => current = guard,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_workers_takes_any_timeout() {
        // No count of workers is above usize::MAX: true at once, and a
        // timeout too long to add to now is no limit rather than a panic.
        assert!(wait_for_workers(usize::MAX, Duration::MAX));
        assert!(wait_for_workers(usize::MAX, Duration::ZERO));
    }
}

/// Sets the stack size of worker threads started from now on (0: the
/// platform default, 2 MiB for Rust threads).
///
/// A worker's stack bounds how deeply requests nest on it (callbacks
/// within callbacks): a request that would start with less than
/// [`nesting_stack_margin`](crate::nesting_stack_margin) left is refused
/// with `Error::NestingLimit`. A 2 MiB worker holds about 1,900 levels in a
/// release build (650 in a debug one); the depth grows with the stack less
/// the margin.
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

/// How many workers the whole process may have at once, over all its
/// connections, unless [`set_max_workers`] says otherwise.
pub const DEFAULT_MAX_WORKERS: usize = 8192;

static MAX_WORKERS_TOTAL: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_WORKERS);

/// Sets how many worker threads (for all connections together) the process
/// may have at once. A `makeThread` or `makePool` beyond it fails with an
/// error for its caller, as beyond [`set_max_workers_per_connection`]: a
/// process that accepts many connections cannot be made to start threads
/// without bound by opening more of them. Orphaned workers
/// ([`orphaned_workers`]) count until they end.
pub fn set_max_workers(count: usize) {
    MAX_WORKERS_TOTAL.store(count, Ordering::Relaxed);
}

/// The limit [`set_max_workers`] set.
pub fn max_workers() -> usize {
    MAX_WORKERS_TOTAL.load(Ordering::Relaxed)
}

/// Fails, for `what`, if starting `more` workers would take the process
/// past [`max_workers`] (the check that gives the peer a clear reason; the
/// count itself is taken when each thread starts).
#[cfg(not(loom))]
pub(crate) fn check_process_room(what: &str, more: usize) -> Result<(), String> {
    let limit = max_workers();
    let live = live_workers();
    if live.saturating_add(more) > limit {
        return Err(format!(
            "{what} refused: this process already has {live} worker threads (at most {limit})"
        ));
    }
    Ok(())
}

#[cfg(loom)]
pub(crate) fn check_process_room(_what: &str, _more: usize) -> Result<(), String> {
    Ok(())
}

type JoinSlot = Arc<Mutex<Option<thread::JoinHandle<()>>>>;

/// One server worker thread.
pub(crate) struct Worker {
    waiter: Arc<Waiter>,
    join: JoinSlot,
    /// [`OWNED`], [`ORPHANED`] or [`ENDED`], shared with the thread.
    orphan: Arc<AtomicUsize>,
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
        Self::start(
            Waiter::new(name.clone()),
            name,
            os_name,
            reaper,
            1,
            peer_threads,
        )
    }

    /// Starts a loop's cleanup thread: a worker that serves no peer, so it
    /// is not counted in [`live_workers`]. It never spins: nobody waits for
    /// what it does, and a spinning place it took would be one less for
    /// the threads a call goes through.
    pub(crate) fn spawn_cleanup(
        name: Arc<str>,
        os_name: String,
        reaper: Reaper,
    ) -> io::Result<Self> {
        let waiter = Waiter::never_spinning(name.clone());
        Self::start(waiter, name, os_name, reaper, 0, None)
    }

    /// Starts the thread that serves `waiter`.
    fn start(
        waiter: Arc<Waiter>,
        name: Arc<str>,
        os_name: String,
        reaper: Reaper,
        counted: usize,
        peer_threads: Option<Arc<AtomicUsize>>,
    ) -> io::Result<Self> {
        let join: JoinSlot = Arc::new(Mutex::new(None));
        let orphan = Arc::new(AtomicUsize::new(OWNED));
        let thread_waiter = waiter.clone();
        let thread_join = join.clone();
        let mut builder = thread::Builder::new().name(os_name);
        let stack = STACK_SIZE.load(Ordering::Relaxed);
        if stack > 0 {
            builder = builder.stack_size(stack);
        }
        let counted = Counted::enter(counted, peer_threads, orphan.clone())?;
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
        Ok(Self {
            waiter,
            join,
            orphan,
        })
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
/// workers (`live` is 0 for a thread that serves no peer), the orphaned
/// ones if it becomes one, and, if given, its connection's worker threads.
/// Taken before the thread starts; given back when the thread ends,
/// unwinds, or could not start.
struct Counted {
    live: usize,
    peer: Option<Arc<AtomicUsize>>,
    orphan: Arc<AtomicUsize>,
}

impl Counted {
    /// Fails if the process already has [`max_workers`] live workers.
    fn enter(
        live: usize,
        peer: Option<Arc<AtomicUsize>>,
        orphan: Arc<AtomicUsize>,
    ) -> io::Result<Self> {
        let limit = max_workers();
        enter_live(live, limit).map_err(|count| {
            io::Error::other(format!(
                "this process already has {count} worker threads (at most {limit})"
            ))
        })?;
        if let Some(peer) = &peer {
            peer.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Self { live, peer, orphan })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        leave_live(self.live, &self.orphan);
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
        } else {
            orphan(&self.orphan);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
