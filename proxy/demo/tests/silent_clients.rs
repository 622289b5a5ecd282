//! A client that connects and never starts the `construct` handshake is
//! closed by the listener after its handshake timeout, so that silent
//! clients cannot hold the listener's connections for good; a client that
//! did the handshake is not, however long it then stays quiet.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mp_testkit::line_process::{LineProcess, TempDir};
use mp_testkit::watchdog::guard;
use multiprocess::Address;
use multiprocess_demo::load::Load;

const BOUND: Duration = Duration::from_secs(60);
const HANDSHAKE: Duration = Duration::from_millis(300);

#[test]
fn a_client_that_never_calls_construct_is_closed_and_others_stay() {
    guard("silent clients", BOUND, || {
        let dir = TempDir::new("mp-demo", "silent-clients");
        let path = dir.path().join("load.sock");
        let address = format!("unix:{}", path.display());
        let millis = HANDSHAKE.as_millis().to_string();
        let mut server =
            LineProcess::start(env!("CARGO_BIN_EXE_load-server"), &[&address, &millis]);
        assert_eq!(server.line(), format!("listening {address}"));

        // A real client first: its handshake deadline passes before the
        // silent one's does.
        let parsed: Address = address.parse().expect("address");
        let (connection, load) =
            multiprocess::connect_to::<dyn Load>(&parsed).expect("a real client connects");
        assert_eq!(load.echo("early", 1).expect("echo").answer, "early#1");

        // A client that connects and says nothing: the server closes it
        // (its read sees the end of the stream, perhaps after an Abort).
        let mut silent = UnixStream::connect(&path).expect("connect");
        silent
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let connected = Instant::now();
        let mut received = Vec::new();
        silent
            .read_to_end(&mut received)
            .expect("the server never closed the silent connection");
        let closed_after = connected.elapsed();
        assert!(
            closed_after >= HANDSHAKE,
            "closed after {closed_after:?}, before its handshake timeout"
        );
        // Its connection is gone from the server; the real one is left.
        server.send("wait-connections 1 10000");
        assert_eq!(server.line(), "waiting");
        assert_eq!(server.line(), "connections 1 true");

        // The real client's deadline passed too (it connected first): it
        // did the handshake, so its connection stays and serves.
        assert_eq!(load.echo("late", 2).expect("echo").answer, "late#2");
        server.send("connections");
        assert_eq!(server.line(), "connections 1");
        drop((load, connection));
        server.send("wait-connections 0 10000");
        assert_eq!(server.line(), "waiting");
        assert_eq!(server.line(), "connections 0 true");
    });
}
