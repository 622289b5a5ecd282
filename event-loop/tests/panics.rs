//! A panic in a closure or a task on the loop is contained: the loop keeps
//! running everything else.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use multiprocess_event_loop::{EventLoop, LoopContext};

#[test]
fn a_panicking_closure_or_task_does_not_stop_the_loop() {
    common::within(Duration::from_secs(30), || {
        let event_loop = EventLoop::start("panics-loop").expect("loop");
        event_loop
            .post(|| panic!("deliberate panic in a posted closure"))
            .expect("post");
        event_loop
            .post(|| {
                LoopContext::with(|cx| cx.spawn(async { panic!("deliberate panic in a task") }));
            })
            .expect("post");
        let (sender, received) = mpsc::channel();
        event_loop
            .spawn(move || async move {
                let _ = sender.send(7);
            })
            .expect("spawn");
        assert_eq!(
            received
                .recv_timeout(Duration::from_secs(10))
                .expect("the loop still runs tasks"),
            7
        );
        assert_eq!(
            event_loop
                .sync(|| 42)
                .expect("the loop still runs closures"),
            42
        );
    });
}

#[test]
fn a_panicking_sync_closure_panics_its_caller_and_the_loop_carries_on() {
    common::within(Duration::from_secs(30), || {
        let event_loop = EventLoop::start("sync-panic-loop").expect("loop");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            event_loop.sync(|| -> i32 { panic!("deliberate panic in a sync closure") })
        }));
        let panic = caught.expect_err("the caller sees the panic, not an error");
        assert_eq!(
            panic.downcast_ref::<&str>().copied(),
            Some("deliberate panic in a sync closure")
        );
        assert_eq!(
            event_loop
                .sync(|| 42)
                .expect("the loop still runs closures"),
            42
        );
    });
}

/// A panic payload whose own drop panics: the second panic would escape a
/// plain `catch_unwind` as the caught payload is dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("deliberate: the payload's drop panics");
    }
}

#[test]
fn a_panic_whose_payload_panics_as_it_drops_does_not_stop_the_loop() {
    common::within(Duration::from_secs(30), || {
        let event_loop = EventLoop::start("payload-panics-loop").expect("loop");
        event_loop
            .post(|| std::panic::panic_any(PanicsOnDrop))
            .expect("post");
        event_loop
            .post(|| {
                LoopContext::with(|cx| cx.spawn(async { std::panic::panic_any(PanicsOnDrop) }));
            })
            .expect("post");
        assert_eq!(
            event_loop
                .sync(|| 42)
                .expect("the loop still runs closures"),
            42
        );
    });
}
