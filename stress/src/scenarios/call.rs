//! `call`: the runtime's blocking call with a `Context`, `Probe.add(i, 1)`, made from the
//! application thread and run on the child's worker thread dedicated to it.
//!
//! # Shape
//!
//! ```text
//!  parent                                        child
//!  app ─(1) post──▶ loop ══ capnp request ══▶ loop ─(2) post──▶ worker
//!  app ◀─(4) reply─ loop ◀═ capnp response ═ loop ◀─(3) wake─── worker
//! ```
//!
//! The same hand-offs as [`chain`](super::chain), with the runtime's event loops, Waiters and
//! capnp-rpc in place of blocking reads and channels. The child serves the test kit's `Init`
//! (as `mp-child` does); the parent gets a `Probe` from it with `makeProbe`, whose first call
//! also makes the worker, so the measured calls find it in place.

use std::io;
use std::os::unix::net::UnixStream;

use mp_testkit::probe::ProbeClient;

use super::runtime::{self, Parent};
use super::{Client, Scenario};

/// The `call` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContextCall;

impl Scenario for ContextCall {
    fn name(&self) -> &'static str {
        "call"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-call-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        let mut client = CallClient {
            probe,
            _parent: parent,
            seq: 0,
        };
        Ok(Client::Each(Box::new(move || client.call())))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-call-child-loop")
    }
}

/// The parent's half.
struct CallClient {
    /// Declared first: dropped before the connection it lives on.
    probe: ProbeClient,
    _parent: Parent,
    seq: i32,
}

impl CallClient {
    fn call(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let expected = self.seq.wrapping_add(1);
        let sum = self.probe.add(self.seq, 1).map_err(runtime::to_io)?;
        if sum == expected {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected reply {expected}, got {sum}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp_testkit::watchdog;
    use std::thread;
    use std::time::Duration;

    /// Aborts the test binary with a dump of the stuck threads instead of hanging.
    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn client_and_server_in_one_process() {
        watchdog::guard("call::client_and_server_in_one_process", LIMIT, || {
            // Two event loops in one process instead of two processes: checks the calls, not the
            // timing.
            let (a, b) = UnixStream::pair().expect("socketpair");
            let server = thread::spawn(move || ContextCall.serve(b));
            let mut call = ContextCall.client(a).expect("client");
            let mut samples = Vec::new();
            call.run(100, &mut samples).expect("calls");
            assert_eq!(samples.len(), 100);
            // Dropping the client closes the connection: the server sees it and returns.
            drop(call);
            server.join().expect("server thread").expect("serve");
        });
    }

    #[test]
    fn set_up_fails_instead_of_hanging_when_the_child_is_gone() {
        watchdog::guard(
            "call::set_up_fails_instead_of_hanging_when_the_child_is_gone",
            LIMIT,
            || {
                let (a, b) = UnixStream::pair().expect("socketpair");
                drop(b);
                assert!(ContextCall.client(a).is_err());
            },
        );
    }
}
