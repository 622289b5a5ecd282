//! Draining a listener: counting the requests its connections are running,
//! and disconnecting them all once none is.
//!
//! # Design
//!
//! Each [`crate::Listener`] has one [`Gauge`], shared by every connection it
//! accepted. A request counts in it from its arrival on the loop thread
//! (`ServeContext::run`, once its thread is known) until both its answer is
//! sent and its job has run on the worker, exactly as long as it counts in
//! its worker's load (`InFlight` in `call.rs` holds the [`Running`] guard).
//!
//! Requests start only on the loop thread, so the loop can look at the
//! count and disconnect in one step with no request slipping in between.
//! Once draining has begun, the last request to end posts that step to the
//! loop; if none is running when draining begins, the loop takes it at once.
//! Requests that arrive while draining are served (a nested call the
//! running request needs may be one of them) and keep the drain waiting;
//! once the loop has decided to disconnect, a request that still arrives
//! is refused before it reaches a worker, so no method runs after the
//! drain.
//!
//! The table from connection id to gauge is the loop thread's own
//! (`thread_local!`); guards are `Send` and may end on a worker.

// Under loom there is no listener (no sockets in the models): only
// `enter`, which finds no gauge, is used.
#![cfg_attr(loom, allow(dead_code))]

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use multiprocess_event_loop::{LoopContext, LoopPoster};

use crate::connection::ServeContext;
use crate::sync::{Arc, Condvar, Mutex};

thread_local! {
    /// On a loop thread: the gauge of each connection a listener accepted.
    static GAUGES: RefCell<HashMap<u64, Arc<Gauge>>> = RefCell::new(HashMap::new());
}

#[derive(Default)]
struct GaugeState {
    /// Requests running on the listener's connections.
    running: usize,
    /// Whether the listener is draining: disconnect once `running` is 0.
    draining: bool,
    /// Whether everyone has been told to disconnect.
    disconnecting: bool,
    /// The connections to disconnect (closed ones pruned on each accept).
    connections: Vec<ServeContext>,
}

/// The requests one listener's connections are running.
pub(crate) struct Gauge {
    state: Mutex<GaugeState>,
    cv: Condvar,
    poster: LoopPoster,
}

impl Gauge {
    pub(crate) fn new(poster: LoopPoster) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(GaugeState::default()),
            cv: Condvar::new(),
            poster,
        })
    }

    /// Loop thread: counts connection `ctx`'s requests in this gauge from
    /// now on (before it has read any message), and forgets the connections
    /// that have closed since the last one.
    pub(crate) fn adopt(self: &Arc<Self>, ctx: ServeContext) {
        let id = ctx.connection_id();
        let mut state = self.state.lock();
        let (open, closed): (Vec<_>, Vec<_>) = std::mem::take(&mut state.connections)
            .into_iter()
            // On the loop thread this only looks.
            .partition(|c| c.wait_disconnected(Duration::ZERO).is_none());
        state.connections = open;
        state.connections.push(ctx);
        drop(state);
        GAUGES.with(|gauges| {
            let mut gauges = gauges.borrow_mut();
            for c in &closed {
                gauges.remove(&c.connection_id());
            }
            gauges.insert(id, self.clone());
        });
    }

    /// How many requests are running.
    pub(crate) fn running(&self) -> usize {
        self.state.lock().running
    }

    /// Starts draining: once no request runs, every connection is told to
    /// disconnect. Any thread.
    pub(crate) fn begin(self: &Arc<Self>) {
        self.state.lock().draining = true;
        let gauge = self.clone();
        // If the loop is gone, so are the connections.
        let _ = self.poster.post(move || gauge.disconnect_if_idle());
    }

    /// Loop thread: if draining and idle, disconnects everyone (once).
    fn disconnect_if_idle(&self) {
        let mut state = self.state.lock();
        if !state.draining || state.disconnecting || state.running > 0 {
            return;
        }
        state.disconnecting = true;
        let connections = state.connections.clone();
        drop(state);
        self.cv.notify_all();
        disconnect_soon(connections);
    }

    /// Disconnects every connection now, running requests or not. Any
    /// thread.
    pub(crate) fn disconnect_all(&self) {
        let mut state = self.state.lock();
        state.disconnecting = true;
        let connections = state.connections.clone();
        drop(state);
        self.cv.notify_all();
        for connection in connections {
            connection.disconnect();
        }
    }

    /// Blocks until everyone has been told to disconnect, or `deadline`
    /// (`None`: no limit).
    pub(crate) fn wait_disconnecting(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        while !state.disconnecting {
            match self.cv.wait_until(state, deadline) {
                Ok(guard) => state = guard,
                Err(_) => return false,
            }
        }
        true
    }

    /// The connections adopted and not yet pruned.
    pub(crate) fn connections(&self) -> Vec<ServeContext> {
        self.state.lock().connections.clone()
    }

    /// Loop thread: forgets every connection of this gauge (its listener
    /// is gone).
    pub(crate) fn forget(&self) {
        let connections = std::mem::take(&mut self.state.lock().connections);
        GAUGES.with(|gauges| {
            let mut gauges = gauges.borrow_mut();
            for c in &connections {
                gauges.remove(&c.connection_id());
            }
        });
    }
}

/// Disconnects `connections` in a task of its own, so after the step that
/// ended the last request: that request's future ends inside the poll of
/// the connection's task, which goes on, in the same poll, to hand
/// capnp-rpc the answer (queued for writing). The disconnect, run later,
/// writes what is queued before it closes, so the answer is not cut off.
fn disconnect_soon(connections: Vec<ServeContext>) {
    LoopContext::with(|cx| {
        cx.spawn(async move {
            for connection in connections {
                connection.disconnect();
            }
        })
    });
}

/// A future that is pending once (waking itself), then ready.
pub(crate) fn yield_now() -> impl std::future::Future<Output = ()> {
    let mut yielded = false;
    futures::future::poll_fn(move |cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

fn gauge_of(conn_id: u64) -> Option<Arc<Gauge>> {
    GAUGES
        .try_with(|gauges| {
            let gauges = gauges.borrow();
            if gauges.is_empty() {
                return None;
            }
            gauges.get(&conn_id).cloned()
        })
        .ok()
        .flatten()
}

/// A request counted in its listener's gauge until dropped.
pub(crate) struct Running(Arc<Gauge>);

/// A request refused because its listener is disconnecting its connection
/// (a drain): it must not start on a worker now.
pub(crate) struct Closing;

/// Loop thread: counts a request arriving on connection `conn_id` in its
/// listener's gauge, if a listener accepted it (`Ok(None)` if none did), or
/// refuses it if that listener is disconnecting the connection. One look
/// and one lock for both.
pub(crate) fn enter(conn_id: u64) -> Result<Option<Running>, Closing> {
    let Some(gauge) = gauge_of(conn_id) else {
        return Ok(None);
    };
    let mut state = gauge.state.lock();
    if state.disconnecting {
        return Err(Closing);
    }
    state.running += 1;
    drop(state);
    Ok(Some(Running(gauge)))
}

impl Drop for Running {
    fn drop(&mut self) {
        let gauge = &self.0;
        let mut state = gauge.state.lock();
        state.running = state.running.saturating_sub(1);
        let last = state.running == 0 && state.draining && !state.disconnecting;
        drop(state);
        if last {
            let g = gauge.clone();
            // On the loop thread this runs at once; from a worker (a
            // cancelled request whose job ended last) it is queued.
            let _ = gauge.poster.post(move || g.disconnect_if_idle());
        }
    }
}
