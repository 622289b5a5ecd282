//! The `Probe` test interface: a typed blocking client for application
//! threads, and its server, whose methods run on the worker threads the
//! runtime assigns.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use multiprocess_callbacks::{Callback, CallbackInterface, Closure, ClosureServer, ResultFuture};
use multiprocess_thread_map::{CallContext, Error, RemoteObject, Result, ServeContext};

use crate::probe_capnp::{bench, counter, init, int_fn, probe};

/// The `IntFn` closure interface (`int(int)`), tied to Rust types.
pub struct IntFn;

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

/// The server of a closure passed as an `IntFn`.
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

/// A `Counter` of the peer: dropping it destroys the peer's object on the
/// worker mapped to the dropping thread.
pub struct CounterClient(pub multiprocess_thread_map::DestroyOnDrop<counter::Client>);

impl CounterClient {
    /// Adds one and returns the new value.
    pub fn increment(&self) -> Result<i32> {
        self.0.call("Counter.increment", |client, cx| {
            let mut request = client.increment_request();
            cx.set_context(request.get().init_context());
            let response = request.send().promise;
            async move { Ok(response.await?.get()?.get_value()) }
        })
    }
}

fn destroy_counter(client: &counter::Client, cx: &CallContext<'_>) -> ResultFuture<()> {
    let mut request = client.destroy_request();
    cx.set_context(request.get().init_context());
    let response = request.send().promise;
    Box::pin(async move {
        response.await?;
        Ok(())
    })
}

/// One `Counter` implementation dropped in this process.
#[derive(Debug, Clone, Copy)]
struct CounterDrop {
    /// The Counter's id (as `makeCounter` returned it).
    id: u64,
    /// The OS thread id of the thread that dropped it.
    tid: i64,
}

/// The `Counter` implementations dropped in this process, in order, with a
/// condition variable signalled at each drop.
#[derive(Default)]
struct CounterDropLog {
    drops: Mutex<Vec<CounterDrop>>,
    cv: Condvar,
}

fn counter_drop_log() -> &'static CounterDropLog {
    static DROPS: OnceLock<CounterDropLog> = OnceLock::new();
    DROPS.get_or_init(Default::default)
}

impl CounterDropLog {
    fn record(&self, drop: CounterDrop) {
        self.drops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(drop);
        self.cv.notify_all();
    }

    fn snapshot(&self) -> Vec<CounterDrop> {
        self.drops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The drops so far, once `done` holds for them (or after `timeout`,
    /// whatever they are).
    fn wait_until(
        &self,
        done: impl Fn(&[CounterDrop]) -> bool,
        timeout: Duration,
    ) -> Vec<CounterDrop> {
        let deadline = Instant::now().checked_add(timeout);
        let mut drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        while !done(&drops) {
            drops = match deadline {
                None => self.cv.wait(drops).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    self.cv
                        .wait_timeout(drops, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        drops.clone()
    }
}

/// The thread ids on which this process destroyed Counters, once there
/// are more than `seen` (or after `timeout`, however many there are).
///
/// Every Counter of the process counts, including those of other tests
/// running in parallel: to follow one Counter, use
/// [`local_counter_drops_of`].
pub fn local_counter_drops_after(seen: usize, timeout: Duration) -> Vec<i64> {
    counter_drop_log()
        .wait_until(|drops| drops.len() > seen, timeout)
        .iter()
        .map(|drop| drop.tid)
        .collect()
}

/// The thread ids on which this process destroyed the Counter `id` (see
/// [`ProbeClient::make_counter_with_id`]), once it has been destroyed (or
/// after `timeout`: then empty). A Counter is destroyed once, so more than
/// one entry is a bug.
pub fn local_counter_drops_of(id: u64, timeout: Duration) -> Vec<i64> {
    counter_drop_log()
        .wait_until(|drops| drops.iter().any(|drop| drop.id == id), timeout)
        .iter()
        .filter(|drop| drop.id == id)
        .map(|drop| drop.tid)
        .collect()
}

/// The implementation behind a served `Counter`.
struct CounterImpl {
    /// Unique in this process: names the Counter in the drop log.
    id: u64,
    value: std::sync::atomic::AtomicI32,
}

impl CounterImpl {
    fn new() -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            value: Default::default(),
        }
    }
}

impl Drop for CounterImpl {
    fn drop(&mut self) {
        counter_drop_log().record(CounterDrop {
            id: self.id,
            tid: tid(),
        });
    }
}

/// The server of `Counter`.
struct CounterServer {
    ctx: ServeContext,
    object: multiprocess_thread_map::ObjectSlot<CounterImpl>,
}

impl counter::Server for CounterServer {
    async fn destroy(
        self: Rc<Self>,
        params: counter::DestroyParams,
        _: counter::DestroyResults,
    ) -> capnp::Result<()> {
        let object = self.object.clone();
        self.ctx
            .run(params.get()?.get_context(), "Counter.destroy", move || {
                drop(object.take());
                Ok(())
            })
            .await
    }

    async fn increment(
        self: Rc<Self>,
        params: counter::IncrementParams,
        mut results: counter::IncrementResults,
    ) -> capnp::Result<()> {
        let object = self.object.clone();
        let value = self
            .ctx
            .run(
                params.get()?.get_context(),
                "Counter.increment",
                move || {
                    // The peer decides how often to call: wrap, as
                    // `fetch_add` does, rather than overflow.
                    Ok(object
                        .get()?
                        .value
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                        .wrapping_add(1))
                },
            )
            .await?;
        results.get().set_value(value);
        Ok(())
    }
}

/// The calling thread's OS thread id.
pub fn tid() -> i64 {
    multiprocess_event_loop::os_thread_id()
}

/// Which thread ran a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// OS thread id.
    pub tid: i64,
    /// Descriptive thread name.
    pub name: String,
}

/// The bootstrap interface of the test child, as application threads use it.
pub struct InitClient(pub RemoteObject<init::Client>);

impl InitClient {
    /// Asks the peer for a `Probe`.
    pub fn make_probe(&self) -> Result<ProbeClient> {
        self.0
            .call("Init.makeProbe", |init, cx| {
                let mut request = init.make_probe_request();
                cx.set_context(request.get().init_context());
                let response = request.send().promise;
                let adopter = cx.adopter();
                async move { adopter.adopt(response.await?.get()?.get_result()?) }
            })
            .map(ProbeClient)
    }

    /// Asks the peer for a `Bench` (calls answered on its loop thread).
    pub fn make_bench(&self) -> Result<RemoteObject<bench::Client>> {
        self.0.call("Init.makeBench", |init, cx| {
            let response = init.make_bench_request().send().promise;
            let adopter = cx.adopter();
            async move { adopter.adopt(response.await?.get()?.get_result()?) }
        })
    }
}

/// A `Probe` of the peer, callable from any thread.
pub struct ProbeClient(pub RemoteObject<probe::Client>);

macro_rules! context_call {
    ($self:ident, $name:literal, $request:ident, |$cx:ident, $params:ident| $fill:block, |$results:ident| $read:expr) => {
        $self.0.call($name, move |client, $cx| {
            let mut request = client.$request();
            {
                #[allow(unused_mut)]
                let mut $params = request.get();
                $cx.set_context($params.reborrow().init_context());
                $fill
            }
            let response = request.send().promise;
            async move {
                let response = response.await?;
                let $results = response.get()?;
                Ok($read)
            }
        })
    };
}

/// The body of `call_fn` and `recurse`, whose requests differ only in their
/// method and the name of the closure's argument: passes the closure
/// `$f` and `$arg`, and reads back `(result, tid)`.
macro_rules! closure_call {
    ($self:ident, $name:literal, $request:ident, $set_arg:ident, $f:ident, $arg:ident) => {
        context_call!(
            $self,
            $name,
            $request,
            |cx, p| {
                p.set_fn(multiprocess_callbacks::export::<IntFn>(cx, $f));
                p.$set_arg($arg);
            },
            |r| (r.get_result(), r.get_tid())
        )
    };
}

impl ProbeClient {
    /// `a + b`, computed by the peer.
    pub fn add(&self, a: i32, b: i32) -> Result<i32> {
        context_call!(
            self,
            "Probe.add",
            add_request,
            |cx, p| {
                p.set_a(a);
                p.set_b(b);
            },
            |r| r.get_result()
        )
    }

    /// Which peer thread ran this call.
    pub fn whoami(&self) -> Result<ThreadInfo> {
        context_call!(self, "Probe.whoami", whoami_request, |cx, p| {}, |r| {
            let info = r.get_result()?;
            ThreadInfo {
                tid: info.get_tid(),
                name: info.get_name()?.to_string()?,
            }
        })
    }

    /// Blocks the peer's worker until `open(gate)`.
    pub fn block(&self, gate: &str) -> Result<()> {
        let gate = gate.to_string();
        context_call!(
            self,
            "Probe.block",
            block_request,
            |cx, p| {
                p.set_gate(gate.as_str());
            },
            |_r| ()
        )
    }

    /// Releases every call blocked on `gate`.
    pub fn open(&self, gate: &str) -> Result<()> {
        let gate = gate.to_string();
        context_call!(
            self,
            "Probe.open",
            open_request,
            |cx, p| {
                p.set_gate(gate.as_str());
            },
            |_r| ()
        )
    }

    /// Returns once `count` calls are blocked on `gate`.
    pub fn wait_blocked(&self, gate: &str, count: u32) -> Result<()> {
        let gate = gate.to_string();
        context_call!(
            self,
            "Probe.waitBlocked",
            wait_blocked_request,
            |cx, p| {
                p.set_gate(gate.as_str());
                p.set_count(count);
            },
            |_r| ()
        )
    }

    /// Makes the peer's method fail with `message` (by panicking if `panic`).
    pub fn fail(&self, message: &str, panic: bool) -> Result<()> {
        let message = message.to_string();
        context_call!(
            self,
            "Probe.fail",
            fail_request,
            |cx, p| {
                p.set_message(message.as_str());
                p.set_panic(panic);
            },
            |_r| ()
        )
    }

    /// The peer's live worker threads and OS threads.
    pub fn stats(&self) -> Result<(u32, u32)> {
        context_call!(self, "Probe.stats", stats_request, |cx, p| {}, |r| (
            r.get_workers(),
            r.get_os_threads()
        ))
    }

    /// Passes `f` to the peer, which calls `f(arg)` from its worker; returns
    /// the result and the worker's thread id.
    pub fn call_fn(&self, f: Closure<i32, i32>, arg: i32) -> Result<(i32, i64)> {
        closure_call!(self, "Probe.callFn", call_fn_request, set_arg, f, arg)
    }

    /// Passes `f` to the peer, which calls `f(depth)` from its worker (and
    /// `f` may call `recurse` again); returns the result and the worker's
    /// thread id.
    pub fn recurse(&self, f: Closure<i32, i32>, depth: i32) -> Result<(i32, i64)> {
        closure_call!(self, "Probe.recurse", recurse_request, set_depth, f, depth)
    }

    /// Has the peer keep `f` (or drop the one it keeps, with `None`).
    pub fn save_fn(&self, f: Option<Closure<i32, i32>>) -> Result<()> {
        context_call!(
            self,
            "Probe.saveFn",
            save_fn_request,
            |cx, p| {
                if let Some(f) = f {
                    p.set_fn(multiprocess_callbacks::export::<IntFn>(cx, f));
                }
            },
            |_r| ()
        )
    }

    /// Has the peer's worker call the kept closure.
    pub fn call_saved(&self, arg: i32) -> Result<i32> {
        context_call!(
            self,
            "Probe.callSaved",
            call_saved_request,
            |cx, p| {
                p.set_arg(arg);
            },
            |r| r.get_result()
        )
    }

    /// Has the peer's notifier thread (serving no call) call the kept
    /// closure; returns its result and the notifier's thread id.
    pub fn call_saved_from_notifier(&self, arg: i32) -> Result<(i32, i64)> {
        context_call!(
            self,
            "Probe.callSavedFromNotifier",
            call_saved_from_notifier_request,
            |cx, p| {
                p.set_arg(arg);
            },
            |r| (r.get_result(), r.get_tid())
        )
    }

    /// Ends the peer's notifier thread.
    pub fn stop_notifier(&self) -> Result<()> {
        context_call!(
            self,
            "Probe.stopNotifier",
            stop_notifier_request,
            |cx, p| {},
            |_r| ()
        )
    }

    /// Has the peer close its end of the connection from inside this call,
    /// then block on `gate` (if not empty).
    pub fn disconnect(&self, then_block_on: &str) -> Result<()> {
        let gate = then_block_on.to_string();
        context_call!(
            self,
            "Probe.disconnect",
            disconnect_request,
            |cx, p| {
                p.set_then_block_on(gate.as_str());
            },
            |_r| ()
        )
    }

    /// A new `Counter` of the peer.
    pub fn make_counter(&self) -> Result<CounterClient> {
        self.make_counter_with_id().map(|(counter, _)| counter)
    }

    /// A new `Counter` of the peer, and its id, which names it in
    /// [`counter_drops_of`](Self::counter_drops_of) (and, for a peer in this
    /// process, in [`local_counter_drops_of`]).
    pub fn make_counter_with_id(&self) -> Result<(CounterClient, u64)> {
        self.0
            .call("Probe.makeCounter", |client, cx| {
                let mut request = client.make_counter_request();
                cx.set_context(request.get().init_context());
                let response = request.send().promise;
                let adopter = cx.adopter();
                async move {
                    let response = response.await?;
                    let results = response.get()?;
                    Ok((adopter.adopt(results.get_result()?)?, results.get_id()))
                }
            })
            .map(|(object, id)| {
                let counter = CounterClient(multiprocess_thread_map::DestroyOnDrop::new(
                    object,
                    "Counter.destroy",
                    destroy_counter,
                ));
                (counter, id)
            })
    }

    /// The thread ids on which the peer destroyed Counters (any Counter of
    /// its process: to follow one, use
    /// [`counter_drops_of`](Self::counter_drops_of)).
    pub fn counter_drops(&self) -> Result<Vec<i64>> {
        context_call!(
            self,
            "Probe.counterDrops",
            counter_drops_request,
            |cx, p| {},
            |r| r.get_tids()?.iter().collect()
        )
    }

    /// The thread ids on which the peer destroyed the Counter `id` (see
    /// [`make_counter_with_id`](Self::make_counter_with_id)): empty while it
    /// lives, one entry once destroyed (more would be a bug).
    pub fn counter_drops_of(&self, id: u64) -> Result<Vec<i64>> {
        context_call!(
            self,
            "Probe.counterDrops",
            counter_drops_request,
            |cx, p| {},
            |r| {
                let (tids, ids) = (r.get_tids()?, r.get_ids()?);
                if tids.len() != ids.len() {
                    return Err(capnp::Error::failed(format!(
                        "counterDrops: {} tids but {} ids",
                        tids.len(),
                        ids.len()
                    )));
                }
                ids.iter()
                    .zip(tids.iter())
                    .filter(|&(dropped, _)| dropped == id)
                    .map(|(_, tid)| tid)
                    .collect()
            }
        )
    }

    /// How many closures the peer keeps.
    pub fn saved_fn_count(&self) -> Result<u32> {
        context_call!(
            self,
            "Probe.savedFnCount",
            saved_fn_count_request,
            |cx, p| {},
            |r| r.get_count()
        )
    }

    /// Echoes `data`.
    pub fn echo(&self, data: Vec<u8>) -> Result<Vec<u8>> {
        context_call!(
            self,
            "Probe.echo",
            echo_request,
            |cx, p| {
                p.set_data(&data);
            },
            |r| r.get_result()?.to_vec()
        )
    }
}

/// Gates that `block` waits on and `open` opens (process-wide).
#[derive(Default)]
struct Gates {
    state: Mutex<HashMap<String, (bool, u32)>>,
    cv: Condvar,
}

fn gates() -> &'static Gates {
    static GATES: OnceLock<Gates> = OnceLock::new();
    GATES.get_or_init(Gates::default)
}

/// How long a gate waits before failing the call (a safety bound: tests
/// open their gates or disconnect long before).
const GATE_LIMIT: Duration = Duration::from_secs(60);

impl Gates {
    fn block(&self, gate: &str) -> Result<()> {
        let deadline = Instant::now() + GATE_LIMIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.entry(gate.to_string()).or_default().1 += 1;
        self.cv.notify_all();
        loop {
            if state.get(gate).is_some_and(|g| g.0) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::failed(format!("gate {gate} was never opened")));
            }
            state = self
                .cv
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(g) = state.get_mut(gate) {
            g.1 -= 1;
        }
        Ok(())
    }

    fn open(&self, gate: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.entry(gate.to_string()).or_default().0 = true;
        self.cv.notify_all();
    }

    fn wait_blocked(&self, gate: &str, count: u32) -> Result<()> {
        let deadline = Instant::now() + GATE_LIMIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.get(gate).map_or(0, |g| g.1) < count {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::failed(format!(
                    "fewer than {count} calls blocked on {gate}"
                )));
            }
            state = self
                .cv
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }
}

/// Opens `gate` in this process (for tests whose server runs in-process and
/// whose connection is gone).
pub fn open_gate(gate: &str) {
    gates().open(gate);
}

/// Number of OS threads of this process.
pub fn os_thread_count() -> u32 {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count() as u32)
        .unwrap_or(0)
}

/// This process's OS thread count once it has come down to `expected`, or
/// as it is after `timeout`: for leak checks after threads were joined.
///
/// A joined thread can still be listed in `/proc/self/task` for a moment:
/// the kernel wakes its joiner as the thread releases its memory, before it
/// removes the thread from the process (seen on a loaded machine: a loop
/// thread joined by `LoopHandle::drop` still listed, running, right after).
/// So a count above `expected` is read again until the deadline; a thread
/// that really leaked stays and fails the check.
pub fn os_thread_count_settled(expected: u32, timeout: Duration) -> u32 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let count = os_thread_count();
        if count <= expected || std::time::Instant::now() >= deadline {
            return count;
        }
        // The task's removal has no blocking wait; this polls the kernel's
        // bookkeeping, it does not order our own threads.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The server of `Init`: hands out Probes and Benches.
pub struct InitServer {
    ctx: ServeContext,
}

impl InitServer {
    /// The bootstrap capability for one connection.
    pub fn bootstrap(ctx: ServeContext) -> capnp::capability::Client {
        let client: init::Client = capnp_rpc::new_client(InitServer { ctx });
        client.client
    }
}

impl init::Server for InitServer {
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
        let params = params.get()?;
        self.ctx
            .run(params.get_context(), "Init.makeProbe", || Ok(()))
            .await?;
        results
            .get()
            .set_result(capnp_rpc::new_client(ProbeServer::new(self.ctx.clone())));
        Ok(())
    }

    async fn make_bench(
        self: Rc<Self>,
        _: init::MakeBenchParams,
        mut results: init::MakeBenchResults,
    ) -> capnp::Result<()> {
        results.get().set_result(capnp_rpc::new_client(BenchServer));
        Ok(())
    }
}

/// A thread of the server that serves no call, to invoke kept closures from.
struct Notifier {
    jobs: Option<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    fn start() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let thread = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (reply, result) = std::sync::mpsc::channel();
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::failed("notifier stopped"))?;
        jobs.send(Box::new(move || {
            let _ = reply.send(job());
        }))
        .map_err(|_| Error::failed("notifier stopped"))?;
        result
            .recv_timeout(GATE_LIMIT)
            .map_err(|_| Error::failed("notifier did not answer"))
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The server of `Probe`.
pub struct ProbeServer {
    ctx: ServeContext,
    saved: std::sync::Arc<Mutex<Option<Callback<IntFn>>>>,
    /// Dropped off the loop thread: ending the notifier joins its thread.
    notifier: multiprocess_thread_map::OffLoop<std::sync::Arc<Mutex<Option<Notifier>>>>,
}

impl ProbeServer {
    fn new(ctx: ServeContext) -> Self {
        Self {
            ctx,
            saved: Default::default(),
            notifier: multiprocess_thread_map::OffLoop::new(Default::default()),
        }
    }

    /// The body of `callFn` and `recurse`, which differ only in their
    /// method and the name of the argument: calls the peer's closure
    /// `f(arg)` from the worker serving `context`; returns its result and
    /// that worker's thread id.
    async fn call_closure(
        &self,
        method: &'static str,
        context: capnp::Result<multiprocess_thread_map::proxy_capnp::context::Reader<'_>>,
        f: capnp::Result<int_fn::Client>,
        arg: i32,
    ) -> capnp::Result<(i32, i64)> {
        let callback = Callback::<IntFn>::adopt(f?, &self.ctx).map_err(|e| e.to_capnp())?;
        self.ctx
            .run(context, method, move || Ok((callback.call(arg)?, tid())))
            .await
    }
}

fn saved_callback(saved: &Mutex<Option<Callback<IntFn>>>) -> Result<Callback<IntFn>> {
    saved
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| Error::failed("no closure saved"))
}

impl probe::Server for ProbeServer {
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

    async fn whoami(
        self: Rc<Self>,
        params: probe::WhoamiParams,
        mut results: probe::WhoamiResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (tid, name) = self
            .ctx
            .run(p.get_context(), "Probe.whoami", || {
                Ok((
                    multiprocess_event_loop::os_thread_id(),
                    multiprocess_thread_map::names::current_thread_name(),
                ))
            })
            .await?;
        let mut info = results.get().init_result();
        info.set_tid(tid);
        info.set_name(name.as_str());
        Ok(())
    }

    async fn block(
        self: Rc<Self>,
        params: probe::BlockParams,
        _: probe::BlockResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let gate = p.get_gate()?.to_string()?;
        self.ctx
            .run(p.get_context(), "Probe.block", move || gates().block(&gate))
            .await
    }

    async fn make_counter(
        self: Rc<Self>,
        params: probe::MakeCounterParams,
        mut results: probe::MakeCounterResults,
    ) -> capnp::Result<()> {
        self.ctx
            .run(params.get()?.get_context(), "Probe.makeCounter", || Ok(()))
            .await?;
        let counter = CounterImpl::new();
        let id = counter.id;
        let object = multiprocess_thread_map::ObjectSlot::new(counter);
        let mut results = results.get();
        results.set_result(capnp_rpc::new_client(CounterServer {
            ctx: self.ctx.clone(),
            object,
        }));
        results.set_id(id);
        Ok(())
    }

    async fn counter_drops(
        self: Rc<Self>,
        params: probe::CounterDropsParams,
        mut results: probe::CounterDropsResults,
    ) -> capnp::Result<()> {
        let drops = self
            .ctx
            .run(params.get()?.get_context(), "Probe.counterDrops", || {
                Ok(counter_drop_log().snapshot())
            })
            .await?;
        let len = u32::try_from(drops.len())
            .map_err(|_| capnp::Error::failed("too many Counter drops to list".into()))?;
        let mut results = results.get();
        let mut tids = results.reborrow().init_tids(len);
        for (i, drop) in (0..len).zip(&drops) {
            tids.set(i, drop.tid);
        }
        let mut ids = results.init_ids(len);
        for (i, drop) in (0..len).zip(&drops) {
            ids.set(i, drop.id);
        }
        Ok(())
    }

    async fn disconnect(
        self: Rc<Self>,
        params: probe::DisconnectParams,
        _: probe::DisconnectResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let gate = p.get_then_block_on()?.to_string()?;
        let ctx = self.ctx.clone();
        self.ctx
            .run(p.get_context(), "Probe.disconnect", move || {
                ctx.disconnect();
                // Answer only once the connection is gone, so the answer
                // cannot overtake the disconnect.
                ctx.wait_disconnected(GATE_LIMIT);
                if gate.is_empty() {
                    Ok(())
                } else {
                    gates().block(&gate)
                }
            })
            .await
    }

    async fn open(
        self: Rc<Self>,
        params: probe::OpenParams,
        _: probe::OpenResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let gate = p.get_gate()?.to_string()?;
        self.ctx
            .run(p.get_context(), "Probe.open", move || {
                gates().open(&gate);
                Ok(())
            })
            .await
    }

    async fn wait_blocked(
        self: Rc<Self>,
        params: probe::WaitBlockedParams,
        _: probe::WaitBlockedResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let gate = p.get_gate()?.to_string()?;
        let count = p.get_count();
        self.ctx
            .run(p.get_context(), "Probe.waitBlocked", move || {
                gates().wait_blocked(&gate, count)
            })
            .await
    }

    async fn fail(
        self: Rc<Self>,
        params: probe::FailParams,
        _: probe::FailResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let message = p.get_message()?.to_string()?;
        let panic = p.get_panic();
        self.ctx
            .run(p.get_context(), "Probe.fail", move || {
                if panic {
                    panic!("{message}");
                }
                // A method may fail with any kind of error, a disconnection
                // or an invalid thread of its own (from a call it made
                // further on), say: the caller must still see a remote error.
                Err(if let Some(rest) = message.strip_prefix("disconnected:") {
                    Error::Disconnected(rest.to_string())
                } else if let Some(rest) = message.strip_prefix("invalid-thread:") {
                    Error::InvalidThread(rest.to_string())
                } else {
                    Error::failed(message)
                })
            })
            .await
    }

    async fn stats(
        self: Rc<Self>,
        params: probe::StatsParams,
        mut results: probe::StatsResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (workers, threads) = self
            .ctx
            .run(p.get_context(), "Probe.stats", || {
                Ok((
                    multiprocess_thread_map::live_workers() as u32,
                    os_thread_count(),
                ))
            })
            .await?;
        let mut r = results.get();
        r.set_workers(workers);
        r.set_os_threads(threads);
        Ok(())
    }

    async fn call_fn(
        self: Rc<Self>,
        params: probe::CallFnParams,
        mut results: probe::CallFnResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (result, tid) = self
            .call_closure("Probe.callFn", p.get_context(), p.get_fn(), p.get_arg())
            .await?;
        let mut r = results.get();
        r.set_result(result);
        r.set_tid(tid);
        Ok(())
    }

    async fn recurse(
        self: Rc<Self>,
        params: probe::RecurseParams,
        mut results: probe::RecurseResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (result, tid) = self
            .call_closure("Probe.recurse", p.get_context(), p.get_fn(), p.get_depth())
            .await?;
        let mut r = results.get();
        r.set_result(result);
        r.set_tid(tid);
        Ok(())
    }

    async fn save_fn(
        self: Rc<Self>,
        params: probe::SaveFnParams,
        _: probe::SaveFnResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let callback = if p.has_fn() {
            Some(Callback::<IntFn>::adopt(p.get_fn()?, &self.ctx).map_err(|e| e.to_capnp())?)
        } else {
            None
        };
        let saved = self.saved.clone();
        self.ctx
            .run(p.get_context(), "Probe.saveFn", move || {
                let old = std::mem::replace(
                    &mut *saved.lock().unwrap_or_else(|p| p.into_inner()),
                    callback,
                );
                drop(old);
                Ok(())
            })
            .await
    }

    async fn call_saved(
        self: Rc<Self>,
        params: probe::CallSavedParams,
        mut results: probe::CallSavedResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let arg = p.get_arg();
        let saved = self.saved.clone();
        let result = self
            .ctx
            .run(p.get_context(), "Probe.callSaved", move || {
                saved_callback(&saved)?.call(arg)
            })
            .await?;
        results.get().set_result(result);
        Ok(())
    }

    async fn call_saved_from_notifier(
        self: Rc<Self>,
        params: probe::CallSavedFromNotifierParams,
        mut results: probe::CallSavedFromNotifierResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let arg = p.get_arg();
        let saved = self.saved.clone();
        let notifier = self.notifier.get().cloned().unwrap_or_default();
        let (result, tid) = self
            .ctx
            .run(p.get_context(), "Probe.callSavedFromNotifier", move || {
                let callback = saved_callback(&saved)?;
                let mut notifier = notifier.lock().unwrap_or_else(|p| p.into_inner());
                if notifier.is_none() {
                    *notifier = Some(Notifier::start().map_err(Error::from)?);
                }
                let notifier = notifier
                    .as_ref()
                    .ok_or_else(|| Error::failed("no notifier"))?;
                notifier.run(move || callback.call(arg).map(|r| (r, tid())))?
            })
            .await?;
        let mut r = results.get();
        r.set_result(result);
        r.set_tid(tid);
        Ok(())
    }

    async fn stop_notifier(
        self: Rc<Self>,
        params: probe::StopNotifierParams,
        _: probe::StopNotifierResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let notifier = self.notifier.get().cloned().unwrap_or_default();
        self.ctx
            .run(p.get_context(), "Probe.stopNotifier", move || {
                let stopped = notifier.lock().unwrap_or_else(|p| p.into_inner()).take();
                drop(stopped);
                Ok(())
            })
            .await
    }

    async fn saved_fn_count(
        self: Rc<Self>,
        params: probe::SavedFnCountParams,
        mut results: probe::SavedFnCountResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let saved = self.saved.clone();
        let count = self
            .ctx
            .run(p.get_context(), "Probe.savedFnCount", move || {
                Ok(u32::from(
                    saved.lock().unwrap_or_else(|p| p.into_inner()).is_some(),
                ))
            })
            .await?;
        results.get().set_count(count);
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
            .run(p.get_context(), "Probe.echo", move || Ok(data))
            .await?;
        results.get().set_result(&data);
        Ok(())
    }
}

/// The server of `Bench`: answers on the loop thread.
pub struct BenchServer;

impl bench::Server for BenchServer {
    async fn ping(
        self: Rc<Self>,
        params: bench::PingParams,
        mut results: bench::PingResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value();
        results.get().set_value(value);
        Ok(())
    }
}
