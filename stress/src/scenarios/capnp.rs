//! `capnp`: plain capnp-rpc calls, `Bench.ping`, on the runtime's own event loops: made on the
//! parent's loop thread and answered on the child's, with no `Context`, no worker and no
//! cross-thread hand-off per call. The baseline for [`call`](super::call): what is left of its
//! time once the hand-offs to and from the application thread and the worker are gone.
//!
//! # Shape
//!
//! ```text
//!  parent                            child
//!  loop ══ capnp request ══▶ loop (BenchServer answers in place)
//!  loop ◀═ capnp response ═ loop
//! ```
//!
//! The connection is the runtime's (`Connection::connect`, same socket buffers, same executor
//! and reactor as `call`); the child serves `Bench` (`schema/bench.capnp`) as its bootstrap
//! capability with a hand-written capnp server, which answers `ping` in place on its loop
//! thread. (A generated server would run `ping`, which declares no `Context`, on a pool thread
//! of the child: no longer the loop-to-loop floor.) To make the calls on the loop thread, a
//! whole batch runs there: the application thread makes one [`RemoteObject::call`],
//! whose request builder receives the capnp `Bench` client on the loop thread and returns a
//! future (run by the loop) that makes the batch's pings one after the other and times each
//! with `Instant` around the request and its awaited response. So this scenario is a
//! [`Batch`](super::Batch): the application thread cannot time calls it does not make.
//!
//! Per batch there is one hand-off each way between the application thread and the loop (and,
//! on the first batch, the `makeThread` the runtime pipelines for a new calling thread); its cost
//! is in `calls_per_s` and `ctx_switches_per_call`, spread over the batch, but in no sample.

use std::io;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use std::cell::RefCell;
use std::rc::Rc;

use multiprocess_thread_map::{Connection, EventLoop, LoopHandle, RemoteObject, ServeContext};

use super::runtime;
use super::{Client, Scenario};
use crate::bench_capnp::{self, bench, ping_fn};

/// The `capnp` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capnp;

impl Scenario for Capnp {
    fn name(&self) -> &'static str {
        "capnp"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        loop_client(conn, "mpbench-capnp-loop", Exchange::Ping)
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        serve(conn, "mpbench-capnp-child-loop")
    }
}

/// The child's half of the `capnp` scenarios: serves [`BenchServer`] on `conn` until the
/// parent closes it.
pub(super) fn serve(conn: UnixStream, loop_name: &str) -> io::Result<()> {
    mp_testkit::serve_child_with(loop_name, conn, |ctx| {
        let bench: bench::Client = capnp_rpc::new_client(BenchServer {
            ctx,
            saved: RefCell::new(None),
        });
        bench.client
    })
    .map_err(runtime::to_io)
}

/// The child's half: answers the handshake and every request on the loop thread.
struct BenchServer {
    ctx: ServeContext,
    /// The function `saveFn` kept, for `pingSaved`.
    saved: RefCell<Option<bench_capnp::ping_fn::Client>>,
}

impl bench::Server for BenchServer {
    async fn construct(
        self: Rc<Self>,
        params: bench::ConstructParams,
        mut results: bench::ConstructResults,
    ) -> capnp::Result<()> {
        let peer = params.get()?.get_thread_map()?;
        let ours = self.ctx.construct(peer).map_err(|e| e.to_capnp())?;
        results.get().set_thread_map(ours);
        Ok(())
    }

    async fn ping(
        self: Rc<Self>,
        params: bench::PingParams,
        mut results: bench::PingResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value();
        results.get().set_value(value);
        Ok(())
    }

    async fn ping_back(
        self: Rc<Self>,
        params: bench::PingBackParams,
        mut results: bench::PingBackResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value();
        let function = params.get()?.get_fn()?;
        let got = call_back(&function, value).await?;
        results.get().set_value(got);
        Ok(())
    }

    async fn save_fn(
        self: Rc<Self>,
        params: bench::SaveFnParams,
        _results: bench::SaveFnResults,
    ) -> capnp::Result<()> {
        *self.saved.borrow_mut() = Some(params.get()?.get_fn()?);
        Ok(())
    }

    async fn ping_saved(
        self: Rc<Self>,
        params: bench::PingSavedParams,
        mut results: bench::PingSavedResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value();
        let function = self
            .saved
            .borrow()
            .clone()
            .ok_or_else(|| capnp::Error::failed("pingSaved before saveFn".to_string()))?;
        let got = call_back(&function, value).await?;
        results.get().set_value(got);
        Ok(())
    }
}

/// Calls `function` with `value` and returns its answer.
async fn call_back(function: &bench_capnp::ping_fn::Client, value: u64) -> capnp::Result<u64> {
    let mut request = function.call_request();
    request.get().set_value(value);
    Ok(request.send().promise.await?.get()?.get_value())
}

/// What each call of a loop-to-loop batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exchange {
    /// `ping(value)`, answered with `value` (`capnp`).
    Ping,
    /// `pingBack(value, fn)` with a fresh [`Doubler`] each time, answered
    /// with `2 * value` (`capnp-callback`).
    PingBack,
    /// `pingSaved(value)`, after one `saveFn(Doubler)` (`capnp-callback-saved`).
    PingSaved,
}

/// The parent's half of the `capnp` scenarios: connects over `conn` with an event loop of
/// its own named `loop_name` and makes batches of `exchange` on it.
pub(super) fn loop_client(
    conn: UnixStream,
    loop_name: &str,
    exchange: Exchange,
) -> io::Result<Client> {
    let event_loop = EventLoop::start(loop_name)?;
    let (connection, bench) =
        Connection::connect::<bench::Client>(&event_loop, conn).map_err(runtime::to_io)?;
    if exchange == Exchange::PingSaved {
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
    let mut client = LoopClient {
        bench,
        _connection: connection,
        _event_loop: event_loop,
        exchange,
        seq: 0,
    };
    Ok(Client::Batch(Box::new(move |n, samples| {
        client.batch(n, samples)
    })))
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
struct LoopClient {
    /// Declared first: dropped before the connection it lives on, then the loop.
    bench: RemoteObject<bench::Client>,
    _connection: Connection,
    _event_loop: LoopHandle,
    exchange: Exchange,
    /// The value of the last call.
    seq: u64,
}

impl LoopClient {
    /// Makes `n` calls on the loop thread and appends their latencies to `samples`.
    fn batch(&mut self, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
        let first = self.seq;
        let exchange = self.exchange;
        let timed = self
            .bench
            .call("Bench (batch)", move |bench, _cx| {
                let bench = bench.clone();
                async move { timed_batch(&bench, first, n, exchange).await }
            })
            .map_err(runtime::to_io)?;
        self.seq = first.wrapping_add(n as u64);
        samples.extend(timed);
        Ok(())
    }
}

/// On the loop thread: `n` sequential calls with the values after `first`, each timed from
/// building the request to reading its response.
async fn timed_batch(
    bench: &bench::Client,
    first: u64,
    n: usize,
    exchange: Exchange,
) -> capnp::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    let mut value = first;
    for _ in 0..n {
        value = value.wrapping_add(1);
        let start = Instant::now();
        let (got, expected) = match exchange {
            Exchange::Ping => {
                let mut request = bench.ping_request();
                request.get().set_value(value);
                (request.send().promise.await?.get()?.get_value(), value)
            }
            Exchange::PingBack => {
                let mut request = bench.ping_back_request();
                let mut params = request.get();
                params.set_value(value);
                params.set_fn(capnp_rpc::new_client::<ping_fn::Client, _>(Doubler));
                let got = request.send().promise.await?.get()?.get_value();
                (got, value.wrapping_mul(2))
            }
            Exchange::PingSaved => {
                let mut request = bench.ping_saved_request();
                request.get().set_value(value);
                let got = request.send().promise.await?.get()?.get_value();
                (got, value.wrapping_mul(2))
            }
        };
        samples.push(start.elapsed());
        if got != expected {
            return Err(capnp::Error::failed(format!(
                "expected reply {expected}, got {got}"
            )));
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::{ONE_PROCESS_LIMIT as LIMIT, run_in_one_process};
    use mp_testkit::watchdog;

    #[test]
    fn client_and_server_in_one_process() {
        // Two event loops in one process instead of two processes: checks the calls, not the
        // timing. Two batches: the second continues the first's numbers.
        let samples = run_in_one_process(Capnp, &[60, 40]);
        assert_eq!(samples.len(), 100);
        assert!(samples.iter().all(|d| *d > Duration::ZERO));
    }

    #[test]
    fn set_up_fails_instead_of_hanging_when_the_child_is_gone() {
        watchdog::guard(
            "capnp::set_up_fails_instead_of_hanging_when_the_child_is_gone",
            LIMIT,
            || {
                let (a, b) = UnixStream::pair().expect("socketpair");
                drop(b);
                assert!(Capnp.client(a).is_err());
            },
        );
    }
}
