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
//!
//! `call` goes through the generated proxies (the `Probe` trait's client and server);
//! `call-hand` ([`HandCall`]) makes the same request with the hand-written client and server of
//! [`hand`], the baseline the generated code is held to.

use std::io;
use std::os::unix::net::UnixStream;

use std::sync::Arc;

use mp_testkit::probe::Probe;

use super::hand::{self, HandProbe};
use super::runtime::{self, Parent};
use super::{Client, Scenario, check_reply};

/// The `call` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContextCall;

impl Scenario for ContextCall {
    fn name(&self) -> &'static str {
        "call"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let mut client = CallClient::connect(conn, "mpbench-call-loop")?;
        Ok(Client::Each(Box::new(move || client.call())))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-call-child-loop")
    }
}

/// The parent's half: `add(seq, 1)` on the child's probe (also `paced`'s).
pub(crate) struct CallClient {
    /// Declared first: dropped before the connection it lives on.
    probe: Arc<dyn Probe>,
    _parent: Parent,
    seq: i32,
}

impl CallClient {
    /// Connects over `conn` on a loop called `loop_name` and makes the probe.
    pub(crate) fn connect(conn: UnixStream, loop_name: &str) -> io::Result<Self> {
        let parent = Parent::connect(conn, loop_name)?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        Ok(Self {
            probe,
            _parent: parent,
            seq: 0,
        })
    }

    /// One call, its answer checked.
    pub(crate) fn call(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let expected = self.seq.wrapping_add(1);
        let sum = self.probe.add(self.seq, 1).map_err(runtime::to_io)?;
        check_reply(expected, sum)
    }
}

/// The `call-hand` scenario: `call` with the hand-written client and server.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandCall;

impl Scenario for HandCall {
    fn name(&self) -> &'static str {
        "call-hand"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let probe = HandProbe::connect(conn, "mpbench-call-hand-loop")?;
        let mut seq = 0i32;
        Ok(Client::Each(Box::new(move || {
            seq = seq.wrapping_add(1);
            check_reply(seq.wrapping_add(1), probe.add(seq, 1)?)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        hand::serve(conn, "mpbench-call-hand-child-loop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::{ONE_PROCESS_LIMIT as LIMIT, run_in_one_process};
    use mp_testkit::watchdog;

    #[test]
    fn client_and_server_in_one_process() {
        // Two event loops in one process instead of two processes: checks the calls, not the
        // timing.
        run_in_one_process(ContextCall, &[100]);
    }

    #[test]
    fn hand_written_client_and_server_in_one_process() {
        run_in_one_process(HandCall, &[100]);
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
                let (a, b) = UnixStream::pair().expect("socketpair");
                drop(b);
                assert!(HandCall.client(a).is_err());
            },
        );
    }
}
