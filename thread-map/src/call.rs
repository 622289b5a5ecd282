//! Blocking calls with thread affinity: the client side (an application
//! thread blocks until the loop delivers the response) and the server side
//! (the loop hands the request to the worker named by `Context.thread`).
//!
//! # Hand-offs per call
//!
//! ```text
//!  client process                              server process
//!  app thread ─(1) post─▶ loop ══ request ══▶ loop ─(2) post─▶ worker
//!  app thread ◀─(4) reply─ loop ◀═ response ═ loop ◀─(3) wake── worker
//! ```
//!
//! Four cross-thread hand-offs, each one lock plus, if the other thread
//! sleeps, one wake-up: (1) `LoopHandle::post`, (2) `Waiter::post` to the
//! worker, (3) a oneshot that wakes the loop task awaiting the worker's
//! result, (4) `Reply::send` to the caller's Waiter. No capnp object crosses
//! a thread: parameters are read and results written on the loop thread.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use multiprocess_event_loop::timeline::{self, Step};
use multiprocess_event_loop::{Error, LoopContext, Result};

use crate::client_thread;
use crate::connection::{ClientThreadEntry, ConnState, RemoteObject, ServeContext};
use crate::loop_state;
use crate::proxy_capnp::context;
use crate::sync::global::{AtomicUsize, Ordering};
use crate::thread_server::ThreadServer;

/// What the code that builds a request gets on the loop thread: the
/// connection's `Context` for the calling thread, and a way to hand
/// capabilities in the response back to the application thread.
pub struct CallContext<'a> {
    conn: &'a Rc<ConnState>,
    entry: &'a ClientThreadEntry,
    thread: crate::proxy_capnp::thread::Client,
    request: u64,
}

thread_local! {
    /// The requests this thread is running, innermost last: (connection,
    /// key of the request's `Context.callbackThread`). A call this thread
    /// makes on one of those connections runs on that callback thread, which
    /// is the peer thread blocked waiting for this very request: that is how
    /// nested calls keep their affinity in both directions.
    static SERVING: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
}

/// The callback-thread key of the innermost request from connection
/// `conn_id` that the calling thread is serving.
fn serving_key(conn_id: u64) -> Option<usize> {
    SERVING.with(|serving| {
        serving
            .borrow()
            .iter()
            .rev()
            .find(|(conn, _)| *conn == conn_id)
            .map(|(_, key)| *key)
    })
}

/// Runs `job` as a request from `conn_id` whose callback thread is held
/// under `key`.
fn serving<R>(conn_id: u64, key: Option<usize>, job: impl FnOnce() -> R) -> R {
    let Some(key) = key else { return job() };
    SERVING.with(|serving| serving.borrow_mut().push((conn_id, key)));
    let result = job();
    SERVING.with(|serving| serving.borrow_mut().pop());
    result
}

impl CallContext<'_> {
    /// Fills a request's `Context`: the peer's worker for this thread, and
    /// this thread itself for callbacks.
    pub fn set_context(&self, mut context: context::Builder<'_>) {
        context.set_thread(self.thread.clone());
        context.set_callback_thread(self.entry.local.clone());
    }

    /// The peer thread this call runs on (what `set_context` puts in
    /// `Context.thread`): the peer's worker for the calling thread, or, if
    /// the calling thread is serving a request from the peer, the peer
    /// thread waiting for that request. For requests built by hand.
    pub fn remote_thread(&self) -> crate::proxy_capnp::thread::Client {
        self.thread.clone()
    }

    /// The calling thread's own `Thread` capability (what `set_context` puts
    /// in `Context.callbackThread`).
    pub fn callback_thread(&self) -> crate::proxy_capnp::thread::Client {
        self.entry.local.clone()
    }

    /// The context servers on this connection get: to serve a capability
    /// passed in the request (a closure, an object).
    pub fn serve_context(&self) -> ServeContext {
        self.conn.serve_context()
    }

    /// The peer's `ThreadMap` (from the `construct` handshake), to ask it for
    /// threads or pools directly.
    pub fn peer_thread_map(&self) -> Option<crate::proxy_capnp::thread_map::Client> {
        self.conn.peer_thread_map()
    }

    /// The request's number, for tracing: the `req` that the calling
    /// thread's trace lines and the peer thread's lines for this request
    /// both carry (each pair of threads numbers its requests from 1).
    pub fn request_number(&self) -> u64 {
        self.request
    }

    /// An [`Adopter`] for the response future: it turns capabilities the
    /// response carries into [`RemoteObject`]s application threads can hold.
    pub fn adopter(&self) -> Adopter {
        Adopter {
            conn: self.conn.clone(),
        }
    }
}

/// Turns capnp clients received on the loop thread into `Send` handles
/// ([`RemoteObject`]s). Loop thread only.
pub struct Adopter {
    conn: Rc<ConnState>,
}

impl Adopter {
    /// Keeps `client` on the loop thread and returns a handle to it. Fails
    /// if the connection is closing (its last handle is gone).
    pub fn adopt<C: Clone + 'static>(&self, client: C) -> capnp::Result<RemoteObject<C>> {
        self.conn.remote_object(client).map_err(|e| e.to_capnp())
    }
}

impl<C: Clone + 'static> RemoteObject<C> {
    /// Makes a blocking call on this object from the calling thread.
    ///
    /// `build` runs on the loop thread: it creates the request from the
    /// client, fills its parameters (calling [`CallContext::set_context`] for
    /// the `context` parameter), sends it, and returns a future that reads
    /// the response into a `Send` value. The calling thread blocks until that
    /// value arrives, running callbacks posted to it meanwhile. The call runs
    /// on the peer's worker thread dedicated to the calling thread.
    ///
    /// `build` may borrow from the caller (a `&str` parameter, say): the
    /// call does not return before `build` has run or been dropped, so the
    /// parameters are written straight into the request, with no copy. The
    /// future it returns must own what it holds.
    pub fn call<'a, T, F, Fut>(&self, method: &'static str, build: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&C, &CallContext<'_>) -> Fut + Send + 'a,
        Fut: Future<Output = capnp::Result<T>> + 'static,
    {
        timeline::mark(Step::CallEntry);
        // On a loop thread the wait below would never end (on this
        // connection's loop, which has to deliver the reply) or would stall
        // every connection of another loop for a round trip.
        if multiprocess_event_loop::on_a_loop_thread() {
            return Err(Error::WrongThread(format!(
                "{method} is a blocking call; make it from an application or worker thread"
            )));
        }
        let (thread_id, waiter, thread_name) = client_thread::with_current(|thread| {
            thread.remember(&self.conn);
            (thread.id, thread.waiter.clone(), thread.name.clone())
        });
        let serving = serving_key(self.conn.id);
        let (slot, reply) = waiter.reply_slot_with::<T>(
            |method| Error::Disconnected(format!("the connection closed during {method}")),
            method,
        );
        // The loop side must not hold the connection's strong handle: if it
        // dropped the last one, the loop thread would end up dropping the last
        // LoopHandle and could not join itself.
        let conn_id = self.conn.id;
        let conn_name = self.conn.name.clone();
        let key = self.key;
        let thread_waiter = waiter.clone();
        let mut scoped = Scoped {
            build: Some(build),
            reply: Some(reply),
        };
        let job: Box<dyn FnOnce() + Send + 'a> = Box::new(move || {
            timeline::mark(Step::CallPickedUp);
            let Some(conn) = loop_state::with(|state| state.conn(conn_id)) else {
                return scoped.fail(Error::Disconnected(format!("{conn_name} is closed")));
            };
            let Some(client) = conn.object::<C>(key) else {
                return scoped.fail(Error::Disconnected(format!("{conn_name} is closed")));
            };
            let entry =
                match conn.client_thread(thread_id, || thread_name.to_string(), &thread_waiter) {
                    Ok(entry) => entry,
                    Err(e) => return scoped.fail(e),
                };
            // The peer thread to run on: the one waiting for the request
            // this thread serves (a callback), or the peer's worker for it.
            let (thread, server, request) = match serving.and_then(|key| conn.callback_thread(key))
            {
                Some((thread, name)) => (thread, name, entry.next_callback()),
                None => match entry.remote(&conn) {
                    Ok(thread) => (thread, entry.remote_name.clone(), entry.next_call()),
                    Err(e) => return scoped.fail(e),
                },
            };
            tracing::debug!(target: "multiprocess", req = request, method, thread = %entry.name, server = %server, connection = %conn.name, "IPC client send");
            let Some(build) = scoped.build.take() else {
                return;
            };
            let future = {
                let cx = CallContext {
                    conn: &conn,
                    entry: &entry,
                    thread,
                    request,
                };
                build(&client, &cx)
            };
            timeline::mark(Step::RequestBuilt);
            // `build` is gone: from here on nothing borrows from the caller.
            let Some(reply) = scoped.reply.take() else {
                return;
            };
            let thread_name = entry.name.clone();
            LoopContext::with(|cx| {
                // The reply is due soon: the loop's waits until then are of
                // their own kind for adaptive spinning.
                let expecting = cx.expect_soon();
                cx.spawn(async move {
                    let result = future.await.map_err(|e| Error::from_capnp_call(e, method));
                    timeline::mark(Step::ResponseDone);
                    drop(expecting);
                    match &result {
                        Ok(_) => tracing::debug!(target: "multiprocess", req = request, method, thread = %thread_name, server = %server, "IPC client recv"),
                        Err(e) => tracing::debug!(target: "multiprocess", req = request, method, thread = %thread_name, server = %server, "IPC client recv error: {e}"),
                    }
                    reply.send(result);
                })
            });
        });
        // SAFETY: the job may borrow from the caller for `'a`; erasing that
        // lifetime is sound because the caller cannot leave this function
        // (and end `'a`) before the job has run its `build` or dropped it:
        // - the wait below returns only once the reply is sent or dropped,
        //   and `Scoped` puts `build` away first on every path (run, failed
        //   early, job dropped unrun by a loop that shut down);
        // - if `post` fails, it has dropped the job before returning;
        // - a panic unwinding out of the wait (a runtime bug: the jobs a
        //   waiter runs catch their own) aborts rather than return early.
        let job: multiprocess_event_loop::mailbox::Job = unsafe {
            std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Box<dyn FnOnce() + Send + 'static>>(
                job,
            )
        };
        self.conn.handle.post_boxed(job)?;
        let abort_on_unwind = AbortOnUnwind;
        let result = waiter.wait(&slot, || {
            format!("the reply to {method} on {}", self.conn.name)
        });
        std::mem::forget(abort_on_unwind);
        timeline::mark(Step::CallerWoken);
        result
    }
}

/// A call's `build` closure and its reply, put away in that order: the
/// reply (which ends the caller's wait) never goes before `build` (which
/// may borrow from the caller).
struct Scoped<F, T> {
    build: Option<F>,
    reply: Option<multiprocess_event_loop::Reply<T>>,
}

impl<F, T> Scoped<F, T> {
    /// Ends the call with `error`, `build` unrun.
    fn fail(&mut self, error: Error) {
        self.build = None;
        if let Some(reply) = self.reply.take() {
            reply.send(Err(error));
        }
    }
}

impl<F, T> Drop for Scoped<F, T> {
    fn drop(&mut self) {
        // Fields drop in order after this, but say it: `build` first.
        self.build = None;
        self.reply = None;
    }
}

/// Aborts the process if dropped: armed while a call waits for a reply the
/// loop may still be writing from the caller's borrowed parameters.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("multiprocess: a blocking call unwound before its reply; aborting");
        std::process::abort();
    }
}

impl ServeContext {
    /// Runs `job` on the thread the request's `Context` names, and returns a
    /// future (for the loop) that resolves to its value.
    ///
    /// The thread must be one this connection's `ThreadMap` made (or, with
    /// no `Context.thread`, one of its pool); anything else fails with an
    /// invalid-thread error for the caller. A job that panics or returns an
    /// error becomes a remote error for the caller; the worker carries on.
    pub fn run<T, J>(
        &self,
        context: capnp::Result<context::Reader<'_>>,
        method: &'static str,
        job: J,
    ) -> impl Future<Output = capnp::Result<T>> + 'static
    where
        T: Send + 'static,
        J: FnOnce() -> Result<T> + Send + 'static,
    {
        let (thread, callback) = context_threads(context);
        self.run_inner(thread, callback, method, job, None)
    }

    /// [`run`](Self::run), keeping the request's parameters alive (on this
    /// loop thread) until `job` has run or been dropped, even if the peer
    /// cancels the call first: so `job` may use what it borrows from them
    /// (a `Data` or `Text` parameter, read in place rather than copied).
    /// `context_of` reads the request's `Context` from them.
    pub fn run_lending<T, J>(
        &self,
        params: Box<dyn capnp::private::capability::ParamsHook>,
        context_of: impl FnOnce(
            &dyn capnp::private::capability::ParamsHook,
        ) -> capnp::Result<context::Reader<'_>>,
        method: &'static str,
        job: J,
    ) -> impl Future<Output = capnp::Result<T>> + 'static
    where
        T: Send + 'static,
        J: FnOnce() -> Result<T> + Send + 'static,
    {
        let (thread, callback) = context_threads(context_of(&*params));
        self.run_inner(thread, callback, method, job, Some(params))
    }

    fn run_inner<T, J>(
        &self,
        thread: capnp::Result<Option<capnp::Result<crate::proxy_capnp::thread::Client>>>,
        callback: Option<capnp::Result<crate::proxy_capnp::thread::Client>>,
        method: &'static str,
        job: J,
        lent: Option<Box<dyn capnp::private::capability::ParamsHook>>,
    ) -> impl Future<Output = capnp::Result<T>> + 'static
    where
        T: Send + 'static,
        J: FnOnce() -> Result<T> + Send + 'static,
    {
        let conn_id = self.conn_id;
        let poster = self.poster.clone();
        // What the job captured (the caller's closure and values) may block
        // or call out as it drops: if the job never runs (the request fails
        // before it is posted, its thread refuses it, or the peer cancels
        // it first), it is dropped off the loop thread.
        let job = crate::cleanup::OffLoop::new(job);
        async move {
            timeline::mark(Step::ServeStart);
            let conn = loop_state::with(|state| state.conn(conn_id))
                .ok_or_else(|| capnp::Error::disconnected("connection closed".to_string()))?;
            let server = resolve_thread(&conn, thread?).await.map_err(|e| {
                tracing::debug!(target: "multiprocess", method, connection = %conn.name, "IPC server recv error: {e}");
                e.to_capnp()
            })?;
            timeline::mark(Step::ThreadResolved);
            let request = server.next_request();
            tracing::debug!(target: "multiprocess", req = request, method, thread = %server.name, client = %server.peer, connection = %conn.name, "IPC server recv");
            // A drained listener is disconnecting this connection: the
            // request must not start on a worker now (`drain.rs`).
            let Ok(running) = crate::drain::enter(conn_id) else {
                return Err(capnp::Error::disconnected(format!(
                    "{method} refused: the server is shutting down"
                )));
            };
            let in_flight = InFlight::start(&conn, &server, callback, poster, lent, running);
            let callback_key = in_flight.callback_key();
            let job_hold = in_flight.clone();
            let (sender, receiver) = futures::channel::oneshot::channel();
            let mut job = job;
            let run = move || {
                timeline::mark(Step::JobStart);
                // Always there: only this closure takes it.
                let Some(job) = job.take() else { return };
                // Run inside a wait of this thread with too little stack
                // left, the request would nest deeper than the stack holds
                // (a peer that queues requests decides how deep): refused,
                // with an error for its caller; the job is dropped here,
                // off the loop thread, as if it had run.
                let outcome = match multiprocess_event_loop::stack::check_nesting(method) {
                    Ok(()) => Ok(serving(conn_id, callback_key, || {
                        std::panic::catch_unwind(AssertUnwindSafe(job))
                    })),
                    Err(refused) => {
                        drop(job);
                        Err(refused)
                    }
                };
                // Let go before answering: then, unless the request was
                // cancelled meanwhile, the loop lets go last and releases
                // the callback thread itself, with no extra hand-off.
                drop(job_hold);
                timeline::mark(Step::JobEnd);
                let _ = sender.send(outcome);
            };
            // The worker's answer is due soon (see `expect_soon`).
            let expecting = LoopContext::with(|cx| cx.expect_soon());
            timeline::mark(Step::PostedToThread);
            server.post(Box::new(run)).map_err(|e| e.to_capnp())?;
            // The future may be dropped at the await (the peer cancelled the
            // call): the job still holds the request, which keeps counting
            // in the worker's load until the job has run.
            let outcome = receiver.await;
            timeline::mark(Step::OutcomeOnLoop);
            drop(expecting);
            drop(in_flight);
            let result = match outcome {
                Ok(Err(refused)) => {
                    tracing::debug!(target: "multiprocess", req = request, method, thread = %server.name, "{refused}");
                    Err(refused.to_capnp())
                }
                Ok(Ok(job)) => Error::job_reply(method, job),
                Err(_) => Err(capnp::Error::failed(format!(
                    "thread {} exited before running {method}",
                    server.name
                ))),
            };
            match &result {
                Ok(_) => {
                    tracing::debug!(target: "multiprocess", req = request, method, thread = %server.name, client = %server.peer, "IPC server send")
                }
                Err(e) => {
                    tracing::debug!(target: "multiprocess", req = request, method, thread = %server.name, client = %server.peer, "IPC server send error: {}", e.extra)
                }
            }
            result
        }
    }
}

/// A request being served, held by both sides that still need it: the
/// loop's future (until the answer is sent, or the peer cancels the call)
/// and the job on the worker (until it has run; it makes nested calls on
/// the request's callback thread). While either holds it, the request
/// counts in its thread's load (for pool dispatch) and its
/// `Context.callbackThread` stays held in the connection; the last one to
/// let go undoes both.
#[derive(Clone)]
struct InFlight(crate::sync::Arc<InFlightState>);

struct InFlightState {
    /// The serving thread's count of requests in flight.
    depth: crate::sync::Arc<AtomicUsize>,
    /// The request's `Context.callbackThread`, if it had one.
    callback: Option<CallbackKey>,
    /// Its place in its listener's count of running requests (`drain.rs`).
    _running: Option<crate::drain::Running>,
    /// The request's parameters, lent to the job (`run_lending`).
    _lent: Option<LentParams>,
}

thread_local! {
    /// Requests' parameters lent to jobs still running, on the loop thread
    /// that received them (`ServeContext::run_lending`).
    static LENT: RefCell<slab::Slab<Box<dyn capnp::private::capability::ParamsHook>>> =
        RefCell::new(slab::Slab::new());
}

/// A request's parameters held in `LENT` under `key`, until the last
/// holder of the request lets go: the loop's future (normally, so they are
/// released at once, on the loop) or, if the peer cancelled the call, the
/// job (then their release is posted to the loop, which owns them).
struct LentParams {
    key: usize,
    poster: multiprocess_event_loop::LoopPoster,
}

impl Drop for LentParams {
    fn drop(&mut self) {
        let key = self.key;
        // If the loop is gone, so is what it held.
        let _ = self.poster.post(move || {
            let released = LENT.with(|lent| lent.borrow_mut().try_remove(key));
            drop(released);
        });
    }
}

/// The threads a request's `Context` names: the one to run on, and the one
/// to call back.
#[allow(clippy::type_complexity)]
fn context_threads(
    context: capnp::Result<context::Reader<'_>>,
) -> (
    capnp::Result<Option<capnp::Result<crate::proxy_capnp::thread::Client>>>,
    Option<capnp::Result<crate::proxy_capnp::thread::Client>>,
) {
    match context {
        Ok(c) => (
            Ok(c.has_thread().then(|| c.get_thread())),
            c.has_callback_thread().then(|| c.get_callback_thread()),
        ),
        Err(e) => (Err(e), None),
    }
}

/// A `Context.callbackThread` held in the connection under `key`.
struct CallbackKey {
    conn_id: u64,
    key: usize,
    /// The connection's loop, where the key is released.
    poster: multiprocess_event_loop::LoopPoster,
}

impl InFlight {
    /// Loop thread only: counts the request in `server`'s load and holds
    /// its callback thread, if it named one, and its place in its
    /// listener's count (`drain::enter`).
    fn start(
        conn: &Rc<ConnState>,
        server: &ThreadServer,
        callback: Option<capnp::Result<crate::proxy_capnp::thread::Client>>,
        poster: multiprocess_event_loop::LoopPoster,
        lent: Option<Box<dyn capnp::private::capability::ParamsHook>>,
        running: Option<crate::drain::Running>,
    ) -> Self {
        server.depth.fetch_add(1, Ordering::Relaxed);
        let lent = lent.map(|params| LentParams {
            key: LENT.with(|lent| lent.borrow_mut().insert(params)),
            poster: poster.clone(),
        });
        let callback = match callback {
            Some(Ok(thread)) => {
                server.keep_callback_thread(&thread);
                Some(CallbackKey {
                    conn_id: conn.id,
                    key: conn.hold_callback_thread(thread, server.peer.clone()),
                    poster,
                })
            }
            _ => None,
        };
        Self(crate::sync::Arc::new(InFlightState {
            depth: server.depth.clone(),
            callback,
            _running: running,
            _lent: lent,
        }))
    }

    /// The connection's key for the request's callback thread.
    fn callback_key(&self) -> Option<usize> {
        self.0.callback.as_ref().map(|callback| callback.key)
    }
}

impl Drop for InFlightState {
    fn drop(&mut self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for CallbackKey {
    fn drop(&mut self) {
        let (conn_id, key) = (self.conn_id, self.key);
        // Runs at once on the loop thread; from a worker, it is posted (only
        // when the request was cancelled before its job finished). If the
        // loop is gone, so is the connection and what it held.
        let _ = self.poster.post(move || {
            if let Some(conn) = loop_state::with(|state| state.conn(conn_id)) {
                conn.release_callback_thread(key);
            }
        });
    }
}

/// Finds the thread a request must run on.
async fn resolve_thread(
    conn: &Rc<ConnState>,
    thread: Option<capnp::Result<crate::proxy_capnp::thread::Client>>,
) -> Result<Rc<ThreadServer>> {
    match thread {
        Some(client) => {
            let client = client
                .map_err(|e| Error::InvalidThread(format!("unreadable Context.thread: {e}")))?;
            let resolved = capnp::capability::get_resolved_cap(client).await;
            let Some(server) = loop_state::with(|state| state.local_thread(&resolved)) else {
                return Err(not_a_thread(resolved).await);
            };
            if server.conn_id != conn.id {
                return Err(Error::InvalidThread(format!(
                    "Context.thread {} belongs to another connection",
                    server.name
                )));
            }
            Ok(server)
        }
        None => {
            let pool = conn.pool.borrow();
            pool.iter()
                .min_by_key(|worker| worker.load())
                .cloned()
                .ok_or_else(|| {
                    Error::InvalidThread("no thread specified and no pool configured".to_string())
                })
        }
    }
}

/// Why `thread` (resolved, and not one of ours) cannot run a request: an
/// invalid-thread error that, for a broken capability (an unknown export id,
/// the promise of a `makeThread` that failed), says why it broke. Asking a
/// broken capability anything fails at once, with no message sent. Any other
/// capability is simply not a thread of ours.
async fn not_a_thread(thread: crate::proxy_capnp::thread::Client) -> Error {
    let invalid =
        || Error::InvalidThread("Context.thread is not a thread this process made".to_string());
    // Brand 0: not imported from a peer (local or broken), so the request
    // below never crosses a connection and cannot wait on a peer.
    if thread.client.hook.get_brand() != 0 {
        return invalid();
    }
    match thread.get_name_request().send().promise.await {
        Err(e) if e.kind != capnp::ErrorKind::Unimplemented => Error::InvalidThread(format!(
            "Context.thread is not a thread this process made: it is broken: {}",
            Error::from_capnp(e)
        )),
        _ => invalid(),
    }
}
