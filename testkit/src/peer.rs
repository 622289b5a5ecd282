//! The other end of a test: a child process (`mp-child`) or a server in this
//! same process, behind one type so every scenario runs both ways.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use multiprocess_thread_map::{Connection, EventLoop, LoopHandle, Result};

use crate::children::{self, Registration};
use crate::probe::{InitClient, InitServer};
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
    /// The `Init` capability of the peer.
    pub init: InitClient,
    /// Our end of the connection (shared, so a test can hand it to a loop).
    pub connection: Arc<Connection>,
    /// The serving end.
    pub server: Server,
    /// Our loop.
    pub event_loop: LoopHandle,
    /// The child in the [`children`] registry, until it is reaped.
    registration: Option<Registration>,
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
        let (connection, init) = Connection::connect::<init::Client>(&event_loop, stream)?;
        Ok(Peer {
            init: InitClient(init),
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
        let server_conn = Connection::serve(&server_loop, theirs, InitServer::bootstrap)?;
        let (connection, init) = Connection::connect::<init::Client>(&event_loop, ours)?;
        Ok(Peer {
            init: InitClient(init),
            connection: Arc::new(connection),
            server: Server::InProcess {
                event_loop: Some(server_loop),
                connection: Some(server_conn),
            },
            event_loop,
            registration: None,
        })
    }

    /// Kills the server abruptly: SIGKILL for a child; for an in-process
    /// server, its end of the connection is closed (its loop stays up until
    /// the `Peer` is dropped, so that its workers can be joined once the
    /// test releases whatever user code they are blocked in).
    pub fn kill_server(&mut self) {
        match &mut self.server {
            Server::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
                self.registration = None;
            }
            Server::InProcess { connection, .. } => {
                if let Some(connection) = connection.take() {
                    connection.disconnect();
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
