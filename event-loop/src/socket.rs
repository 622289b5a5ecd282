//! The sockets a connection can run over (a Unix stream or a TCP stream),
//! and listening sockets the loop accepts connections on.
//!
//! [`Socket`] and [`ListenSocket`] are plain `std` sockets any thread may
//! hold; the loop thread turns them into its own non-blocking mio forms
//! ([`crate::AsyncStream`], [`AsyncListener`]) when it registers them with
//! its reactor. An accepted socket comes back as a [`Socket`], so every
//! connection, spawned, connected or accepted, starts the same way.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::io::{Interest2, Reactor};

/// A connected stream socket: what a connection runs over.
#[derive(Debug)]
pub enum Socket {
    /// A Unix-domain stream (a socketpair's end, or a socket file's).
    Unix(std::os::unix::net::UnixStream),
    /// A TCP stream.
    Tcp(std::net::TcpStream),
}

impl From<std::os::unix::net::UnixStream> for Socket {
    fn from(stream: std::os::unix::net::UnixStream) -> Self {
        Socket::Unix(stream)
    }
}

impl From<std::net::TcpStream> for Socket {
    fn from(stream: std::net::TcpStream) -> Self {
        Socket::Tcp(stream)
    }
}

impl Socket {
    /// The non-blocking mio form, for the reactor. TCP streams get
    /// `TCP_NODELAY`: a call is a small message that waits for its answer,
    /// which Nagle's algorithm would hold back.
    pub(crate) fn into_mio(self) -> io::Result<MioSocket> {
        match self {
            Socket::Unix(stream) => {
                stream.set_nonblocking(true)?;
                Ok(MioSocket::Unix(mio::net::UnixStream::from_std(stream)))
            }
            Socket::Tcp(stream) => {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                Ok(MioSocket::Tcp(mio::net::TcpStream::from_std(stream)))
            }
        }
    }
}

/// A [`Socket`] in non-blocking mio form: loop-thread only.
pub(crate) enum MioSocket {
    Unix(mio::net::UnixStream),
    Tcp(mio::net::TcpStream),
}

impl MioSocket {
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            MioSocket::Unix(s) => s.shutdown(how),
            MioSocket::Tcp(s) => s.shutdown(how),
        }
    }
}

impl AsRawFd for MioSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            MioSocket::Unix(s) => s.as_raw_fd(),
            MioSocket::Tcp(s) => s.as_raw_fd(),
        }
    }
}

impl Read for &MioSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MioSocket::Unix(s) => (&*s).read(buf),
            MioSocket::Tcp(s) => (&*s).read(buf),
        }
    }
}

impl Write for &MioSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MioSocket::Unix(s) => (&*s).write(buf),
            MioSocket::Tcp(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for MioSocket {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            MioSocket::Unix(s) => s.register(registry, token, interests),
            MioSocket::Tcp(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            MioSocket::Unix(s) => s.reregister(registry, token, interests),
            MioSocket::Tcp(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            MioSocket::Unix(s) => s.deregister(registry),
            MioSocket::Tcp(s) => s.deregister(registry),
        }
    }
}

/// A listening socket, bound and listening, that the loop accepts
/// connections on ([`crate::LoopContext::listener`]).
#[derive(Debug)]
pub enum ListenSocket {
    /// A Unix-domain socket bound to a file.
    Unix(std::os::unix::net::UnixListener),
    /// A TCP socket bound to an address and port.
    Tcp(std::net::TcpListener),
}

enum MioListener {
    Unix(mio::net::UnixListener),
    Tcp(mio::net::TcpListener),
}

impl MioListener {
    fn accept(&self) -> io::Result<Socket> {
        // mio's accepted streams are already non-blocking; `into_mio` sets
        // that again (a no-op) when the connection registers them.
        match self {
            MioListener::Unix(l) => Ok(Socket::Unix(l.accept()?.0.into())),
            MioListener::Tcp(l) => Ok(Socket::Tcp(l.accept()?.0.into())),
        }
    }
}

impl AsRawFd for MioListener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            MioListener::Unix(l) => l.as_raw_fd(),
            MioListener::Tcp(l) => l.as_raw_fd(),
        }
    }
}

impl Source for MioListener {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            MioListener::Unix(l) => l.register(registry, token, interests),
            MioListener::Tcp(l) => l.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            MioListener::Unix(l) => l.reregister(registry, token, interests),
            MioListener::Tcp(l) => l.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            MioListener::Unix(l) => l.deregister(registry),
            MioListener::Tcp(l) => l.deregister(registry),
        }
    }
}

/// A listening socket registered with the loop's reactor: accepting waits
/// for read readiness on the loop, like a stream's read.
///
/// Loop-thread only. Dropping it deregisters and closes the socket (a
/// Unix socket's file is the binder's to remove).
pub struct AsyncListener {
    listener: MioListener,
    token: Token,
    interest: Rc<RefCell<Interest2>>,
    reactor: Rc<Reactor>,
}

impl std::fmt::Debug for AsyncListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncListener")
            .field("fd", &self.listener.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl AsyncListener {
    pub(crate) fn new(reactor: Rc<Reactor>, socket: ListenSocket) -> io::Result<Self> {
        let mut listener = match socket {
            ListenSocket::Unix(l) => {
                l.set_nonblocking(true)?;
                MioListener::Unix(mio::net::UnixListener::from_std(l))
            }
            ListenSocket::Tcp(l) => {
                l.set_nonblocking(true)?;
                MioListener::Tcp(mio::net::TcpListener::from_std(l))
            }
        };
        let (token, interest) = reactor.register(&mut listener)?;
        Ok(Self {
            listener,
            token,
            interest,
            reactor,
        })
    }

    /// Accepts the next connection: a future that resolves on the loop
    /// when a peer has connected. An error (too many open files, say)
    /// concerns that attempt only; accepting again may succeed.
    pub fn accept(&self) -> Accept<'_> {
        Accept { listener: self }
    }

    /// Accepts a connection if one is waiting; otherwise `Pending`, and
    /// the task is woken when one comes.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Socket>> {
        loop {
            match self.listener.accept() {
                Ok(socket) => return Poll::Ready(Ok(socket)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.interest.borrow_mut().read = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Drop for AsyncListener {
    fn drop(&mut self) {
        self.reactor.deregister(self.token, &mut self.listener);
    }
}

/// The future [`AsyncListener::accept`] returns.
#[derive(Debug)]
pub struct Accept<'a> {
    listener: &'a AsyncListener,
}

impl Future for Accept<'_> {
    type Output = io::Result<Socket>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Socket>> {
        self.listener.poll_accept(cx)
    }
}
