//! When the runtime's public waits give up.
//!
//! A wait for a connection, a listener's connections, a drain or workers
//! takes a timeout. A timeout too long to add to now (`Duration::MAX`) is no
//! limit. On an event-loop thread, which is what closes connections,
//! answers requests and ends workers, a wait could only wait for itself (or
//! stall another loop's connections): there it only looks.

use std::time::{Duration, Instant};

/// When a wait of `timeout` from now gives up: `None` for no limit, now on
/// an event-loop thread.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    let now = Instant::now();
    if multiprocess_event_loop::on_a_loop_thread() {
        Some(now)
    } else {
        now.checked_add(timeout)
    }
}

/// How long until `deadline`, at least zero (`Duration::MAX` for none).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn remaining(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |deadline| {
        deadline.saturating_duration_since(Instant::now())
    })
}
