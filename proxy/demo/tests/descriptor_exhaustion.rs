//! A listening server that runs out of file descriptors: a client keeps
//! connecting while `accept` fails with `EMFILE`. The server must not spin
//! (its loop would take a CPU and slow every other connection on it for as
//! long as the shortage lasts); once descriptors are free again, the
//! waiting client is accepted and served.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_testkit::line_process::{LineProcess, TempDir};
use mp_testkit::watchdog::guard;
use multiprocess::Address;
use multiprocess_demo::load::Load;

const BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_server_out_of_descriptors_waits_without_spinning_then_accepts() {
    guard("descriptor exhaustion", BOUND, || {
        let dir = TempDir::new("mp-demo", "fd-exhaustion");
        let address = format!("unix:{}", dir.path().join("load.sock").display());
        let mut server = LineProcess::start(env!("CARGO_BIN_EXE_load-server"), &[&address]);
        assert_eq!(server.line(), format!("listening {address}"));
        server.send("exhaust-fds");
        let exhausted = server.line();
        assert!(exhausted.starts_with("exhausted "), "{exhausted}");

        // A client connects: the kernel queues the connection, and every
        // `accept` of the server fails until descriptors are free. The
        // client waits in its handshake meanwhile.
        let parsed: Address = address.parse().expect("address");
        let (answer_tx, answer_rx) = mpsc::channel();
        let client = std::thread::spawn(move || {
            let answer = multiprocess::connect_to::<dyn Load>(&parsed)
                .and_then(|(_connection, load)| load.echo("waiting-client", 1))
                .map(|out| out.answer);
            let _ = answer_tx.send(answer);
        });

        // A second of the shortage: the server's CPU time in it. Spinning
        // on `accept` would be close to a second.
        let pid = server.pid();
        let before = stress::cpu::process_cpu(pid).expect("the server's CPU time");
        let window = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let used = stress::cpu::process_cpu(pid)
            .expect("the server's CPU time")
            .saturating_sub(before);
        let elapsed = window.elapsed();
        server.send("connections");
        assert_eq!(
            server.line(),
            "connections 0",
            "the client was accepted although no descriptor was free"
        );
        assert!(
            used < elapsed / 5,
            "the server used {used:?} of CPU in {elapsed:?} while accepting failed"
        );

        // Descriptors again: the client gets in (within the longest pause,
        // a second) and is served.
        server.send("release-fds");
        assert!(server.line().starts_with("released "));
        let answer = answer_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the waiting client was never served");
        assert_eq!(answer.expect("the call"), "waiting-client#1");
        client.join().expect("client thread");
    });
}
