//! `capnp-callback`: plain capnp-rpc calls that call back, `Bench.pingBack(value, fn)`, on the
//! runtime's own event loops: the parent's loop passes a fresh `PingFn` capability with each
//! call, the child's loop calls it back once and answers with what it returned. No `Context`, no
//! worker, no hand-off: the floor of [`callback`](super::callback), as [`capnp`](super::capnp)
//! is the floor of [`call`](super::call). `capnp-callback-saved` passes the function once
//! (`saveFn`) and calls `pingSaved`, the floor of `callback-saved`.
//!
//! # Shape
//!
//! ```text
//!  parent                                        child
//!  loop ══ pingBack(value, fn) ════════════════▶ loop
//!  loop ◀═════════════ fn.call(value) ══════════ loop
//!  loop ══ fn's answer ════════════════════════▶ loop (releases fn)
//!  loop ◀═ pingBack's answer (and fn's Release) ═ loop
//! ```
//!
//! What `capnp-callback` costs beyond `capnp-callback-saved` is capnp-rpc's own price for a
//! capability's life (export, import, release), which no code of the runtime can take away;
//! `docs/design.md` ("What a callback costs") compares it with `callback`'s.
//!
//! Like `capnp`, a [`Batch`](super::Batch): the calls are made and timed on the loop thread.

use std::io;
use std::os::unix::net::UnixStream;

use super::capnp::{Exchange, loop_client};
use super::{Client, Scenario};

/// The `capnp-callback` scenario (`saved: false`) and `capnp-callback-saved` (`saved: true`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CapnpCallback {
    /// Whether the function is passed once (`saveFn`) rather than with each call.
    pub saved: bool,
}

impl Scenario for CapnpCallback {
    fn name(&self) -> &'static str {
        if self.saved {
            "capnp-callback-saved"
        } else {
            "capnp-callback"
        }
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let exchange = if self.saved {
            Exchange::PingSaved
        } else {
            Exchange::PingBack
        };
        loop_client(conn, "mpbench-capnp-callback-loop", exchange)
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        super::capnp::serve(conn, "mpbench-capnp-callback-child-loop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::run_in_one_process;

    #[test]
    fn both_variants_call_back_in_one_process() {
        // Two event loops in one process: checks the calls (each answer is twice its value),
        // not the timing; the second batch continues the first's numbers.
        for saved in [false, true] {
            let samples = run_in_one_process(CapnpCallback { saved }, &[30, 20]);
            assert_eq!(samples.len(), 50, "saved: {saved}");
        }
    }
}
