//! The other end of a test: a child process (`mp-child`) or a server in this
//! same process, behind one type so every scenario runs both ways.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use multiprocess::Interface;
use multiprocess_thread_map::{Connection, EventLoop, LoopHandle, RemoteObject, Result};

use crate::children::{self, Registration};
use crate::probe::Init;
use crate::probe_capnp::init;

/// Where the serving end runs.
pub enum Server {
    /// A child process.
    Child(Child),
    /// This process, on its own event loop.
    InProcess {
        /// The server's loop.
        event_loop: Option<LoopHandle>,
        /// The server's end of the connection.
        connection: Option<Connection>,
    },
}

/// A connected peer: our connection and its `Init`.
pub struct Peer {
    /// The `Init` of the peer (a generated client).
    pub init: Arc<dyn Init>,
    /// Our end of the connection (shared, so a test can hand it to a loop).
    pub connection: Arc<Connection>,
    /// The serving end.
    pub server: Server,
    /// Our loop.
    pub event_loop: LoopHandle,
    /// The child in the [`children`] registry, until it is reaped.
    registration: Option<Registration>,
    /// The peer's `Init` as a bare capability, for [`raw`](Self::raw).
    raw_init: RemoteObject<init::Client>,
}

/// What [`connect`] gives: our end, the generated `Init` and the bare one.
type Connected = (Connection, Arc<dyn Init>, RemoteObject<init::Client>);

/// Connects on `stream` (the `construct` handshake included), keeping the
/// connection ([`multiprocess::connect`] drops it), so tests can watch and
/// close it, and a second handle on the peer's `Init` capability for
/// [`Peer::raw`].
fn connect(event_loop: &LoopHandle, stream: UnixStream) -> Result<Connected> {
    let (connection, object) = Connection::connect::<init::Client>(event_loop, stream)?;
    let raw_init = object.call("(a second handle on Init)", |init, cx| {
        let (init, adopter) = (init.clone(), cx.adopter());
        async move { adopter.adopt(init) }
    })?;
    Ok((
        connection,
        <dyn Init as Interface>::from_remote(object),
        raw_init,
    ))
}

impl Peer {
    /// Spawns `child_exe` (an `mp-child` binary) and connects to it. The
    /// child is registered in [`children`] (under its file name) until it is
    /// reaped, so that a watchdog's dump shows its threads.
    pub fn child(child_exe: &Path) -> Result<Peer> {
        Self::child_with(child_exe, |_| {})
    }

    /// Like [`child`](Self::child), letting `configure` adjust the command
    /// (its environment, say) first.
    pub fn child_with(child_exe: &Path, configure: impl FnOnce(&mut Command)) -> Result<Peer> {
        let event_loop = EventLoop::start("client-loop")?;
        let mut command = Command::new(child_exe);
        configure(&mut command);
        let (child, stream) = multiprocess_thread_map::spawn_process(&mut command)?;
        let label = child_exe.file_name().map_or_else(
            || child_exe.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let registration = Some(children::register(child.id(), label));
        let (connection, init, raw_init) = connect(&event_loop, stream)?;
        Ok(Peer {
            init,
            raw_init,
            connection: Arc::new(connection),
            server: Server::Child(child),
            event_loop,
            registration,
        })
    }

    /// Serves `Init` on a second loop in this process and connects to it.
    pub fn in_process() -> Result<Peer> {
        let server_loop = EventLoop::start("server-loop")?;
        let event_loop = EventLoop::start("client-loop")?;
        let (ours, theirs) = UnixStream::pair()?;
        let server_conn = crate::probe_server::serve(&server_loop, theirs)?;
        let (connection, init, raw_init) = connect(&event_loop, ours)?;
        Ok(Peer {
            init,
            raw_init,
            connection: Arc::new(connection),
            server: Server::InProcess {
                event_loop: Some(server_loop),
                connection: Some(server_conn),
            },
            event_loop,
            registration: None,
        })
    }
    /// The bare capnp capability behind `object`, a generated client of
    /// this peer's, for tests that build requests by hand (a `Context` of
    /// their own, several requests at once): the same object on the peer,
    /// named by a second handle.
    pub fn raw<I: Interface + ?Sized>(&self, object: &Arc<I>) -> Result<RemoteObject<I::Capnp>> {
        let object = object.clone();
        self.raw_init
            .call("(the capability of a client)", move |_, cx| {
                // On the loop: a client of this connection's peer gives back the
                // peer's own capability, not a new one of ours.
                let capability = I::to_capnp(&object, &cx.serve_context());
                let adopter = cx.adopter();
                async move { adopter.adopt(capability) }
            })
    }

    /// Kills the server abruptly: SIGKILL for a child; for an in-process
    /// server, its end of the connection is closed (its loop stays up until
    /// the `Peer` is dropped, so that its workers can be joined once the
    /// test releases whatever user code they are blocked in). Either way the
    /// server serves nothing more once this returns.
    ///
    /// Call it from a test thread: on a loop thread the wait for an
    /// in-process server's end only looks.
    ///
    /// # Panics
    ///
    /// If an in-process server's end has not closed within 10 s.
    pub fn kill_server(&mut self) {
        match &mut self.server {
            Server::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
                self.registration = None;
            }
            Server::InProcess { connection, .. } => {
                if let Some(connection) = connection.take() {
                    // Closing is the server loop's to do: until it has, a
                    // request the test sends next could still be served.
                    connection.disconnect();
                    assert!(
                        connection
                            .wait_disconnected(Duration::from_secs(10))
                            .is_some(),
                        "the in-process server's end did not close within 10 s"
                    );
                    drop(connection);
                }
            }
        }
    }

    /// Waits (bounded) for the child to exit after our side closed.
    pub fn wait_server_exit(&mut self, timeout: Duration) -> bool {
        match &mut self.server {
            Server::Child(child) => {
                let deadline = std::time::Instant::now() + timeout;
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        self.registration = None;
                        return true;
                    }
                    if std::time::Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        self.registration = None;
                        return false;
                    }
                    // Polling a child's exit status has no blocking, bounded
                    // alternative in std; this is not used to synchronise threads.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Server::InProcess { .. } => true,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Server::Child(child) = &mut self.server
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.registration = None;
    }
}
