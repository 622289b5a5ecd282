//! The loop thread's tables: the thread capabilities this process serves and
//! the live connections. They hold capnp objects, so they exist only on the
//! loop thread (in a thread-local) and are dropped when the loop exits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

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
}

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
                });
                let registered = LoopContext::with(|cx| {
                    cx.at_exit(close_connections);
                    cx.after_tasks(drop_state);
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

impl LoopState {
    /// Runs `job` on this loop's cleanup thread (started on first use).
    pub(crate) fn on_cleanup_thread(&self, job: multiprocess_event_loop::mailbox::Job) {
        let mut cleanup = self.cleanup.borrow_mut();
        if cleanup.is_none() {
            let Some(poster) = LoopContext::with(|cx| cx.poster()) else {
                drop(cleanup);
                return job();
            };
            let reaper = crate::worker::loop_reaper(poster);
            let name = format!(
                "{}-{}/cleanup",
                crate::names::exe_name(),
                std::process::id()
            );
            match Worker::spawn_cleanup(name.into(), "mp-cleanup".to_string(), reaper) {
                Ok(worker) => *cleanup = Some(worker),
                Err(e) => {
                    tracing::error!(target: "multiprocess", "cannot start the cleanup thread: {e}");
                    drop(cleanup);
                    return job();
                }
            }
        }
        if let Some(worker) = cleanup.as_ref()
            && let Err(job) = worker.post(job)
        {
            drop(cleanup);
            job();
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
