//! The application-thread side: each thread that makes calls has one
//! `ClientThread` (in a thread-local) with its Waiter, a process-unique id and
//! the connections it has used, so that when the thread exits the workers the
//! peers made for it are released.

use std::cell::RefCell;

use multiprocess_event_loop::Waiter;

use crate::connection::ConnShared;
use crate::loop_state;
use crate::sync::global::{AtomicU64, Ordering};
use crate::sync::{Arc, Weak};

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

/// The calling side of one application thread.
pub(crate) struct ClientThread {
    pub(crate) id: u64,
    pub(crate) waiter: Arc<Waiter>,
    pub(crate) name: Arc<String>,
    conns: RefCell<Vec<(u64, Weak<ConnShared>)>>,
}

impl ClientThread {
    fn new() -> Self {
        Self {
            id: NEXT_THREAD.fetch_add(1, Ordering::Relaxed),
            waiter: Waiter::current(),
            name: Arc::new(crate::names::current_thread_name()),
            conns: RefCell::new(Vec::new()),
        }
    }

    /// Records that this thread uses `conn`, so that its exit is reported.
    pub(crate) fn remember(&self, conn: &Arc<ConnShared>) {
        let mut conns = self.conns.borrow_mut();
        if !conns.iter().any(|(id, _)| *id == conn.id) {
            conns.retain(|(_, weak)| weak.strong_count() > 0);
            conns.push((conn.id, Arc::downgrade(conn)));
        }
    }
}

impl Drop for ClientThread {
    fn drop(&mut self) {
        let thread_id = self.id;
        for (conn_id, weak) in self.conns.borrow_mut().drain(..) {
            if let Some(conn) = weak.upgrade() {
                let _ = conn.handle.post(move || {
                    if let Some(conn) = loop_state::with(|state| state.conn(conn_id)) {
                        conn.remove_client_thread(thread_id);
                    }
                });
            }
        }
    }
}

thread_local! {
    static CURRENT: ClientThread = ClientThread::new();
}

/// Runs `f` with the calling thread's `ClientThread`.
pub(crate) fn with_current<R>(f: impl FnOnce(&ClientThread) -> R) -> R {
    CURRENT.with(f)
}
