//! Interfaces as trait objects, and connections started on one.

use std::os::unix::net::UnixStream;
use std::process::{Child, Command};
// sync-facade: allow (trait objects are public API: users hold std's Arc)
use std::sync::Arc;

use capnp::capability::FromClientHook;
use multiprocess_event_loop::sync::OnceLock;
use multiprocess_event_loop::{Error, EventLoop, LoopHandle, Result};
use multiprocess_thread_map::{Connection, RemoteObject, ServeContext};

/// Ties a generated trait's object type (`dyn Wallet`) to its wire form.
/// The generator implements it for every interface; you use it through
/// [`spawn`], [`connect`], [`serve`] and [`serve_parent`].
pub trait Interface: Send + Sync + 'static {
    /// The interface's capnp client type (capnpc's `wallet::Client`).
    type Capnp: FromClientHook + capnp::traits::HasTypeId + Clone + 'static;

    /// The interface's name, for traces (`"Wallet"`).
    const NAME: &'static str;

    /// Wraps a peer's object: the generated client, as a trait object.
    fn from_remote(object: RemoteObject<Self::Capnp>) -> Arc<Self>;

    /// On the loop thread: the capability to send for `object` on the
    /// connection of `ctx`: the peer's own capability if `object` is a
    /// client of it on that connection, else `object` served as a new
    /// capability of ours.
    fn to_capnp(object: &Arc<Self>, ctx: &ServeContext) -> Self::Capnp;

    /// On the loop thread: the object for a capability received on the
    /// connection of `ctx`: our own object back if the capability is one we
    /// served, else a client of the peer's.
    fn from_capnp(client: Self::Capnp, ctx: &ServeContext) -> capnp::Result<Arc<Self>>;
}

/// The process's event loop for the connections [`spawn`] and
/// [`serve_parent`] make, started on first use. It runs until the process
/// exits.
pub fn default_loop() -> Result<&'static LoopHandle> {
    static LOOP: OnceLock<std::result::Result<LoopHandle, Error>> = OnceLock::new();
    LOOP.get_or_init(|| EventLoop::start("mp-loop").map_err(Error::from))
        .as_ref()
        .map_err(Clone::clone)
}

/// Connects to a peer serving `I` on `stream` (runs the `construct`
/// handshake that exchanges `ThreadMap`s) and returns its object. The
/// connection stays open while the object, or anything obtained through
/// it, is alive.
pub fn connect<I: Interface + ?Sized>(
    event_loop: &LoopHandle,
    stream: UnixStream,
) -> Result<Arc<I>> {
    let (_connection, object) = Connection::connect::<I::Capnp>(event_loop, stream)?;
    Ok(I::from_remote(object))
}

/// Serves `object` to the peer on `stream`, as the connection's bootstrap
/// interface (its `construct @0` answers the handshake).
pub fn serve<I: Interface + ?Sized>(
    event_loop: &LoopHandle,
    stream: UnixStream,
    object: Arc<I>,
) -> Result<Connection> {
    Connection::serve(event_loop, stream, move |ctx| {
        capnp::capability::Client::new(I::to_capnp(&object, &ctx).into_client_hook())
    })
}

/// Starts `command` as a child process on a socketpair (passing its end as
/// `-ipcfd=N`, as Bitcoin Core does) and returns the child with the object
/// it serves ([`serve_parent`] in the child).
///
/// If the handshake fails (the child exits, or answers with something
/// other than a multiprocess server), the child is killed and reaped
/// before the error returns (processes it started itself are its own
/// business). A child that keeps the socket open and never answers keeps
/// this waiting. On an event-loop thread it fails with
/// [`Error::WrongThread`] before starting anything (the handshake blocks).
pub fn spawn<I: Interface + ?Sized>(command: &mut Command) -> Result<(Child, Arc<I>)> {
    if multiprocess_event_loop::on_a_loop_thread() {
        return Err(Error::WrongThread(
            "spawning blocks for the handshake; spawn from an application or worker thread"
                .to_string(),
        ));
    }
    let event_loop = default_loop()?;
    let (mut child, stream) = multiprocess_thread_map::spawn_process(command)?;
    match connect::<I>(event_loop, stream) {
        Ok(object) => Ok((child, object)),
        Err(e) => {
            // SIGKILL ends it, or it had exited: either way the wait is
            // short. A child we may not signal is reaped only if done.
            if child.kill().is_ok() {
                let _ = child.wait();
            } else {
                let _ = child.try_wait();
            }
            Err(e)
        }
    }
}

/// In a process started by [`spawn`]: serves `object` to the parent and
/// returns the connection (wait on it with
/// [`Connection::wait_disconnected`]). `None` if the process was not
/// started with `-ipcfd`.
pub fn serve_parent<I: Interface + ?Sized>(object: Arc<I>) -> Result<Option<Connection>> {
    match multiprocess_thread_map::take_ipc_fd()? {
        Some(stream) => serve(default_loop()?, stream, object).map(Some),
        None => Ok(None),
    }
}
