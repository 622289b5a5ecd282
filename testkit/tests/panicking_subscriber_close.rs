//! A connection whose close is traced by a subscriber that panics (as one
//! whose output is gone may: `eprintln!` panics on a closed stderr) still
//! tells those waiting on it that it closed. Before, the panic unwound out
//! of the close before the connection's status was set, and a process
//! waiting for its parent to hang up waited forever.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mp_testkit::probe::Init;
use mp_testkit::watchdog::guard;
use multiprocess::{Connection, EventLoop, Interface};
use tracing::span;
use tracing::{Event, Metadata, Subscriber};

const LOOP: &str = "close-loop";

/// Panics on every event the loop thread logs about a connection closing.
struct PanicOnClose;

impl Subscriber for PanicOnClose {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                text.push_str(&format!("{}={value:?} ", field.name()));
            },
        );
        if thread::current().name() == Some(LOOP) && text.contains("connection closed") {
            panic!("deliberate: the subscriber's output is gone");
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn a_panic_while_closing_still_wakes_the_waiters() {
    tracing::subscriber::set_global_default(PanicOnClose).expect("the only subscriber");
    guard(
        "a_panic_while_closing_still_wakes_the_waiters",
        Duration::from_secs(60),
        || {
            let event_loop = EventLoop::start(LOOP).expect("loop");
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            let served = mp_testkit::probe_server::serve(&event_loop, theirs).expect("serve");
            let (client, init) =
                Connection::connect::<<dyn Init as Interface>::Capnp>(&event_loop, ours)
                    .expect("connect");
            let init = <dyn Init as Interface>::from_remote(init);
            let probe = init.make_probe().expect("makeProbe");
            assert_eq!(probe.add(2, 3).expect("add"), 5);
            // Our side hangs up: both ends close, and the subscriber panics as
            // each close is traced.
            drop((probe, init));
            client.disconnect();
            let why = served
                .wait_disconnected(Duration::from_secs(30))
                .expect("the served end learns that it closed");
            assert!(why.is_disconnected(), "{why:?}");
            assert!(client.wait_disconnected(Duration::from_secs(30)).is_some());
            // The loop survived the panics and serves a new connection.
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            let _served =
                mp_testkit::probe_server::serve(&event_loop, theirs).expect("serve again");
            let (_client, init) =
                Connection::connect::<<dyn Init as Interface>::Capnp>(&event_loop, ours)
                    .expect("connect again");
            let init: Arc<dyn Init> = <dyn Init as Interface>::from_remote(init);
            assert_eq!(
                init.make_probe()
                    .expect("makeProbe")
                    .add(1, 1)
                    .expect("add"),
                2
            );
        },
    )
}
