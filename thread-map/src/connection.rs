//! Connections: one capnp-rpc two-party `RpcSystem` over one socket, the
//! `construct` handshake that exchanges ThreadMaps, and the handles
//! application threads hold.
//!
//! Each connection has two halves:
//! - [`ConnState`], on the loop thread: the capnp objects (the peer's
//!   ThreadMap, the per-application-thread `Thread` capabilities, the clients
//!   behind [`RemoteObject`]s, the pool);
//! - [`Connection`] (`Send + Sync`): what application threads hold. Dropping
//!   the last `Connection` and the last `RemoteObject` closes the connection.
//!
//! When the socket closes, for whatever reason, `ConnState::closed` drops the
//! loop-side tables (releasing the workers the peer made for us and ours for
//! it), and every thread waiting on the connection wakes with
//! [`Error::Disconnected`].

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use capnp::capability::FromClientHook;
use capnp_rpc::RpcSystem;
use capnp_rpc::rpc_twoparty_capnp::Side;
use futures::io::{BufReader, BufWriter};
use multiprocess_event_loop::timeline::{self, Step};
use multiprocess_event_loop::{Error, LoopContext, LoopHandle, LoopPoster, Result, Socket, Waiter};
use slab::Slab;

use crate::bootstrap_capnp::bootstrap;
use crate::loop_state;
use crate::names::PeerName;
use crate::network::{ConnectionLimits, Network};
use crate::proxy_capnp::{thread, thread_map};
use crate::sync::global::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, Condvar, Mutex, Weak};
use crate::thread_server::{ThreadMapServer, ThreadServer};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Socket buffer sizes: one read or write system call per message in the
/// common case.
const BUFFER: usize = 64 * 1024;

/// Whether a connection is still up, shared by both halves.
pub(crate) struct ConnStatus {
    closed: Mutex<Option<Error>>,
    cv: Condvar,
    /// Told when the connection closes, besides this status's own waiters
    /// (a listener's count of closed connections).
    counters: Mutex<Vec<Arc<CloseCounter>>>,
}

impl ConnStatus {
    pub(crate) fn new() -> Self {
        Self {
            closed: Mutex::new(None),
            cv: Condvar::new(),
            counters: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn set(&self, error: Error) {
        let mut closed = self.closed.lock();
        if closed.is_none() {
            *closed = Some(error);
        }
        drop(closed);
        self.cv.notify_all();
        let counters = std::mem::take(&mut *self.counters.lock());
        for counter in counters {
            counter.count();
        }
    }

    /// Counts this connection's close in `counter`: when it closes, or now
    /// if it already has.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn count_close_in(&self, counter: Arc<CloseCounter>) {
        let mut counters = self.counters.lock();
        // `set` records the close before it takes the counters: a close
        // either finds `counter` here or is seen below.
        if self.closed.lock().is_some() {
            drop(counters);
            counter.count();
        } else {
            counters.push(counter);
        }
    }

    fn get(&self) -> Option<Error> {
        self.closed.lock().clone()
    }

    pub(crate) fn wait(&self, timeout: Duration) -> Option<Error> {
        let deadline = crate::deadline::deadline_after(timeout);
        let mut closed = self.closed.lock();
        while closed.is_none() {
            closed = self.cv.wait_until(closed, deadline).ok()?;
        }
        closed.clone()
    }
}

/// How many of a set of connections have closed, for waiting until one
/// more has (see [`ConnStatus::count_close_in`]).
#[derive(Default)]
pub(crate) struct CloseCounter {
    closed: Mutex<u64>,
    cv: Condvar,
}

impl CloseCounter {
    fn count(&self) {
        *self.closed.lock() += 1;
        self.cv.notify_all();
    }

    /// How many have closed so far.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn closed(&self) -> u64 {
        *self.closed.lock()
    }

    /// Blocks until more than `seen` have closed, or `deadline` (`None`:
    /// no deadline); returns whether more have.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn wait_beyond(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut closed = self.closed.lock();
        while *closed <= seen {
            match self.cv.wait_until(closed, deadline) {
                Ok(guard) => closed = guard,
                Err(_) => return false,
            }
        }
        true
    }
}

/// Sets a connection's status as it goes, whether `ConnState::closed`
/// returns or unwinds.
struct TellWaiters<'a> {
    status: &'a ConnStatus,
    error: Option<Error>,
}

impl Drop for TellWaiters<'_> {
    fn drop(&mut self) {
        if let Some(error) = self.error.take() {
            self.status.set(error);
        }
    }
}

/// A connection's `Thread` capabilities for one thread of this process: the
/// thread itself (sent as `Context.callbackThread`), and the worker the peer
/// made for it, requested on the first call that needs one.
pub(crate) struct ClientThreadEntry {
    pub(crate) name: Arc<str>,
    remote: RefCell<Option<thread::Client>>,
    /// The name of the peer's worker for this thread, learned (when
    /// tracing) with a `getName` pipelined on `makeThread`.
    pub(crate) remote_name: PeerName,
    pub(crate) local: thread::Client,
    /// Requests sent to the peer's worker, and callbacks sent to the peer
    /// thread whose request this thread serves: numbered as the receiving
    /// thread numbers them, so both ends trace the same `req`.
    calls: Cell<u64>,
    callbacks: Cell<u64>,
}

impl ClientThreadEntry {
    /// The peer's worker for this thread, requested now if it was not yet:
    /// with a pipelined `makeThread`, so the call that needs it costs no
    /// extra round trip.
    ///
    /// Until `makeThread` returns, the capability is a promise that requests
    /// name by the question that made it (`receiverAnswer`); once it returns,
    /// the entry holds the capability from the response instead, which
    /// requests name directly (`receiverHosted`), sparing both ends the
    /// pipeline lookup on every call. (capnp-rpc resolves a pipelined
    /// capability only while its pipeline is alive, so without this the
    /// promise would stay a promise for good.)
    /// Numbers a request this thread sends to the peer's worker for it.
    pub(crate) fn next_call(&self) -> u64 {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        n
    }

    /// Numbers a callback this thread sends to the peer thread whose
    /// request it serves.
    pub(crate) fn next_callback(&self) -> u64 {
        let n = self.callbacks.get() + 1;
        self.callbacks.set(n);
        n
    }

    pub(crate) fn remote(self: &Rc<Self>, conn: &ConnState) -> Result<thread::Client> {
        if let Some(remote) = self.remote.borrow().as_ref() {
            return Ok(remote.clone());
        }
        let Some(peer_map) = conn.peer_thread_map() else {
            return Err(Error::InvalidThread(
                "the peer gave no ThreadMap: the connection's construct handshake has not run"
                    .to_string(),
            ));
        };
        let mut request = peer_map.make_thread_request();
        request.get().set_name(&*self.name);
        tracing::debug!(target: "multiprocess", method = "ThreadMap.makeThread", thread = %self.name, connection = %conn.name, "IPC client send");
        let capnp::capability::RemotePromise { promise, pipeline } = request.send();
        let remote = pipeline.get_result();
        if tracing::enabled!(target: "multiprocess", tracing::Level::DEBUG) {
            self.learn_remote_name(&remote);
        }
        let entry = Rc::downgrade(self);
        LoopContext::with(|cx| {
            cx.spawn(async move {
                let resolved = promise
                    .await
                    .and_then(|response| response.get()?.get_result());
                drop(pipeline);
                let Some(entry) = entry.upgrade() else { return };
                match resolved {
                    Ok(thread) => {
                        tracing::debug!(target: "multiprocess", method = "ThreadMap.makeThread", thread = %entry.name, server = %entry.remote_name, "IPC client recv");
                        *entry.remote.borrow_mut() = Some(thread);
                    }
                    Err(e) => {
                        // The calls already made with the promise fail with
                        // this error; the thread's next call asks again.
                        tracing::debug!(target: "multiprocess", method = "ThreadMap.makeThread", thread = %entry.name, "IPC client recv error: {e}");
                        *entry.remote.borrow_mut() = None;
                    }
                }
            })
        });
        *self.remote.borrow_mut() = Some(remote.clone());
        Ok(remote)
    }

    /// Asks the peer's worker `remote` (pipelined on its `makeThread`) for
    /// its name, so that trace lines name both ends of each call.
    fn learn_remote_name(&self, remote: &thread::Client) {
        tracing::debug!(target: "multiprocess", method = "Thread.getName", thread = %self.name, "IPC client send");
        let promise = remote.get_name_request().send().promise;
        let (thread_name, remote_name) = (self.name.clone(), self.remote_name.clone());
        LoopContext::with(|cx| {
            cx.spawn(async move {
                let named = promise.await.and_then(|response| {
                    let name = response.get()?.get_result()?;
                    Ok(multiprocess_event_loop::bounded::text_from_peer(
                        name.as_bytes(),
                        crate::names::MAX_PEER_THREAD_NAME,
                    ))
                });
                match named {
                    Ok(name) => {
                        remote_name.learn(&name);
                        tracing::debug!(target: "multiprocess", method = "Thread.getName", thread = %thread_name, server = %remote_name, "IPC client recv");
                    }
                    Err(e) => tracing::debug!(target: "multiprocess", method = "Thread.getName", thread = %thread_name, "IPC client recv error: {e}"),
                }
            })
        });
    }
}

/// capnp-rpc's future that closes a connection cleanly.
type Disconnector = Pin<Box<dyn Future<Output = capnp::Result<()>>>>;

/// The loop-thread half of a connection.
pub(crate) struct ConnState {
    pub(crate) id: u64,
    pub(crate) name: String,
    status: Arc<ConnStatus>,
    peer_thread_map: RefCell<Option<thread_map::Client>>,
    client_threads: RefCell<HashMap<u64, Rc<ClientThreadEntry>>>,
    objects: RefCell<Slab<Box<dyn Any>>>,
    pub(crate) pool: RefCell<Vec<Rc<ThreadServer>>>,
    workers: RefCell<Vec<std::rc::Weak<ThreadServer>>>,
    /// The worker threads made for the peer that have not exited yet
    /// (whether or not the peer still holds their `Thread`).
    pub(crate) worker_threads: Arc<AtomicUsize>,
    /// The `Context.callbackThread` of each request being served, by key:
    /// the thread serving it calls back on that thread.
    callback_threads: RefCell<Slab<(thread::Client, PeerName)>>,
    disconnector: RefCell<Option<Disconnector>>,
    /// Who waits for the peer's `construct` or the connection's end (a
    /// listener's handshake deadline, [`ConnState::watch_handshake`]).
    handshake_watcher: RefCell<Option<std::task::Waker>>,
    is_closed: Cell<bool>,
    poster: LoopPoster,
    shared: Weak<ConnShared>,
}

impl ConnState {
    /// Stores a client for a `RemoteObject` and returns its key.
    pub(crate) fn adopt(&self, client: Box<dyn Any>) -> usize {
        self.objects.borrow_mut().insert(client)
    }

    /// The client stored under `key`, if it has type `C`.
    pub(crate) fn object<C: Clone + 'static>(&self, key: usize) -> Option<C> {
        self.objects
            .borrow()
            .get(key)
            .and_then(|o| o.downcast_ref::<C>())
            .cloned()
    }

    fn drop_object(&self, key: usize) {
        let removed = self.objects.borrow_mut().try_remove(key);
        drop(removed);
    }

    /// The peer's ThreadMap, once `construct` has run.
    pub(crate) fn peer_thread_map(&self) -> Option<thread_map::Client> {
        self.peer_thread_map.borrow().clone()
    }

    /// Whether the peer has called `construct` (this side serving).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn constructed(&self) -> bool {
        self.peer_thread_map.borrow().is_some()
    }

    /// Wakes `waker` when the peer calls `construct` or the connection
    /// closes (the last waker given is the one woken).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn watch_handshake(&self, waker: &std::task::Waker) {
        *self.handshake_watcher.borrow_mut() = Some(waker.clone());
    }

    fn handshake_settled(&self) {
        if let Some(waker) = self.handshake_watcher.borrow_mut().take() {
            waker.wake();
        }
    }

    /// The `Thread` capabilities of thread `thread_id` of this process on
    /// this connection, made on its first call.
    pub(crate) fn client_thread(
        &self,
        thread_id: u64,
        name: impl FnOnce() -> String,
        waiter: &Arc<Waiter>,
    ) -> Result<Rc<ClientThreadEntry>> {
        if let Some(entry) = self.client_threads.borrow().get(&thread_id) {
            return Ok(entry.clone());
        }
        // One copy, shared by the entry and the thread's server.
        let name: Arc<str> = name().into();
        let remote_name = PeerName::default();
        let local_server = Rc::new(ThreadServer::caller(
            name.clone(),
            self.id,
            waiter.clone(),
            remote_name.clone(),
        ));
        let local = loop_state::with(|state| state.add_thread(local_server));
        let entry = Rc::new(ClientThreadEntry {
            name,
            remote: RefCell::new(None),
            remote_name,
            local,
            calls: Cell::new(0),
            callbacks: Cell::new(0),
        });
        self.client_threads
            .borrow_mut()
            .insert(thread_id, entry.clone());
        Ok(entry)
    }

    /// Forgets application thread `thread_id` (it exited): releases its
    /// worker on the peer.
    pub(crate) fn remove_client_thread(&self, thread_id: u64) {
        let removed = self.client_threads.borrow_mut().remove(&thread_id);
        drop(removed);
    }

    /// Keeps a served request's `Context.callbackThread` while it runs,
    /// with its name for tracing.
    pub(crate) fn hold_callback_thread(&self, thread: thread::Client, name: PeerName) -> usize {
        self.callback_threads.borrow_mut().insert((thread, name))
    }

    /// The callback thread held under `key`, and its name.
    pub(crate) fn callback_thread(&self, key: usize) -> Option<(thread::Client, PeerName)> {
        self.callback_threads.borrow().get(key).cloned()
    }

    /// Releases a served request's callback thread once it has finished.
    pub(crate) fn release_callback_thread(&self, key: usize) {
        let removed = self.callback_threads.borrow_mut().try_remove(key);
        drop(removed);
    }

    /// Keeps `client` on the loop thread and returns a handle to it that
    /// any thread may hold. Fails if the connection is closing (its last
    /// handle is gone).
    pub(crate) fn remote_object<C: Clone + 'static>(&self, client: C) -> Result<RemoteObject<C>> {
        let shared = self
            .shared()
            .ok_or_else(|| Error::Disconnected("connection closing".to_string()))?;
        let key = self.adopt(Box::new(client));
        Ok(RemoteObject::new(shared, key))
    }

    /// Fails, for `what`, if starting `more` worker threads for the peer
    /// would take the process past [`crate::max_workers`] or the connection
    /// past [`crate::max_workers_per_connection`].
    pub(crate) fn check_worker_room(&self, what: &str, more: usize) -> capnp::Result<()> {
        crate::worker::check_process_room(what, more).map_err(capnp::Error::overloaded)?;
        let limit = crate::worker::max_workers_per_connection();
        let live = self.worker_threads.load(Ordering::Relaxed);
        if live.saturating_add(more) > limit {
            return Err(capnp::Error::overloaded(format!(
                "{what} refused: this connection already has {live} worker threads (at most {limit})"
            )));
        }
        Ok(())
    }

    /// Remembers a worker made for the peer, to end it when the connection
    /// dies.
    pub(crate) fn track_worker(&self, server: &Rc<ThreadServer>) {
        let mut workers = self.workers.borrow_mut();
        workers.retain(|w| w.strong_count() > 0);
        workers.push(Rc::downgrade(server));
    }

    /// Records that the connection is gone and drops its tables. Idempotent.
    pub(crate) fn closed(&self, error: Error) {
        if self.is_closed.replace(true) {
            return;
        }
        // Waiters learn why it closed once the tables below are gone, or as
        // soon as anything here panics (a tracing subscriber writing to a
        // closed stderr, a destructor): never may they wait for good.
        let _tell_waiters = TellWaiters {
            status: &self.status,
            error: Some(error.clone()),
        };
        tracing::debug!(target: "multiprocess", connection = %self.name, "connection closed: {error}");
        self.handshake_settled();
        let threads = std::mem::take(&mut *self.client_threads.borrow_mut());
        let objects = std::mem::take(&mut *self.objects.borrow_mut());
        let pool = std::mem::take(&mut *self.pool.borrow_mut());
        let map = self.peer_thread_map.borrow_mut().take();
        let disconnector = self.disconnector.borrow_mut().take();
        let workers = std::mem::take(&mut *self.workers.borrow_mut());
        let callback_threads = std::mem::take(&mut *self.callback_threads.borrow_mut());
        for worker in workers.iter().filter_map(std::rc::Weak::upgrade) {
            worker.shutdown();
        }
        for worker in &pool {
            worker.shutdown();
        }
        drop((
            threads,
            objects,
            pool,
            map,
            disconnector,
            workers,
            callback_threads,
        ));
    }

    /// Starts closing the connection from our side.
    pub(crate) fn close(&self) {
        let disconnector = self.disconnector.borrow_mut().take();
        if let Some(disconnector) = disconnector {
            LoopContext::with(|cx| {
                cx.spawn(async move {
                    let _ = disconnector.await;
                })
            });
        }
    }

    /// The application threads' handle, while any exists.
    pub(crate) fn shared(&self) -> Option<Arc<ConnShared>> {
        self.shared.upgrade()
    }

    /// The context for servers of objects on this connection.
    pub(crate) fn serve_context(&self) -> ServeContext {
        ServeContext {
            conn_id: self.id,
            poster: self.poster.clone(),
            status: self.status.clone(),
        }
    }

    /// A poster for the loop this connection lives on.
    pub(crate) fn poster(&self) -> &LoopPoster {
        &self.poster
    }
}

/// The shared, `Send + Sync` half of a connection.
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) handle: LoopHandle,
    status: Arc<ConnStatus>,
}

impl Drop for ConnShared {
    fn drop(&mut self) {
        let _ = self.handle.post(close_on_loop(self.id));
    }
}

/// Which end of a connection this process is; a server serves its
/// bootstrap capability.
enum End {
    Client,
    Server(capnp::capability::Client),
}

/// Starts the loop-thread half of a connection over `stream`. Runs on the
/// loop thread.
fn start_conn(
    shared: Weak<ConnShared>,
    id: u64,
    name: String,
    status: Arc<ConnStatus>,
    stream: Socket,
    end: End,
    limits: ConnectionLimits,
) -> Result<(Rc<ConnState>, Option<capnp::capability::Client>)> {
    let setup = LoopContext::with(|cx| -> Result<_> {
        let (reader, writer) = cx.stream(stream)?.split();
        let (side, bootstrap) = match end {
            End::Client => (Side::Client, None),
            End::Server(bootstrap) => (Side::Server, Some(bootstrap)),
        };
        let network = Network::new(
            BufReader::with_capacity(BUFFER, reader),
            BufWriter::with_capacity(BUFFER, writer),
            side,
            limits,
        );
        let mut rpc = RpcSystem::new(Box::new(network), bootstrap);
        // capnp-rpc prints its background tasks' failures to stdout, which
        // belongs to the program: they go to the trace instead.
        let traced_name = name.clone();
        rpc.set_background_error_handler(move |e| {
            if e.kind == capnp::ErrorKind::Disconnected {
                tracing::debug!(target: "multiprocess", connection = %traced_name, "capnp-rpc background task: {e}");
            } else {
                tracing::warn!(target: "multiprocess", connection = %traced_name, "capnp-rpc background task failed: {e}");
            }
        });
        let peer_bootstrap = match side {
            Side::Client => Some(rpc.bootstrap::<capnp::capability::Client>(Side::Server)),
            _ => None,
        };
        let disconnector = rpc.get_disconnector();
        let conn = Rc::new(ConnState {
            id,
            name,
            status,
            peer_thread_map: RefCell::new(None),
            client_threads: RefCell::new(HashMap::new()),
            objects: RefCell::new(Slab::new()),
            pool: RefCell::new(Vec::new()),
            workers: RefCell::new(Vec::new()),
            worker_threads: Arc::default(),
            callback_threads: RefCell::new(Slab::new()),
            disconnector: RefCell::new(Some(Box::pin(disconnector))),
            handshake_watcher: RefCell::new(None),
            is_closed: Cell::new(false),
            poster: cx.poster(),
            shared,
        });
        loop_state::with(|state| state.insert_conn(conn.clone()));
        cx.spawn(async move {
            let error = match rpc.await {
                Ok(()) => Error::Disconnected("the connection was closed".to_string()),
                // capnp's errors about malformed input (an out-of-bounds
                // pointer, say) carry their description in `kind` and leave
                // `extra` empty: keep the description, never a blank reason.
                Err(e) if e.extra.is_empty() => Error::Disconnected(e.kind.to_string()),
                // An `Abort`'s reason comes from the peer, and the
                // connection keeps it (and hands a copy to every waiter).
                Err(mut e) => {
                    multiprocess_event_loop::bounded::truncate(
                        &mut e.extra,
                        multiprocess_event_loop::bounded::MAX_ERROR_MESSAGE,
                    );
                    Error::Disconnected(e.extra)
                }
            };
            if let Some(conn) = loop_state::with(|state| state.remove_conn(id)) {
                conn.closed(error);
            }
        });
        Ok((conn, peer_bootstrap))
    });
    setup.unwrap_or(Err(Error::LoopShutDown))
}

/// Context given to the code that builds a server's objects for one
/// connection: which connection they serve, and the loop they live on.
#[derive(Clone)]
pub struct ServeContext {
    pub(crate) conn_id: u64,
    pub(crate) poster: LoopPoster,
    status: Arc<ConnStatus>,
}

impl fmt::Debug for ServeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeContext")
            .field("connection", &self.conn_id)
            .finish()
    }
}

impl ServeContext {
    /// Answers the bootstrap interface's `construct` call: keeps the peer's
    /// ThreadMap for this connection and returns ours. Call it from the
    /// `construct @0` method of your bootstrap interface. Loop thread only.
    pub fn construct(&self, peer_thread_map: thread_map::Client) -> Result<thread_map::Client> {
        let conn = loop_state::with(|state| state.conn(self.conn_id))
            .ok_or_else(|| Error::Disconnected("connection closed".to_string()))?;
        tracing::debug!(target: "multiprocess", method = "construct", connection = %conn.name, "IPC server recv");
        *conn.peer_thread_map.borrow_mut() = Some(peer_thread_map);
        conn.handshake_settled();
        tracing::debug!(target: "multiprocess", method = "construct", connection = %conn.name, "IPC server send");
        Ok(capnp_rpc::new_client(ThreadMapServer {
            conn_id: self.conn_id,
            poster: self.poster.clone(),
        }))
    }

    /// Makes a capability a request carried (a closure, an object) usable by
    /// any thread of this process. Loop thread only.
    pub fn adopt<C: Clone + 'static>(&self, client: C) -> Result<RemoteObject<C>> {
        timeline::mark(Step::Adopt);
        loop_state::with(|state| state.conn(self.conn_id))
            .ok_or_else(|| Error::Disconnected("connection closed".to_string()))?
            .remote_object(client)
    }

    /// Blocks until the connection served has closed, or `timeout` passes;
    /// returns why it closed. On a loop thread it does not wait (see
    /// [`Connection::wait_disconnected`]).
    pub fn wait_disconnected(&self, timeout: Duration) -> Option<Error> {
        self.status.wait(timeout)
    }

    /// Closes the connection served, from this side (any thread).
    pub fn disconnect(&self) {
        let _ = self.poster.post(close_on_loop(self.conn_id));
    }

    /// The id of the connection served.
    pub fn connection_id(&self) -> u64 {
        self.conn_id
    }
}

/// One connection to a peer process. `Send + Sync`.
///
/// The connection stays open while this handle, or any [`RemoteObject`]
/// obtained through it, is alive, and while the peer keeps it open.
pub struct Connection {
    shared: Arc<ConnShared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the peer on `stream` (a Unix or TCP socket), runs the
    /// `construct` handshake on its bootstrap capability (which must have
    /// `construct @0 (threadMap) -> (threadMap)`, as Bitcoin Core's `Init`
    /// does), and returns the connection with the bootstrap capability as a
    /// `C`.
    ///
    /// Blocks the calling thread for the handshake's round trip, so on an
    /// event-loop thread it fails with [`Error::WrongThread`] (the loop
    /// would wait for itself, or stall its connections). The peer is held
    /// to the default [`ConnectionLimits`].
    pub fn connect<C>(
        event_loop: &LoopHandle,
        stream: impl Into<Socket>,
    ) -> Result<(Connection, RemoteObject<C>)>
    where
        C: FromClientHook + capnp::traits::HasTypeId + Clone + 'static,
    {
        Self::connect_with_limits(event_loop, stream, ConnectionLimits::default())
    }

    /// Like [`connect`](Self::connect), holding the peer to `limits`.
    pub fn connect_with_limits<C>(
        event_loop: &LoopHandle,
        stream: impl Into<Socket>,
        limits: ConnectionLimits,
    ) -> Result<(Connection, RemoteObject<C>)>
    where
        C: FromClientHook + capnp::traits::HasTypeId + Clone + 'static,
    {
        if multiprocess_event_loop::on_a_loop_thread() {
            return Err(Error::WrongThread(
                "connecting blocks for the handshake; connect from an application or worker thread"
                    .to_string(),
            ));
        }
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let name = format!("connection-{id} (client)");
        let status = Arc::new(ConnStatus::new());
        let shared = Arc::new(ConnShared {
            id,
            name: name.as_str().into(),
            handle: event_loop.clone(),
            status: status.clone(),
        });
        let weak = Arc::downgrade(&shared);
        let stream = stream.into();
        let waiter = Waiter::current();
        let (slot, reply) = waiter.reply_slot::<usize>(Error::Disconnected(
            "the connection closed during its handshake".into(),
        ));
        event_loop.post(move || {
            let (conn, bootstrap) = match start_conn(weak, id, name, status, stream, End::Client, limits) {
                Ok((conn, Some(bootstrap))) => (conn, bootstrap),
                Ok((_, None)) => return reply.send(Err(Error::Protocol("no bootstrap capability".into()))),
                Err(e) => return reply.send(Err(e)),
            };
            let ours: thread_map::Client = capnp_rpc::new_client(ThreadMapServer { conn_id: id, poster: conn.poster().clone() });
            let mut request = bootstrap
                .new_call::<bootstrap::construct_params::Owned, bootstrap::construct_results::Owned>(C::TYPE_ID, 0, None);
            request.get().set_thread_map(ours);
            tracing::debug!(target: "multiprocess", method = "construct", connection = %conn.name, "IPC client send");
            let response = request.send().promise;
            LoopContext::with(|cx| {
                cx.spawn(async move {
                    let outcome = async {
                        let response = response.await?;
                        let peer_map = response.get()?.get_thread_map()?;
                        Ok::<_, capnp::Error>(peer_map)
                    }
                    .await;
                    match &outcome {
                        Ok(_) => tracing::debug!(target: "multiprocess", method = "construct", connection = %conn.name, "IPC client recv"),
                        Err(e) => tracing::debug!(target: "multiprocess", method = "construct", connection = %conn.name, "IPC client recv error: {e}"),
                    }
                    match outcome {
                        Ok(peer_map) => {
                            *conn.peer_thread_map.borrow_mut() = Some(peer_map);
                            let key = conn.adopt(Box::new(C::new(bootstrap.hook)));
                            reply.send(Ok(key));
                        }
                        Err(e) => reply.send(Err(Error::from_capnp(e))),
                    }
                })
            });
        })?;
        let key = waiter.wait(&slot, || "the construct handshake".to_string())?;
        let object = RemoteObject {
            conn: shared.clone(),
            key,
            marker: PhantomData,
        };
        Ok((Connection { shared }, object))
    }

    /// Serves the peer on `stream` (a Unix or TCP socket): `make_bootstrap`
    /// builds, on the loop thread, the bootstrap capability the peer gets
    /// (its `construct @0` should answer with [`ServeContext::construct`]).
    ///
    /// Call it from an application thread or from `event_loop`'s own thread;
    /// from another loop's thread it fails with [`Error::WrongThread`] (see
    /// [`LoopHandle::sync`]). The peer is held to the default
    /// [`ConnectionLimits`].
    pub fn serve<F>(
        event_loop: &LoopHandle,
        stream: impl Into<Socket>,
        make_bootstrap: F,
    ) -> Result<Connection>
    where
        F: FnOnce(ServeContext) -> capnp::capability::Client + Send + 'static,
    {
        Self::serve_with_limits(
            event_loop,
            stream,
            make_bootstrap,
            ConnectionLimits::default(),
        )
    }

    /// Like [`serve`](Self::serve), holding the peer to `limits`.
    pub fn serve_with_limits<F>(
        event_loop: &LoopHandle,
        stream: impl Into<Socket>,
        make_bootstrap: F,
        limits: ConnectionLimits,
    ) -> Result<Connection>
    where
        F: FnOnce(ServeContext) -> capnp::capability::Client + Send + 'static,
    {
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let name = format!("connection-{id} (server)");
        let status = Arc::new(ConnStatus::new());
        let shared = Arc::new(ConnShared {
            id,
            name: name.as_str().into(),
            handle: event_loop.clone(),
            status: status.clone(),
        });
        let weak = Arc::downgrade(&shared);
        let stream = stream.into();
        event_loop.sync(move || {
            let poster = LoopContext::with(|cx| cx.poster()).ok_or(Error::LoopShutDown)?;
            let bootstrap = make_bootstrap(ServeContext {
                conn_id: id,
                poster,
                status: status.clone(),
            });
            start_conn(
                weak,
                id,
                name,
                status,
                stream,
                End::Server(bootstrap),
                limits,
            )
            .map(|_| ())
        })??;
        Ok(Connection { shared })
    }

    /// Whether the connection is gone.
    pub fn is_disconnected(&self) -> bool {
        self.shared.status.get().is_some()
    }

    /// Its status, to wait on without holding the connection open.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn status(&self) -> Arc<ConnStatus> {
        self.shared.status.clone()
    }

    /// Why the connection closed, if it has.
    pub fn disconnect_reason(&self) -> Option<Error> {
        self.shared.status.get()
    }

    /// Blocks until the connection closes or `timeout` passes; returns why it
    /// closed, or `None` on timeout. On a loop thread, which is what closes
    /// connections and so must never wait for one, it only looks: `None`
    /// if the connection is still open.
    pub fn wait_disconnected(&self, timeout: Duration) -> Option<Error> {
        self.shared.status.wait(timeout)
    }

    /// Closes the connection from this side.
    pub fn disconnect(&self) {
        let _ = self.shared.handle.post(close_on_loop(self.shared.id));
    }

    /// The loop the connection lives on.
    pub fn event_loop(&self) -> &LoopHandle {
        &self.shared.handle
    }

    /// The connection's name (for logs).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The connection's number in this process (the `N` of its name).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }
}

/// A capability of the peer (a capnp client of type `C`), held for an
/// application thread. `Send + Sync`.
///
/// The capnp client itself stays on the loop thread; this handle names it.
/// Dropping the handle releases the capability (on the loop thread).
pub struct RemoteObject<C> {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) key: usize,
    marker: PhantomData<fn() -> C>,
}

impl<C> fmt::Debug for RemoteObject<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteObject")
            .field("connection", &self.conn.name)
            .field("key", &self.key)
            .finish()
    }
}

impl<C> RemoteObject<C> {
    pub(crate) fn new(conn: Arc<ConnShared>, key: usize) -> Self {
        Self {
            conn,
            key,
            marker: PhantomData,
        }
    }

    /// The id of the connection this object is reached through (what
    /// [`ServeContext::connection_id`] gives for the same connection).
    pub fn connection_id(&self) -> u64 {
        self.conn.id
    }

    /// On the connection's loop thread: the capnp client this handle names,
    /// to pass it back to the peer in a request or response. `None` off
    /// that thread, or once the connection has closed.
    pub fn client_on_loop(&self) -> Option<C>
    where
        C: Clone + 'static,
    {
        if !self.conn.handle.is_loop_thread() {
            return None;
        }
        loop_state::with(|state| state.conn(self.conn.id))?.object::<C>(self.key)
    }

    /// The connection this object is reached through.
    pub fn connection(&self) -> Connection {
        Connection {
            shared: self.conn.clone(),
        }
    }
}

/// Sends an interface's `destroy` request (on the loop thread, filling its
/// `context` with `cx.set_context`) and returns a future of its completion.
pub type DestroyFn<C> =
    fn(&C, &crate::CallContext<'_>) -> Pin<Box<dyn Future<Output = capnp::Result<()>> + 'static>>;

/// A [`RemoteObject`] of an interface that declares `destroy @0 (context
/// :Proxy.Context)`: dropping it calls `destroy` (a blocking call, so the
/// object's destructor runs on the peer's worker mapped to the dropping
/// thread, as libmultiprocess does) before releasing the capability.
/// [`DestroyOnDrop::destroy`] does the same and reports failure. Dropped on
/// a loop thread (where blocking calls fail with [`Error::WrongThread`]) or
/// by a thread unwinding from a panic (which should not block on the peer),
/// it is only released.
pub struct DestroyOnDrop<C: Clone + 'static> {
    object: Option<RemoteObject<C>>,
    destroy: DestroyFn<C>,
    method: &'static str,
}

impl<C: Clone + 'static> DestroyOnDrop<C> {
    /// Wraps `object`; `destroy` sends its `destroy` request, traced as
    /// `method`.
    pub fn new(object: RemoteObject<C>, method: &'static str, destroy: DestroyFn<C>) -> Self {
        Self {
            object: Some(object),
            destroy,
            method,
        }
    }

    /// Destroys the peer's object now (a blocking call, like any other),
    /// then releases it: unlike dropping, this says whether `destroy` failed.
    pub fn destroy(mut self) -> Result<()> {
        match self.object.take() {
            Some(object) => object.call(self.method, self.destroy),
            None => Ok(()),
        }
    }
}

impl<C: Clone + 'static> std::fmt::Debug for DestroyOnDrop<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestroyOnDrop")
            .field("object", &self.object)
            .field("destroy", &self.method)
            .finish()
    }
}

impl<C: Clone + 'static> std::ops::Deref for DestroyOnDrop<C> {
    type Target = RemoteObject<C>;

    fn deref(&self) -> &RemoteObject<C> {
        match &self.object {
            Some(object) => object,
            None => unreachable!("the object is only taken by drop and destroy, which consume it"),
        }
    }
}

impl<C: Clone + 'static> Drop for DestroyOnDrop<C> {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        // A thread unwinding from a panic should not block on the peer: it
        // only releases. So does a loop thread, which `call` refuses.
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = object.call(self.method, self.destroy) {
            tracing::debug!(target: "multiprocess", method = self.method, "destroy failed, releasing: {e}");
        }
    }
}

impl<C> Drop for RemoteObject<C> {
    fn drop(&mut self) {
        timeline::mark(Step::RemoteObjectDropped);
        let (id, key) = (self.conn.id, self.key);
        let _ = self.conn.handle.post(move || {
            if let Some(conn) = loop_state::with(|state| state.conn(id)) {
                conn.drop_object(key);
            }
        });
    }
}

/// What closes connection `id` from this side, to post to its loop.
fn close_on_loop(id: u64) -> impl FnOnce() + Send + 'static {
    move || {
        if let Some(conn) = loop_state::with(|state| state.conn(id)) {
            conn.close();
        }
    }
}
