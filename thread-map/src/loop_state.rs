//! The loop thread's tables: the thread capabilities this process serves and
//! the live connections. They hold capnp objects, so they exist only on the
//! loop thread (in a thread-local) and are dropped when the loop exits.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use capnp_rpc::CapabilityServerSet;
use multiprocess_event_loop::LoopContext;

use crate::connection::ConnState;
use crate::proxy_capnp::thread;
use crate::thread_server::ThreadServer;
use crate::worker::Worker;

/// Everything the runtime keeps on one loop thread.
pub(crate) struct LoopState {
    threads: RefCell<CapabilityServerSet<ThreadServer, thread::Client>>,
    conns: RefCell<HashMap<u64, Rc<ConnState>>>,
    added_since_gc: std::cell::Cell<usize>,
    /// The thread that runs destructors the loop thread must not run
    /// (closures and objects released by peers), started on first use.
    cleanup: RefCell<Option<Worker>>,
    /// Destructors waiting to be handed to the cleanup thread, and since
    /// when the oldest has waited (see [`LoopState::on_cleanup_thread`]).
    pending_cleanup: RefCell<Vec<multiprocess_event_loop::mailbox::Job>>,
    pending_since: Cell<Option<Instant>>,
}

/// How many destructors wait for the cleanup thread before it is woken
/// whatever the loop is doing.
const CLEANUP_BATCH: usize = 64;

/// How long a destructor waits for the cleanup thread at most while the
/// loop keeps working without sleeping (it is looked at when the loop
/// runs out of work).
const CLEANUP_DELAY: Duration = Duration::from_millis(1);

thread_local! {
    static STATE: RefCell<Option<Rc<LoopState>>> = const { RefCell::new(None) };
}

/// Runs `f` with the calling loop thread's state, creating it on first use.
///
/// Panics if called off a loop thread: every caller is code that runs on the
/// loop (posted closures, tasks, capnp server methods).
pub(crate) fn with<R>(f: impl FnOnce(&LoopState) -> R) -> R {
    let state = STATE.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| {
                let state = Rc::new(LoopState {
                    threads: RefCell::new(CapabilityServerSet::new()),
                    conns: RefCell::new(HashMap::new()),
                    added_since_gc: std::cell::Cell::new(0),
                    cleanup: RefCell::new(None),
                    pending_cleanup: RefCell::new(Vec::new()),
                    pending_since: Cell::new(None),
                });
                let registered = LoopContext::with(|cx| {
                    cx.at_exit(close_connections);
                    cx.after_tasks(drop_state);
                    cx.when_idle(cleanup_when_idle);
                });
                assert!(
                    registered.is_some(),
                    "multiprocess loop state used off the loop thread"
                );
                state
            })
            .clone()
    });
    f(&state)
}

/// At loop exit, before the loop's tasks are dropped: close every
/// connection (failing the calls in flight).
fn close_connections() {
    let state = STATE.with(|s| s.borrow().clone());
    if let Some(state) = state {
        let conns: Vec<Rc<ConnState>> = state.conns.borrow_mut().drain().map(|(_, c)| c).collect();
        for conn in conns {
            conn.closed(multiprocess_event_loop::Error::LoopShutDown);
        }
    }
}

/// At loop exit, after the loop's tasks are dropped: drop every table. Kept
/// until then because dropping tasks drops servers whose destructors use
/// it (`drop_off_loop` sends values to its cleanup thread); dropped before,
/// they would make a second state, with a cleanup thread nobody joins.
fn drop_state() {
    let state = STATE.with(|s| s.borrow_mut().take());
    drop(state);
}

/// When the loop runs out of work: hands the cleanup thread what waits for
/// it, if the loop is about to sleep or it has waited long enough.
fn cleanup_when_idle(sleeping: bool) {
    let state = STATE.with(|s| s.borrow().clone());
    if let Some(state) = state
        && let Some(since) = state.pending_since.get()
        && (sleeping || since.elapsed() >= CLEANUP_DELAY)
    {
        state.flush_cleanup();
    }
}

impl Drop for LoopState {
    fn drop(&mut self) {
        // Before the cleanup thread is told to end, with the rest.
        self.flush_cleanup();
    }
}

impl LoopState {
    /// Runs `job` on this loop's cleanup thread (started on first use), soon.
    ///
    /// Not at once: waking the cleanup thread costs a system call, and on a
    /// machine with few CPUs a thread that competes with the ones a call
    /// goes through. A destructor is run by nobody's request, so jobs wait
    /// until the loop runs out of work and is about to sleep, or
    /// [`CLEANUP_BATCH`] of them are waiting, or the oldest has waited
    /// [`CLEANUP_DELAY`]; then the thread is woken once for all of them,
    /// which it runs in order. A peer that passes a closure with each call
    /// makes one wake-up per batch instead of one per call.
    pub(crate) fn on_cleanup_thread(&self, job: multiprocess_event_loop::mailbox::Job) {
        // Started now if it is not yet, so that whatever waits for it has
        // a thread to go to, at the loop's exit too.
        if !self.cleanup_thread_started() {
            return job();
        }
        let waiting = {
            let mut pending = self.pending_cleanup.borrow_mut();
            pending.push(job);
            pending.len()
        };
        match self.pending_since.get() {
            None => self.pending_since.set(Some(Instant::now())),
            Some(since) if waiting >= CLEANUP_BATCH || since.elapsed() >= CLEANUP_DELAY => {
                self.flush_cleanup();
            }
            Some(_) => {}
        }
    }

    /// Hands every waiting destructor to the cleanup thread, in one job.
    fn flush_cleanup(&self) {
        let jobs = std::mem::take(&mut *self.pending_cleanup.borrow_mut());
        self.pending_since.set(None);
        if jobs.is_empty() {
            return;
        }
        // Each job drops what it holds whether it runs or is dropped, so
        // if one panics the rest are dropped as the batch unwinds: on the
        // cleanup thread all the same.
        let batch: multiprocess_event_loop::mailbox::Job = Box::new(move || {
            for job in jobs {
                job();
            }
        });
        let cleanup = self.cleanup.borrow();
        let refused = match cleanup.as_ref() {
            Some(worker) => worker.post(batch).err(),
            None => Some(batch),
        };
        drop(cleanup);
        // No thread to run them (it could not start, or has ended): here,
        // as a last resort.
        if let Some(batch) = refused {
            batch();
        }
    }

    /// Whether the cleanup thread runs, starting it if it does not yet.
    /// False if it cannot start (off a loop thread, or the system refused).
    fn cleanup_thread_started(&self) -> bool {
        let mut cleanup = self.cleanup.borrow_mut();
        if cleanup.is_some() {
            return true;
        }
        let Some(poster) = LoopContext::with(|cx| cx.poster()) else {
            return false;
        };
        let reaper = crate::worker::loop_reaper(poster);
        let name = format!(
            "{}-{}/cleanup",
            crate::names::exe_name(),
            std::process::id()
        );
        match Worker::spawn_cleanup(name.into(), "mp-cleanup".to_string(), reaper) {
            Ok(worker) => {
                *cleanup = Some(worker);
                true
            }
            Err(e) => {
                tracing::error!(target: "multiprocess", "cannot start the cleanup thread: {e}");
                false
            }
        }
    }

    /// Exports `server` as a `Thread` capability this loop can recognise
    /// when a peer passes it back.
    pub(crate) fn add_thread(&self, server: Rc<ThreadServer>) -> thread::Client {
        let mut threads = self.threads.borrow_mut();
        let added = self.added_since_gc.get() + 1;
        if added >= 256 {
            threads.gc();
            self.added_since_gc.set(0);
        } else {
            self.added_since_gc.set(added);
        }
        threads.new_client_from_rc(server)
    }

    /// The server behind `client`, if it is one of ours (resolve it first).
    pub(crate) fn local_thread(&self, client: &thread::Client) -> Option<Rc<ThreadServer>> {
        self.threads.borrow().get_local_server_of_resolved(client)
    }

    /// A live connection.
    pub(crate) fn conn(&self, id: u64) -> Option<Rc<ConnState>> {
        self.conns.borrow().get(&id).cloned()
    }

    pub(crate) fn insert_conn(&self, conn: Rc<ConnState>) {
        self.conns.borrow_mut().insert(conn.id, conn);
    }

    pub(crate) fn remove_conn(&self, id: u64) -> Option<Rc<ConnState>> {
        self.conns.borrow_mut().remove(&id)
    }
}
