//! What the runtime scenarios share: the child serves the test kit's `Init` (its generated
//! server over [`mp_testkit::probe_server`], as `mp-child` does) on the runtime's event loop;
//! the parent connects with the runtime's `Connection` and calls through the generated clients.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use mp_testkit::probe::Init;
use mp_testkit::probe_capnp::init;
use multiprocess::Interface;
use multiprocess_thread_map::{Connection, Error, EventLoop, LoopHandle};

/// The parent's end of a runtime connection to the child.
///
/// Fields drop in order: the capabilities, then the connection, then the loop. Each drop only
/// posts to the loop, and the last handle's drop joins the loop thread, which exits once it has
/// run what was posted and dropped its tasks: bounded, whether the child is alive or not.
pub(crate) struct Parent {
    /// The child's bootstrap object (a generated client).
    pub(crate) init: Arc<dyn Init>,
    /// Kept so the connection stays open as long as the scenario's client.
    _connection: Connection,
    /// Kept so the loop outlives everything above.
    _event_loop: LoopHandle,
}

impl Parent {
    /// Starts an event loop called `loop_name` and connects over `conn` (the `construct`
    /// handshake included).
    pub(crate) fn connect(conn: UnixStream, loop_name: &str) -> io::Result<Parent> {
        let event_loop = EventLoop::start(loop_name)?;
        let (connection, init) =
            Connection::connect::<init::Client>(&event_loop, conn).map_err(to_io)?;
        Ok(Parent {
            init: <dyn Init as Interface>::from_remote(init),
            _connection: connection,
            _event_loop: event_loop,
        })
    }
}

/// In the child: serves `Init` over `conn` on an event loop called `loop_name` until the parent
/// closes the connection.
pub(crate) fn serve(conn: UnixStream, loop_name: &str) -> io::Result<()> {
    let event_loop = EventLoop::start(loop_name)?;
    let connection = mp_testkit::probe_server::serve(&event_loop, conn).map_err(to_io)?;
    // The only way a connection ends is a disconnect: the parent closed it (EOF) or died, which
    // is the end of the run for the child either way.
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}

/// The runtime's error as an I/O error, keeping what kind of failure it was.
pub(crate) fn to_io(error: Error) -> io::Error {
    let kind = match &error {
        Error::Disconnected(_) => io::ErrorKind::ConnectionAborted,
        Error::Protocol(_) => io::ErrorKind::InvalidData,
        Error::Io { kind, .. } => *kind,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}
