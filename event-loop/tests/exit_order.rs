//! What a loop does when it exits, in order: its `at_exit` hooks (which drop
//! the loop-thread tables of capnp objects), then its tasks (whose
//! destructors may still use the loop context), then its `after_tasks` hooks
//! (which drop what those destructors used).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use multiprocess_event_loop::{EventLoop, LoopContext};

type Log = Arc<Mutex<Vec<&'static str>>>;

fn record(log: &Log, what: &'static str) {
    log.lock().expect("log").push(what);
}

/// Held by a task that never finishes: records its drop, and whether the
/// loop context was still there for it.
struct DroppedWithTask(Log);

impl Drop for DroppedWithTask {
    fn drop(&mut self) {
        let installed = LoopContext::with(|_| ()).is_some();
        record(
            &self.0,
            if installed {
                "task dropped, context installed"
            } else {
                "task dropped, no context"
            },
        );
    }
}

#[test]
fn exit_runs_at_exit_hooks_then_drops_tasks_then_runs_after_tasks_hooks() {
    common::within(Duration::from_secs(30), || {
        let log: Log = Arc::default();
        let event_loop = EventLoop::start("exit-order-loop").expect("loop");
        let on_loop = log.clone();
        event_loop
            .sync(move || {
                LoopContext::with(|cx| {
                    // Registered in the opposite order from the one they
                    // must run in.
                    let after = on_loop.clone();
                    cx.after_tasks(move || record(&after, "after_tasks hook"));
                    let held = DroppedWithTask(on_loop.clone());
                    cx.spawn(async move {
                        let _held = held;
                        std::future::pending::<()>().await;
                    });
                    let first = on_loop.clone();
                    cx.at_exit(move || record(&first, "at_exit hook"));
                })
                .expect("on the loop thread");
            })
            .expect("sync");
        // The last handle: the loop exits and its thread is joined here.
        drop(event_loop);
        assert_eq!(
            *log.lock().expect("log"),
            [
                "at_exit hook",
                "task dropped, context installed",
                "after_tasks hook"
            ]
        );
    });
}
