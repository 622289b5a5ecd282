//! `Listener::wait_connections` ends when enough connections have closed,
//! whichever they are: here the last one accepted closes while the first
//! stays open.

use std::time::{Duration, Instant};

use mp_testkit::line_process::{LineProcess, TempDir};
use mp_testkit::watchdog::guard;
use multiprocess::Address;
use multiprocess_demo::load::Load;

const BOUND: Duration = Duration::from_secs(60);
/// How long the server waits: far longer than the close takes to reach it.
const WAIT_MS: u64 = 20_000;

#[test]
fn a_wait_for_fewer_connections_ends_when_a_later_one_closes() {
    guard("wait for fewer connections", BOUND, || {
        let dir = TempDir::new("mp-demo", "wait-connections");
        let path = dir.path().join("load.sock");
        let address = format!("unix:{}", path.display());
        let mut server = LineProcess::start(env!("CARGO_BIN_EXE_load-server"), &[&address]);
        assert_eq!(server.line(), format!("listening {address}"));

        let parsed: Address = address.parse().expect("address");
        let (first, first_load) =
            multiprocess::connect_to::<dyn Load>(&parsed).expect("the first client connects");
        let (second, second_load) =
            multiprocess::connect_to::<dyn Load>(&parsed).expect("the second client connects");
        // Both served: both are accepted and listed.
        assert_eq!(first_load.echo("first", 1).expect("echo").answer, "first#1");
        assert_eq!(
            second_load.echo("second", 1).expect("echo").answer,
            "second#1"
        );

        // The server waits while both are open...
        server.send(&format!("wait-connections 1 {WAIT_MS}"));
        assert_eq!(server.line(), "waiting");
        // ...and the second one leaves.
        let closed = Instant::now();
        drop((second_load, second));
        assert_eq!(server.line(), "connections 1 true");
        let waited = closed.elapsed();
        assert!(
            waited < Duration::from_millis(WAIT_MS / 2),
            "the wait ended {waited:?} after the close"
        );

        // The first still serves.
        assert_eq!(first_load.echo("first", 2).expect("echo").answer, "first#2");
        drop((first_load, first));
        server.send("wait-connections 0 10000");
        assert_eq!(server.line(), "waiting");
        assert_eq!(server.line(), "connections 0 true");
    });
}
