//! A tracing subscriber that panics on the loop thread (as one whose output
//! is gone may: `eprintln!` panics on a closed stderr) cannot take the loop
//! down: the panic is caught with the closure or task that logged, and the
//! loop's own report of it swallows the second panic. Before, that second
//! panic killed the loop thread, and every later `sync` waited forever.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use multiprocess_event_loop::{EventLoop, LoopContext};
use tracing::span;
use tracing::{Event, Metadata, Subscriber};

const LOOP: &str = "panicky-loop";

/// Panics on every event logged on the loop thread.
struct PanicOnLoop;

impl Subscriber for PanicOnLoop {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &Event<'_>) {
        if thread::current().name() == Some(LOOP) {
            panic!("deliberate: the subscriber's output is gone");
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Reports, when dropped, whether the loop context was still there.
struct DropProbe(mpsc::Sender<&'static str>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let report = match LoopContext::with(|_| ()) {
            Some(()) => "task dropped with the loop context",
            None => "task dropped without the loop context",
        };
        let _ = self.0.send(report);
    }
}

#[test]
fn a_subscriber_that_panics_on_the_loop_thread_does_not_kill_the_loop() {
    tracing::subscriber::set_global_default(PanicOnLoop).expect("the only subscriber");
    common::within(Duration::from_secs(30), || {
        let event_loop = EventLoop::start(LOOP).expect("loop");
        let poster = event_loop.poster();
        event_loop
            .post(|| tracing::info!("an event from a closure"))
            .expect("post");
        assert_eq!(
            event_loop.sync(|| 1).expect("the loop still runs closures"),
            1
        );
        event_loop
            .post(|| {
                LoopContext::with(|cx| cx.spawn(async { tracing::info!("an event from a task") }));
            })
            .expect("post");
        assert_eq!(
            event_loop.sync(|| 2).expect("the loop still runs closures"),
            2
        );
        // An exit hook, and a task still alive when the loop exits, whose
        // destructor uses the loop context (as `drop_off_loop` does).
        let (exited, exit_seen) = mpsc::channel();
        event_loop
            .post(move || {
                LoopContext::with(|cx| {
                    let hook = exited.clone();
                    cx.at_exit(move || {
                        let _ = hook.send("exit hook ran");
                    });
                    let probe = DropProbe(exited);
                    cx.spawn(async move {
                        let _probe = probe;
                        std::future::pending::<()>().await;
                    });
                });
            })
            .expect("post");
        // The loop logs as it exits, and that log panics (the loop guards
        // it, and each exit step, with catch_unwind): the exit hook must
        // still run, the task must still be dropped on the loop thread with
        // its context in place (not by a thread-local destructor, which
        // would abort the process), the last handle's drop must return, and
        // posts must then fail. (A panic escaping the loop altogether, which
        // these guards leave no way to cause, is `AbandonOnPanic`'s case: a
        // unit test in event_loop.rs.)
        drop(event_loop);
        let mut seen = vec![
            exit_seen
                .recv_timeout(Duration::from_secs(10))
                .expect("first exit report"),
            exit_seen
                .recv_timeout(Duration::from_secs(10))
                .expect("second exit report"),
        ];
        seen.sort_unstable();
        assert_eq!(
            seen,
            ["exit hook ran", "task dropped with the loop context"]
        );
        assert!(poster.sync(|| 3).is_err());
    });
}
