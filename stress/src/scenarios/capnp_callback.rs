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
use std::rc::Rc;
use std::time::{Duration, Instant};

use multiprocess_thread_map::{Connection, EventLoop, LoopHandle, RemoteObject};

use super::runtime;
use super::{Client, Scenario};
use crate::bench_capnp::{bench, ping_fn};

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
        let event_loop = EventLoop::start("mpbench-capnp-callback-loop")?;
        let (connection, bench) =
            Connection::connect::<bench::Client>(&event_loop, conn).map_err(runtime::to_io)?;
        if self.saved {
            bench
                .call("Bench.saveFn", |bench, _cx| {
                    let mut request = bench.save_fn_request();
                    request
                        .get()
                        .set_fn(capnp_rpc::new_client::<ping_fn::Client, _>(Doubler));
                    let response = request.send().promise;
                    async move {
                        response.await?;
                        Ok(())
                    }
                })
                .map_err(runtime::to_io)?;
        }
        let mut client = CallbackClient {
            bench,
            _connection: connection,
            _event_loop: event_loop,
            saved: self.saved,
            seq: 0,
        };
        Ok(Client::Batch(Box::new(move |n, samples| {
            client.batch(n, samples)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        super::capnp::serve(conn, "mpbench-capnp-callback-child-loop")
    }
}

/// The function the parent passes: doubles its argument, in place on the parent's loop thread.
struct Doubler;

impl ping_fn::Server for Doubler {
    async fn call(
        self: Rc<Self>,
        params: ping_fn::CallParams,
        mut results: ping_fn::CallResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value();
        results.get().set_value(value.wrapping_mul(2));
        Ok(())
    }
}

/// The parent's half.
struct CallbackClient {
    /// Declared first: dropped before the connection it lives on, then the loop.
    bench: RemoteObject<bench::Client>,
    _connection: Connection,
    _event_loop: LoopHandle,
    saved: bool,
    /// The value of the last call.
    seq: u64,
}

impl CallbackClient {
    /// Makes `n` calls on the loop thread and appends their latencies to `samples`.
    fn batch(&mut self, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
        let first = self.seq;
        let saved = self.saved;
        let timed = self
            .bench
            .call("Bench.pingBack (batch)", move |bench, _cx| {
                let bench = bench.clone();
                async move { call_back_batch(&bench, first, n, saved).await }
            })
            .map_err(runtime::to_io)?;
        self.seq = first.wrapping_add(n as u64);
        samples.extend(timed);
        Ok(())
    }
}

/// On the loop thread: `n` sequential calls with the values after `first`, each timed from
/// building the request to reading its response.
async fn call_back_batch(
    bench: &bench::Client,
    first: u64,
    n: usize,
    saved: bool,
) -> capnp::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    let mut value = first;
    for _ in 0..n {
        value = value.wrapping_add(1);
        let start = Instant::now();
        let got = if saved {
            let mut request = bench.ping_saved_request();
            request.get().set_value(value);
            request.send().promise.await?.get()?.get_value()
        } else {
            let mut request = bench.ping_back_request();
            let mut params = request.get();
            params.set_value(value);
            params.set_fn(capnp_rpc::new_client::<ping_fn::Client, _>(Doubler));
            request.send().promise.await?.get()?.get_value()
        };
        samples.push(start.elapsed());
        if got != value.wrapping_mul(2) {
            return Err(capnp::Error::failed(format!(
                "expected reply {}, got {got}",
                value.wrapping_mul(2)
            )));
        }
    }
    Ok(samples)
}
