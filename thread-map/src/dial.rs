//! Connecting to an address (Bitcoin Core's `-ipcconnect`), with errors
//! that say which of the usual things went wrong: no such socket,
//! permission denied, nothing listening, or a peer that is not a
//! multiprocess server.

use std::fs;
use std::io;
use std::net::Shutdown;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use capnp::capability::FromClientHook;
use multiprocess_event_loop::{Error, LoopHandle, Result, Socket};

use crate::address::Address;
use crate::connection::{Connection, RemoteObject};
use crate::sync::{Arc, Condvar, Mutex, thread};

/// How long [`connect_to`] waits for the peer's answer to the `construct`
/// handshake unless told otherwise: a peer that accepts and stays silent
/// is not a multiprocess server.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn io_error(kind: io::ErrorKind, message: String) -> Error {
    Error::Io { kind, message }
}

/// Opens a socket to `address` (no handshake). Errors are [`Error::Io`]
/// whose kind tells the usual cases apart, with a message that says what
/// to check:
///
/// | kind | means |
/// | --- | --- |
/// | [`NotFound`](io::ErrorKind::NotFound) | no socket file at the path (no server has listened there), or no such directory |
/// | [`PermissionDenied`](io::ErrorKind::PermissionDenied) | the socket file, or a directory on its path, is not open to this user |
/// | [`ConnectionRefused`](io::ErrorKind::ConnectionRefused) | nothing listens there (a socket file a dead server left, or a TCP port nobody listens on) |
/// | [`InvalidInput`](io::ErrorKind::InvalidInput) | the path is not a socket (a regular file, a directory) |
pub fn dial(address: &Address) -> Result<Socket> {
    match address {
        Address::Unix(path) => match UnixStream::connect(path) {
            Ok(stream) => Ok(Socket::Unix(stream)),
            Err(e) => Err(explain_unix(address, path, e)),
        },
        Address::Tcp(addr) => match std::net::TcpStream::connect(addr) {
            Ok(stream) => Ok(Socket::Tcp(stream)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(io_error(
                e.kind(),
                format!(
                    "cannot connect to {address}: connection refused (nothing listens on that port)"
                ),
            )),
            Err(e) => Err(io_error(
                e.kind(),
                format!("cannot connect to {address}: {e}"),
            )),
        },
    }
}

fn explain_unix(address: &Address, path: &Path, e: io::Error) -> Error {
    let kind = e.kind();
    let message = match kind {
        io::ErrorKind::NotFound => match path.parent().map(fs::metadata) {
            Some(Err(dir_error)) if dir_error.kind() == io::ErrorKind::NotFound => format!(
                "cannot connect to {address}: no such socket (its directory does not exist)"
            ),
            _ => format!("cannot connect to {address}: no such socket (is the server running?)"),
        },
        io::ErrorKind::PermissionDenied => format!(
            "cannot connect to {address}: permission denied (the socket file, or a directory \
             on its path, is not open to this user)"
        ),
        _ => match fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                let what = if meta.is_dir() {
                    "a directory"
                } else if meta.is_file() {
                    "a regular file"
                } else {
                    "not a socket file"
                };
                return io_error(
                    io::ErrorKind::InvalidInput,
                    format!("cannot connect to {address}: the path is {what}, not a socket"),
                );
            }
            _ if kind == io::ErrorKind::ConnectionRefused => format!(
                "cannot connect to {address}: connection refused (nothing listens on that socket \
                 file: its server has gone)"
            ),
            _ => format!("cannot connect to {address}: {e}"),
        },
    };
    io_error(kind, message)
}

/// Connects to the server listening on `address`, runs the `construct`
/// handshake, and returns the connection with the peer's bootstrap
/// capability as a `C` (see [`Connection::connect`]).
///
/// Besides [`dial`]'s errors: a peer that sends what is not Cap'n Proto,
/// answers `construct` with an error, or says nothing for
/// `handshake_timeout`, is not a multiprocess server ([`Error::Protocol`]
/// saying so); one that closes the connection during the handshake (a
/// listener at its maximum of connections does) gives
/// [`Error::Disconnected`]. On an event-loop thread it fails with
/// [`Error::WrongThread`] before dialing (dialing and the handshake block).
pub fn connect_to<C>(
    event_loop: &LoopHandle,
    address: &Address,
    handshake_timeout: Duration,
) -> Result<(Connection, RemoteObject<C>)>
where
    C: FromClientHook + capnp::traits::HasTypeId + Clone + 'static,
{
    if multiprocess_event_loop::on_a_loop_thread() {
        return Err(Error::WrongThread(format!(
            "connecting to {address} blocks; connect from an application or worker thread"
        )));
    }
    let socket = dial(address)?;
    // The loop owns the socket; a copy of the descriptor lets a timer shut
    // it down (the loop then sees it end) if the peer never answers.
    let copy = match &socket {
        Socket::Unix(s) => s.try_clone().map(Socket::Unix),
        Socket::Tcp(s) => s.try_clone().map(Socket::Tcp),
    }
    .map_err(|e| io_error(e.kind(), format!("{address}: {e}")))?;
    let timer = Timer::start(copy, handshake_timeout)?;
    let connected = Connection::connect::<C>(event_loop, socket);
    if timer.finish() {
        // Fired: the socket is shut down, even if the answer came just then.
        return Err(Error::Protocol(format!(
            "{address} did not answer the construct handshake within {handshake_timeout:?}: \
             not a multiprocess server"
        )));
    }
    connected.map_err(|e| match e {
        Error::Disconnected(m) => Error::Disconnected(format!(
            "{address} closed the connection during the construct handshake (a server at its \
             maximum of connections does; so may a peer that is not a multiprocess server): {m}"
        )),
        Error::Protocol(m) => Error::Protocol(format!(
            "{address} is not a multiprocess server: the construct handshake failed: {m}"
        )),
        Error::Failed(f) => Error::Protocol(format!(
            "{address} is not a multiprocess server: its bootstrap interface failed construct: {f}"
        )),
        other => other,
    })
}

#[derive(Default)]
struct TimerState {
    done: bool,
    fired: bool,
}

/// Shuts a socket down if the handshake has not finished in time.
struct Timer {
    state: Arc<(Mutex<TimerState>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Timer {
    fn start(socket: Socket, timeout: Duration) -> Result<Self> {
        let state = Arc::new((Mutex::new(TimerState::default()), Condvar::new()));
        let watched = state.clone();
        let thread = thread::Builder::new()
            .name("mp-handshake-timer".into())
            .spawn(move || {
                let (lock, cv) = &*watched;
                let deadline = Instant::now().checked_add(timeout);
                let mut state = lock.lock();
                while !state.done {
                    match cv.wait_until(state, deadline) {
                        Ok(guard) => state = guard,
                        Err(mut guard) => {
                            guard.fired = true;
                            let _ = match &socket {
                                Socket::Unix(s) => s.shutdown(Shutdown::Both),
                                Socket::Tcp(s) => s.shutdown(Shutdown::Both),
                            };
                            return;
                        }
                    }
                }
            })?;
        Ok(Self {
            state,
            thread: Some(thread),
        })
    }

    /// Stops the timer; returns whether it fired.
    fn finish(mut self) -> bool {
        let (lock, cv) = &*self.state;
        lock.lock().done = true;
        cv.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        lock.lock().fired
    }
}
