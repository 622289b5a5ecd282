//! The hand-written baseline of `call-hand`, `callback-hand` and `payload-hand`: the same
//! `Probe.add`, `Probe.callFn` and `Probe.echo` requests as `call`, `callback` and `payload`
//! (the same schema, so the same bytes on the wire), but built and served by hand on
//! [`RemoteObject::call`] and [`ServeContext::run`] instead of the generated proxies. It is what
//! every user wrote before the proxies were generated; it stays here so that each run of
//! `mpbench` measures what the generated code costs beside it (issue 13: within 5%).
//!
//! Only the three methods measured are served; the others answer capnp's "unimplemented".

use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use mp_testkit::probe_capnp::{init, int_fn, probe};
use multiprocess_callbacks::{Callback, CallbackInterface, Closure, ClosureServer, ResultFuture};
use multiprocess_thread_map::{CallContext, Connection, EventLoop, LoopHandle, RemoteObject};
use multiprocess_thread_map::{Error, ServeContext};

use super::runtime::to_io;

/// The `IntFn` closure interface (`int(int)`), tied to Rust types by hand.
pub(crate) struct IntFn;

impl CallbackInterface for IntFn {
    type Client = int_fn::Client;
    type Arg = i32;
    type Ret = i32;
    const METHOD: &'static str = "IntFn.call";

    fn call(client: &int_fn::Client, cx: &CallContext<'_>, arg: i32) -> ResultFuture<i32> {
        let mut request = client.call_request();
        cx.set_context(request.get().init_context());
        request.get().set_arg(arg);
        let response = request.send().promise;
        Box::pin(async move { Ok(response.await?.get()?.get_result()) })
    }

    fn serve(closure: ClosureServer<i32, i32>) -> int_fn::Client {
        capnp_rpc::new_client(IntFnServer(closure))
    }
}

/// Serves a closure passed as an `IntFn`.
struct IntFnServer(ClosureServer<i32, i32>);

impl int_fn::Server for IntFnServer {
    async fn call(
        self: Rc<Self>,
        params: int_fn::CallParams,
        mut results: int_fn::CallResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let result = self
            .0
            .invoke(p.get_context(), "IntFn.call", p.get_arg())
            .await?;
        results.get().set_result(result);
        Ok(())
    }
}

/// The parent's end: a connection to the child and the `Probe` it handed out, as bare
/// capabilities.
///
/// Fields drop in order: the capabilities, then the connection, then the loop (see
/// [`runtime::Parent`](super::runtime::Parent)).
pub(crate) struct HandProbe {
    probe: RemoteObject<probe::Client>,
    _init: RemoteObject<init::Client>,
    _connection: Connection,
    _event_loop: LoopHandle,
}

impl HandProbe {
    /// Starts an event loop called `loop_name`, connects over `conn` and asks for a `Probe`.
    pub(crate) fn connect(conn: UnixStream, loop_name: &str) -> io::Result<HandProbe> {
        let event_loop = EventLoop::start(loop_name)?;
        let (connection, init) =
            Connection::connect::<init::Client>(&event_loop, conn).map_err(to_io)?;
        let probe = init
            .call("Init.makeProbe", |init, cx| {
                let mut request = init.make_probe_request();
                cx.set_context(request.get().init_context());
                let response = request.send().promise;
                let adopter = cx.adopter();
                async move { adopter.adopt(response.await?.get()?.get_result()?) }
            })
            .map_err(to_io)?;
        Ok(HandProbe {
            probe,
            _init: init,
            _connection: connection,
            _event_loop: event_loop,
        })
    }

    /// `Probe.add(a, b)`.
    pub(crate) fn add(&self, a: i32, b: i32) -> io::Result<i32> {
        self.probe
            .call("Probe.add", move |client, cx| {
                let mut request = client.add_request();
                let mut params = request.get();
                cx.set_context(params.reborrow().init_context());
                params.set_a(a);
                params.set_b(b);
                let response = request.send().promise;
                async move { Ok(response.await?.get()?.get_result()) }
            })
            .map_err(to_io)
    }

    /// `Probe.callFn(f, arg)`: the result of `f(arg)`, which the child calls back.
    pub(crate) fn call_fn(&self, f: Closure<i32, i32>, arg: i32) -> io::Result<i32> {
        self.probe
            .call("Probe.callFn", move |client, cx| {
                let mut request = client.call_fn_request();
                let mut params = request.get();
                cx.set_context(params.reborrow().init_context());
                params.set_fn(multiprocess_callbacks::export::<IntFn>(cx, f));
                params.set_arg(arg);
                let response = request.send().promise;
                async move { Ok(response.await?.get()?.get_result()) }
            })
            .map_err(to_io)
    }

    /// `Probe.echo(data)`. It borrows `data`, as the generated client does: an echo that took
    /// its buffer (as this one did before the proxies were generated) would free a megabyte on
    /// the loop thread inside every sample, which costs about as much as the echo itself.
    pub(crate) fn echo(&self, data: &[u8]) -> io::Result<Vec<u8>> {
        self.probe
            .call("Probe.echo", move |client, cx| {
                let mut request = client.echo_request();
                let mut params = request.get();
                cx.set_context(params.reborrow().init_context());
                params.set_data(data);
                let response = request.send().promise;
                async move { Ok(response.await?.get()?.get_result()?.to_vec()) }
            })
            .map_err(to_io)
    }
}

/// In the child: serves the hand-written `Init` over `conn` on an event loop called
/// `loop_name` until the parent closes the connection.
pub(crate) fn serve(conn: UnixStream, loop_name: &str) -> io::Result<()> {
    mp_testkit::serve_child_with(loop_name, conn, |ctx| {
        let init: init::Client = capnp_rpc::new_client(HandInit { ctx });
        init.client
    })
    .map_err(to_io)
}

/// The hand-written `Init`: answers the handshake and hands out [`HandProbeServer`]s.
struct HandInit {
    ctx: ServeContext,
}

impl init::Server for HandInit {
    async fn construct(
        self: Rc<Self>,
        params: init::ConstructParams,
        mut results: init::ConstructResults,
    ) -> capnp::Result<()> {
        let peer = params.get()?.get_thread_map()?;
        let ours = self.ctx.construct(peer).map_err(|e| e.to_capnp())?;
        results.get().set_thread_map(ours);
        Ok(())
    }

    async fn make_probe(
        self: Rc<Self>,
        params: init::MakeProbeParams,
        mut results: init::MakeProbeResults,
    ) -> capnp::Result<()> {
        self.ctx
            .run(params.get()?.get_context(), "Init.makeProbe", || Ok(()))
            .await?;
        results
            .get()
            .set_result(capnp_rpc::new_client(HandProbeServer {
                ctx: self.ctx.clone(),
            }));
        Ok(())
    }
}

/// The hand-written `Probe`: `add`, `callFn` and `echo`, each run on the worker the request's
/// `Context` names.
struct HandProbeServer {
    ctx: ServeContext,
}

impl probe::Server for HandProbeServer {
    async fn add(
        self: Rc<Self>,
        params: probe::AddParams,
        mut results: probe::AddResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (a, b) = (p.get_a(), p.get_b());
        let sum = self
            .ctx
            .run(p.get_context(), "Probe.add", move || Ok(a.wrapping_add(b)))
            .await?;
        results.get().set_result(sum);
        Ok(())
    }

    async fn call_fn(
        self: Rc<Self>,
        params: probe::CallFnParams,
        mut results: probe::CallFnResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let callback =
            Callback::<IntFn>::adopt(p.get_fn()?, &self.ctx).map_err(|e| e.to_capnp())?;
        let arg = p.get_arg();
        let (result, tid) = self
            .ctx
            .run(p.get_context(), "Probe.callFn", move || {
                Ok((callback.call(arg)?, multiprocess::os_thread_id()))
            })
            .await?;
        let mut r = results.get();
        r.set_result(result);
        r.set_tid(tid);
        Ok(())
    }

    async fn echo(
        self: Rc<Self>,
        params: probe::EchoParams,
        mut results: probe::EchoResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let data = p.get_data()?.to_vec();
        let data = self
            .ctx
            .run(p.get_context(), "Probe.echo", move || Ok::<_, Error>(data))
            .await?;
        results.get().set_result(&data);
        Ok(())
    }
}
