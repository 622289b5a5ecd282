//! Listening on an address: a socket anyone allowed may connect to, served
//! from the loop thread like every other socket (Bitcoin Core's
//! `-ipcbind`).
//!
//! # Design
//!
//! The listening socket is registered with the loop's mio reactor; a task
//! on the loop accepts. Each accepted socket goes through
//! [`Connection::serve`], as a spawned child's does: its own `construct`
//! handshake, `ThreadMap` and workers. The [`Listener`] (any thread) owns
//! the accepted [`Connection`]s; the accept task holds only a `Weak` to it,
//! so loop-side code never keeps the loop alive.
//!
//! The listening socket itself lives in a slot on the loop thread; stopping
//! empties the slot (closing the socket at once) and wakes the task, which
//! then ends. A Unix socket's file is created with mode 0600 (or 0660)
//! before the socket listens, so nobody can connect while it has another
//! mode; it is removed when the listener stops, if it is still ours.

use std::cell::RefCell;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use multiprocess_event_loop::{
    AsyncListener, Error, ListenSocket, LoopContext, LoopHandle, Result, Socket,
};

use crate::address::Address;
use crate::connection::{CloseCounter, Connection, ServeContext};
use crate::deadline::{deadline_after, remaining};
use crate::drain::Gauge;
use crate::sync::global::{AtomicU64, Ordering};
use crate::sync::{Arc, Mutex, Weak};

/// How many connections a listener serves at once unless
/// [`ListenOptions::max_connections`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How a [`Listener`] listens.
///
/// # Examples
///
/// ```
/// use multiprocess_thread_map::ListenOptions;
///
/// let options = ListenOptions::new().max_connections(8).group_access(true);
/// assert_eq!(options.get_max_connections(), 8);
/// ```
#[derive(Debug, Clone)]
pub struct ListenOptions {
    max_connections: usize,
    group_access: bool,
    allow_remote: bool,
    handshake_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            group_access: false,
            allow_remote: false,
            handshake_timeout: crate::dial::DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl ListenOptions {
    /// The defaults: at most [`DEFAULT_MAX_CONNECTIONS`] connections, a
    /// socket file only its owner may use, TCP on loopback addresses only,
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::DEFAULT_HANDSHAKE_TIMEOUT) for a
    /// new connection's `construct`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves at most `count` connections at once: one more is closed as
    /// soon as it is accepted, with a warning in the log.
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = count;
        self
    }

    /// The limit [`max_connections`](Self::max_connections) set.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// Lets the socket file's group connect too (mode 0660 instead of
    /// 0600). Unix sockets only.
    pub fn group_access(mut self, allow: bool) -> Self {
        self.group_access = allow;
        self
    }

    /// Closes a connection whose peer has not called `construct` (the
    /// handshake every multiprocess client starts with, and without which
    /// it can call nothing) within `timeout` of being accepted: a client
    /// that connects and says nothing, or stops before the handshake ends,
    /// would otherwise hold one of the [`max_connections`](Self::max_connections)
    /// for good. Logged as a warning.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The limit [`handshake_timeout`](Self::handshake_timeout) set.
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Lets a TCP listener bind an address other than a loopback one.
    /// The protocol has no authentication or encryption: whoever reaches
    /// the port can call every method, and sees every byte. Prefer a unix
    /// socket, or loopback with a tunnel (SSH, WireGuard) to it.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }
}

static NEXT_LISTENER: AtomicU64 = AtomicU64::new(1);

/// Serves a bootstrap interface on an address, to every peer that
/// connects. `Send + Sync`.
///
/// Each connection gets its own `construct` handshake, `ThreadMap` and
/// worker threads, as a spawned child does. The listener owns the
/// connections it accepted: dropping it stops accepting, removes the
/// socket file and closes them all. To stop gracefully, [`stop`](Self::stop)
/// accepting, then [`drain`](Self::drain).
///
/// # Examples
///
/// ```no_run
/// # fn bootstrap(_: multiprocess_thread_map::ServeContext) -> capnp::capability::Client {
/// #     capnp_rpc::new_broken_cap(capnp::Error::failed("example".into()))
/// # }
/// use multiprocess_thread_map::{Address, EventLoop, ListenOptions, Listener};
/// use std::{path::Path, time::Duration};
///
/// let event_loop = EventLoop::start("node-loop")?;
/// let address = Address::parse("unix", Path::new("/tmp"), "node")?; // /tmp/node.sock
/// let listener = Listener::bind(&event_loop, &address, ListenOptions::new(), bootstrap)?;
/// // ... serve until asked to stop, then:
/// listener.stop();
/// listener.drain(Duration::from_secs(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    shared: Arc<ListenerShared>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

/// What builds, on the loop thread, the bootstrap capability of one
/// accepted connection.
type MakeBootstrap = dyn Fn(ServeContext) -> capnp::capability::Client + Send + Sync;

struct ListenerShared {
    id: u64,
    address: Address,
    handle: LoopHandle,
    max_connections: usize,
    handshake_timeout: Duration,
    make_bootstrap: Arc<MakeBootstrap>,
    gauge: Arc<Gauge>,
    connections: Mutex<Vec<Connection>>,
    /// Counts the accepted connections that have closed.
    closes: Arc<CloseCounter>,
    /// The socket file we created, while it is ours to remove.
    socket_file: Mutex<Option<SocketFile>>,
}

/// A socket file this process bound: removed on stop, unless someone else
/// has replaced it since.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn remove(self) {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(target: "multiprocess", path = %self.path.display(), "cannot remove the socket file: {e}");
                }
            }
            _ => {
                tracing::debug!(target: "multiprocess", path = %self.path.display(), "the socket file is no longer ours: left alone")
            }
        }
    }
}

/// The loop thread's half of a listener: its socket, and the accept
/// task's waker, so stopping can wake the task to end.
#[derive(Default)]
struct Slot {
    listener: Option<AsyncListener>,
    waker: Option<Waker>,
}

thread_local! {
    /// On a loop thread: the slot of each listener it accepts for.
    static SLOTS: RefCell<std::collections::HashMap<u64, Rc<RefCell<Slot>>>> =
        RefCell::new(std::collections::HashMap::new());
}

fn io_error(kind: io::ErrorKind, message: String) -> Error {
    Error::Io { kind, message }
}

impl Listener {
    /// Listens on `address` and serves every connection with the bootstrap
    /// capability `make_bootstrap` builds for it (on the loop thread; its
    /// `construct @0` should answer with [`ServeContext::construct`]).
    ///
    /// - `unix:PATH`: the directory must exist. The file is created with
    ///   mode 0600 whatever the umask (0660 with
    ///   [`ListenOptions::group_access`]). A socket file that nothing
    ///   answers on (left by a server that died) is replaced; one a live
    ///   server answers on fails with kind
    ///   [`AddrInUse`](io::ErrorKind::AddrInUse) and is left alone, as is
    ///   a path that is not a socket.
    /// - `tcp:HOST:PORT`: `HOST` must be a loopback address unless
    ///   [`ListenOptions::allow_remote`]; port 0 picks a free port
    ///   ([`address`](Self::address) says which).
    ///
    /// Errors are [`Error::Io`], with a message that names the address.
    pub fn bind<F>(
        event_loop: &LoopHandle,
        address: &Address,
        options: ListenOptions,
        make_bootstrap: F,
    ) -> Result<Listener>
    where
        F: Fn(ServeContext) -> capnp::capability::Client + Send + Sync + 'static,
    {
        let (socket, bound, socket_file) = match address {
            Address::Unix(path) => {
                let (listener, file) = bind_unix(address, path, &options)?;
                (ListenSocket::Unix(listener), address.clone(), Some(file))
            }
            Address::Tcp(addr) => {
                if !addr.ip().is_loopback() && !options.allow_remote {
                    return Err(io_error(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "refusing to listen on {address}: not a loopback address, and the \
                             protocol has no authentication or encryption; use a unix socket, \
                             or loopback with an SSH or WireGuard tunnel, or allow it \
                             explicitly (ListenOptions::allow_remote)"
                        ),
                    ));
                }
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|e| io_error(e.kind(), format!("cannot listen on {address}: {e}")))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| io_error(e.kind(), format!("{address}: {e}")))?;
                (ListenSocket::Tcp(listener), Address::Tcp(local), None)
            }
        };
        let id = NEXT_LISTENER.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ListenerShared {
            id,
            address: bound,
            handle: event_loop.clone(),
            max_connections: options.max_connections,
            handshake_timeout: options.handshake_timeout,
            make_bootstrap: Arc::new(make_bootstrap),
            gauge: Gauge::new(event_loop.poster()),
            connections: Mutex::new(Vec::new()),
            closes: Arc::default(),
            socket_file: Mutex::new(socket_file),
        });
        let weak = Arc::downgrade(&shared);
        let registered = event_loop.sync(move || {
            LoopContext::with(|cx| -> io::Result<()> {
                let slot = Rc::new(RefCell::new(Slot {
                    listener: Some(cx.listener(socket)?),
                    waker: None,
                }));
                SLOTS.with(|slots| slots.borrow_mut().insert(id, slot.clone()));
                cx.spawn(accept_loop(slot, weak));
                Ok(())
            })
            .unwrap_or_else(|| Err(io::Error::other("the event loop is shutting down")))
        });
        let listener = Listener { shared };
        match registered {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(io_error(
                    e.kind(),
                    format!(
                        "{}: cannot accept on the loop: {e}",
                        listener.shared.address
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        tracing::debug!(target: "multiprocess", address = %listener.shared.address, "listening");
        Ok(listener)
    }

    /// The address listened on; for `tcp:HOST:0`, with the port the system
    /// picked.
    pub fn address(&self) -> &Address {
        &self.shared.address
    }

    /// How many accepted connections are still open.
    pub fn connection_count(&self) -> usize {
        let mut connections = self.shared.connections.lock();
        connections.retain(|c| !c.is_disconnected());
        connections.len()
    }

    /// Blocks until at most `count` accepted connections are open (closed
    /// by either end, and their tables dropped), or `timeout` passes;
    /// returns whether they are. Waiting holds no connection open. On a
    /// loop thread, which is what closes connections and so must never
    /// wait for one, it only looks.
    pub fn wait_connections(&self, count: usize, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let closes = &self.shared.closes;
        loop {
            // Read before counting: a connection that closes after the
            // count below moves this on, and the wait ends at once.
            let seen = closes.closed();
            if self.connection_count() <= count {
                return true;
            }
            if !closes.wait_beyond(seen, deadline) {
                return false;
            }
        }
    }

    /// How many requests from this listener's connections are running
    /// (from their arrival until they are answered and their job has run).
    pub fn requests_running(&self) -> usize {
        self.shared.gauge.running()
    }

    /// Stops accepting: the listening socket is closed and its file
    /// removed before this returns (called from another event loop's
    /// thread, which must not wait, the socket closes as soon as its own
    /// loop gets to it), so connecting fails from then on. Connections
    /// already accepted carry on. Idempotent.
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// [`stop`](Self::stop)s accepting, and from now on, as soon as no
    /// request from any connection is running, disconnects every
    /// connection (as libmultiprocess's `waitDrained` before shutdown). A
    /// request running now completes and its caller gets the answer;
    /// requests that arrive meanwhile (a nested call the running one needs,
    /// say) are served too. Returns at once: [`wait_drained`](Self::wait_drained)
    /// waits. (Draining from inside a request of one of this listener's
    /// connections would wait for that request itself: hand shutdown to
    /// another thread, as Bitcoin Core's `stop` does.)
    pub fn begin_drain(&self) {
        self.stop();
        self.shared.gauge.begin();
    }

    /// After [`begin_drain`](Self::begin_drain): blocks until every
    /// connection has closed, or `timeout` passes. Returns whether they
    /// all did. On timeout, requests are still running and the drain has
    /// closed nothing yet; it stays in effect (everyone is disconnected
    /// once they end), and [`disconnect_all`](Self::disconnect_all) forces
    /// it now. On a loop thread, which answers the running requests and
    /// disconnects, it only looks.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        if !self.shared.gauge.wait_disconnecting(deadline) {
            return false;
        }
        let connections = self.shared.gauge.connections();
        connections
            .iter()
            .all(|c| c.wait_disconnected(remaining(deadline)).is_some())
    }

    /// [`begin_drain`](Self::begin_drain), then
    /// [`wait_drained`](Self::wait_drained): stops accepting, waits until
    /// no request is running, disconnects everyone. Returns whether that
    /// was done within `timeout`. On a loop thread it begins the drain and
    /// only looks.
    pub fn drain(&self, timeout: Duration) -> bool {
        self.begin_drain();
        self.wait_drained(timeout)
    }

    /// Disconnects every connection now, whether requests are running or
    /// not (their callers get [`Error::Disconnected`]).
    pub fn disconnect_all(&self) {
        self.shared.gauge.disconnect_all();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.stop();
        let gauge = self.shared.gauge.clone();
        let _ = self.shared.handle.post(move || gauge.forget());
    }
}

impl ListenerShared {
    fn stop(&self) {
        let id = self.id;
        // Captures only the id: a copy can be posted if syncing is refused.
        let close = move || {
            let slot = SLOTS.with(|slots| slots.borrow_mut().remove(&id));
            if let Some(slot) = slot {
                let (listener, waker) = {
                    let mut slot = slot.borrow_mut();
                    (slot.listener.take(), slot.waker.take())
                };
                drop(listener);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        };
        let stopped = match self.handle.sync(close) {
            // From another loop's thread, which must not wait: the socket
            // closes as soon as our loop runs this.
            Err(Error::WrongThread(_)) => self.handle.post(close),
            other => other,
        };
        if let Err(e) = stopped {
            // The loop is gone, and the socket with it.
            tracing::debug!(target: "multiprocess", address = %self.address, "stopping the listener: {e}");
        }
        let file = self.socket_file.lock().take();
        if let Some(file) = file {
            file.remove();
            tracing::debug!(target: "multiprocess", address = %self.address, "stopped listening");
        }
    }

    /// Loop thread: serves a socket just accepted, unless that would be
    /// one connection too many.
    fn admit(&self, socket: Socket) {
        let mut connections = self.connections.lock();
        connections.retain(|c| !c.is_disconnected());
        if connections.len() >= self.max_connections {
            let open = connections.len();
            drop(connections);
            tracing::warn!(target: "multiprocess", address = %self.address, open, max = self.max_connections, "refused a connection: the listener already serves its maximum of connections");
            refuse(
                socket,
                &format!(
                    "{} refused the connection: it already serves its maximum of {} connections",
                    self.address, self.max_connections
                ),
            );
            return;
        }
        let gauge = self.gauge.clone();
        let make = self.make_bootstrap.clone();
        // On the loop thread, `serve` runs this at once, before the
        // connection reads anything: its requests all count in the gauge.
        let served = Connection::serve(&self.handle, socket, move |ctx| {
            gauge.adopt(ctx.clone());
            make(ctx)
        });
        match served {
            Ok(connection) => {
                tracing::debug!(target: "multiprocess", address = %self.address, connection = connection.name(), "accepted a connection");
                close_unless_constructed(
                    connection.id(),
                    self.handshake_timeout,
                    self.address.clone(),
                );
                // Before it is listed: a listed connection's close is
                // always counted.
                connection.status().count_close_in(self.closes.clone());
                connections.push(connection);
            }
            Err(e) => {
                tracing::warn!(target: "multiprocess", address = %self.address, "cannot serve an accepted connection: {e}")
            }
        }
    }
}

/// Loop thread: closes connection `conn_id` if its peer has not called
/// `construct` within `timeout` ([`ListenOptions::handshake_timeout`]).
/// The task ends as soon as the peer calls it or the connection closes,
/// so that short connections leave no tasks or timers behind.
fn close_unless_constructed(conn_id: u64, timeout: Duration, address: Address) {
    LoopContext::with(|cx| {
        let deadline = cx.sleep(timeout);
        let settled = futures::future::poll_fn(move |task| {
            match crate::loop_state::with(|state| state.conn(conn_id)) {
                Some(conn) if !conn.constructed() => {
                    conn.watch_handshake(task.waker());
                    Poll::Pending
                }
                // Constructed, or closed (and gone from the loop's table).
                _ => Poll::Ready(()),
            }
        });
        cx.spawn(async move {
            if let futures::future::Either::Right(_) =
                futures::future::select(settled, deadline).await
            {
                let Some(conn) = crate::loop_state::with(|state| state.conn(conn_id)) else {
                    return;
                };
                if conn.constructed() {
                    return;
                }
                tracing::warn!(target: "multiprocess", %address, connection = %conn.name, "closing a connection whose peer did not call construct within {timeout:?}");
                conn.close();
            }
        });
    });
}

/// Tells a peer why its connection is refused, with a capnp-rpc `Abort`
/// message (its handshake fails with the reason, as a disconnection), and
/// closes the socket. A new socket's buffer takes the few bytes at once;
/// if it does not, the peer sees the connection close without a reason.
fn refuse(socket: Socket, reason: &str) {
    use std::io::Write;
    let mut message = capnp::message::Builder::new_default();
    let mut abort = message
        .init_root::<capnp_rpc::rpc_capnp::message::Builder<'_>>()
        .init_abort();
    abort.set_reason(reason);
    abort.set_type(capnp_rpc::rpc_capnp::exception::Type::Disconnected);
    let bytes = capnp::serialize::write_message_to_words(&message);
    let _ = match &socket {
        Socket::Unix(s) => (&*s).write(&bytes),
        Socket::Tcp(s) => (&*s).write(&bytes),
    };
}

/// The first pause of the accept task after `accept` fails for want of
/// something (descriptors, memory); each failure in a row doubles it, up to
/// [`ACCEPT_PAUSE_MAX`].
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);

/// The longest pause between two tries of a failing `accept`: how long a
/// client may wait, once descriptors are free again, for its connection.
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Whether `accept` failed for this one connection (the client gave up
/// before it was accepted), not for want of something: the next one may
/// be accepted at once.
fn failed_for_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The accept task: accepts until the listener stops or is dropped.
///
/// When `accept` fails for want of descriptors or memory, the connection
/// waiting stays queued and the socket stays readable: trying again at
/// once would keep the loop busy (a CPU at 100%, every other connection
/// on the loop slowed) for as long as the shortage lasts. The task pauses
/// instead, 10 ms after the first failure, doubling to 1 s, and says so in
/// the log once per spell.
async fn accept_loop(slot: Rc<RefCell<Slot>>, listener: Weak<ListenerShared>) {
    let mut failing = false;
    let mut pause = ACCEPT_PAUSE_MIN;
    loop {
        let accepted = futures::future::poll_fn(|cx| {
            let mut slot = slot.borrow_mut();
            let Some(socket) = slot.listener.as_ref() else {
                return Poll::Ready(None);
            };
            match socket.poll_accept(cx) {
                Poll::Ready(accepted) => Poll::Ready(Some(accepted)),
                Poll::Pending => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(accepted) = accepted else { return };
        let Some(shared) = listener.upgrade() else {
            return;
        };
        match accepted {
            Ok(socket) => {
                if failing {
                    tracing::info!(target: "multiprocess", address = %shared.address, "accepting connections again");
                }
                failing = false;
                pause = ACCEPT_PAUSE_MIN;
                shared.admit(socket);
            }
            Err(e) if failed_for_one_connection(&e) => {
                tracing::debug!(target: "multiprocess", address = %shared.address, "a connection went before it was accepted: {e}");
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(target: "multiprocess", address = %shared.address, "accepting a connection failed: {e}; trying again after pauses of up to {ACCEPT_PAUSE_MAX:?}");
                }
                failing = true;
                drop(shared);
                match LoopContext::with(|cx| cx.sleep(pause)) {
                    Some(sleep) => sleep.await,
                    // Not on a loop thread: cannot be (the task runs on one).
                    None => crate::drain::yield_now().await,
                }
                pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
            }
        }
    }
}

/// Binds a unix socket at `path` for `address`, after checking the
/// directory and any file already there.
fn bind_unix(
    address: &Address,
    path: &Path,
    options: &ListenOptions,
) -> Result<(UnixListener, SocketFile)> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(io_error(
                io::ErrorKind::NotADirectory,
                format!(
                    "cannot listen on {address}: {} is not a directory",
                    dir.display()
                ),
            ));
        }
        Err(e) => {
            return Err(io_error(
                e.kind(),
                format!(
                    "cannot listen on {address}: its directory {}: {e} (the directory must exist)",
                    dir.display()
                ),
            ));
        }
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io_error(
                    io::ErrorKind::AddrInUse,
                    format!("cannot listen on {address}: a server is already listening there"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(target: "multiprocess", %address, "replacing a socket file nothing answers on (left by a server that is gone)");
                fs::remove_file(path).map_err(|e| {
                    io_error(
                        e.kind(),
                        format!("cannot remove the leftover socket file of {address}: {e}"),
                    )
                })?;
            }
            Err(e) => {
                return Err(io_error(
                    e.kind(),
                    format!(
                        "cannot listen on {address}: the socket file there cannot be tried: {e}"
                    ),
                ));
            }
        },
        Ok(_) => {
            return Err(io_error(
                io::ErrorKind::AlreadyExists,
                format!("cannot listen on {address}: the path exists and is not a socket"),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(io_error(
                e.kind(),
                format!("cannot listen on {address}: {e}"),
            ));
        }
    }
    let mode = if options.group_access { 0o660 } else { 0o600 };
    let listener = bind_unix_with_mode(path, mode)
        .map_err(|e| io_error(e.kind(), format!("cannot listen on {address}: {e}")))?;
    let meta = fs::symlink_metadata(path)
        .map_err(|e| io_error(e.kind(), format!("cannot listen on {address}: {e}")))?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

/// Creates a listening unix socket at `path` whose file has mode `mode`,
/// whatever the umask: bound, given its mode, and only then listening, so
/// no connection can come in while the file has another mode (a connect
/// to a socket that is bound but not listening is refused).
fn bind_unix_with_mode(path: &Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data, for which all zeroes is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the socket path is {} bytes long, and the system takes at most {}",
                bytes.len(),
                addr.sun_path.len() - 1
            ),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in addr.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    // SAFETY: plain system call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un and `len` is within it.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    let listening = fs::set_permissions(path, fs::Permissions::from_mode(mode)).and_then(|()| {
        // SAFETY: plain system call on a descriptor we own.
        if unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    });
    if let Err(e) = listening {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(UnixListener::from(fd))
}
