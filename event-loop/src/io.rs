//! Socket readiness: the loop thread's mio `Poll`, and the async stream type
//! capnp-rpc's two-party network reads and writes.
//!
//! All of this is loop-thread only (`!Send`): a stream is registered with the
//! poll when it is created and deregistered when dropped. Readiness events
//! wake the tasks that last saw `WouldBlock`. Because readiness events are
//! handled on the same thread that reads and writes, there is no window in
//! which an event can arrive between a `WouldBlock` and the storing of the
//! waker.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::socket::{MioSocket, Socket};
use futures::io::{AsyncRead, AsyncWrite};
use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use slab::Slab;
use std::os::fd::{AsRawFd, RawFd};

/// The token of the loop's `mio::Waker`.
pub(crate) const WAKE_TOKEN: Token = Token(usize::MAX);

/// What the tasks using one socket wait for.
pub(crate) struct Interest2 {
    fd: RawFd,
    pub(crate) read: Option<Waker>,
    /// Whether a read may find data: false once a read has drained the
    /// socket (it returned fewer bytes than asked for, or `WouldBlock`),
    /// true again at the socket's next read readiness. Saves the read that
    /// would only say `WouldBlock` after each message (a system call per
    /// message on the critical path of every call); see
    /// [`ReadHalf::poll_read`].
    read_ready: bool,
    /// Whether the reactor has reported the peer's end closed (or the
    /// socket failed): from then on a short read does not mean the next
    /// one would wait (it finds the end of the stream), and no readiness
    /// edge would come to say so.
    read_closed: bool,
    write: Option<Waker>,
    /// Whether the socket is registered for write readiness (only while a
    /// write would block).
    writable: bool,
}

/// The loop thread's readiness reactor.
pub(crate) struct Reactor {
    poll: RefCell<mio::Poll>,
    registry: mio::Registry,
    events: RefCell<Events>,
    sources: RefCell<Slab<Rc<RefCell<Interest2>>>>,
}

impl Reactor {
    pub(crate) fn new(poll: mio::Poll) -> io::Result<Self> {
        let registry = poll.registry().try_clone()?;
        Ok(Self {
            poll: RefCell::new(poll),
            registry,
            events: RefCell::new(Events::with_capacity(256)),
            sources: RefCell::new(Slab::new()),
        })
    }

    /// Blocks until a socket is ready or the loop is woken.
    pub(crate) fn poll_events(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => Ok(!events.is_empty()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Wakes the tasks waiting on the sockets the last poll found ready.
    pub(crate) fn dispatch_events(&self) {
        let mut to_wake: Vec<Waker> = Vec::new();
        {
            let events = self.events.borrow();
            let sources = self.sources.borrow();
            for event in events.iter() {
                if event.token() == WAKE_TOKEN {
                    continue;
                }
                let Some(source) = sources.get(event.token().0) else {
                    continue;
                };
                let mut interest = source.borrow_mut();
                let failed = event.is_error();
                if event.is_readable() || event.is_read_closed() || failed {
                    interest.read_ready = true;
                    if event.is_read_closed() || failed {
                        interest.read_closed = true;
                    }
                    to_wake.extend(interest.read.take());
                }
                if event.is_writable() || event.is_write_closed() || failed {
                    to_wake.extend(interest.write.take());
                    // Back to read interest only: writable edges after every
                    // send would wake the loop for nothing.
                    if interest.writable
                        && self
                            .registry
                            .reregister(
                                &mut SourceFd(&interest.fd),
                                event.token(),
                                Interest::READABLE,
                            )
                            .is_ok()
                    {
                        interest.writable = false;
                    }
                }
            }
        }
        for waker in to_wake {
            waker.wake();
        }
    }

    /// Asks for write readiness on a socket whose write would block.
    fn want_writable(&self, token: Token, interest: &mut Interest2) -> io::Result<()> {
        if !interest.writable {
            self.registry.reregister(
                &mut SourceFd(&interest.fd),
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            interest.writable = true;
        }
        Ok(())
    }

    pub(crate) fn register<S: mio::event::Source + AsRawFd>(
        &self,
        stream: &mut S,
    ) -> io::Result<(Token, Rc<RefCell<Interest2>>)> {
        let interest = Rc::new(RefCell::new(Interest2 {
            fd: stream.as_raw_fd(),
            read: None,
            read_ready: true,
            read_closed: false,
            write: None,
            writable: false,
        }));
        let key = self.sources.borrow_mut().insert(interest.clone());
        let token = Token(key);
        if let Err(e) = self.registry.register(stream, token, Interest::READABLE) {
            self.sources.borrow_mut().remove(key);
            return Err(e);
        }
        Ok((token, interest))
    }

    pub(crate) fn deregister(&self, token: Token, stream: &mut impl mio::event::Source) {
        let _ = self.registry.deregister(stream);
        self.sources.borrow_mut().try_remove(token.0);
    }
}

struct StreamInner {
    stream: MioSocket,
    token: Token,
    interest: Rc<RefCell<Interest2>>,
    reactor: Rc<Reactor>,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        self.reactor.deregister(self.token, &mut self.stream);
    }
}

/// A non-blocking stream (Unix or TCP) registered with the loop, split into a read
/// half and a write half for capnp-rpc's `twoparty::VatNetwork`.
///
/// Loop-thread only. Dropping both halves deregisters and closes the socket.
pub struct AsyncStream {
    inner: Rc<StreamInner>,
}

/// The read half of an [`AsyncStream`].
pub struct ReadHalf {
    inner: Rc<StreamInner>,
}

/// The write half of an [`AsyncStream`].
pub struct WriteHalf {
    inner: Rc<StreamInner>,
}

impl AsyncStream {
    pub(crate) fn new(reactor: Rc<Reactor>, socket: Socket) -> io::Result<Self> {
        let mut stream = socket.into_mio()?;
        let (token, interest) = reactor.register(&mut stream)?;
        Ok(Self {
            inner: Rc::new(StreamInner {
                stream,
                token,
                interest,
                reactor,
            }),
        })
    }

    /// Splits the stream into halves that can be used by separate tasks.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        (
            ReadHalf {
                inner: self.inner.clone(),
            },
            WriteHalf { inner: self.inner },
        )
    }
}

impl ReadHalf {
    /// Ready once the peer has closed its end of the socket (or the socket
    /// failed), found without reading: for a connection that has stopped
    /// reading (its peer is over its budget) but must still notice that the
    /// peer left. Until then `Pending`, with `cx` woken by the socket's next
    /// read readiness, as a read that would block is.
    pub fn poll_peer_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &*self.inner;
        let mut pollfd = libc::pollfd {
            fd: inner.stream.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call; a zero
        // timeout only looks.
        let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
        if ready > 0 && pollfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return Poll::Ready(());
        }
        inner.interest.borrow_mut().read = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncRead for ReadHalf {
    /// Reads what the socket holds, up to `buf`'s length.
    ///
    /// A read that returns fewer bytes than asked for has emptied the
    /// socket's receive queue (a stream socket hands over all it holds), so
    /// until the reactor reports the socket readable again, the next read
    /// returns `Pending` without asking the system: that read would only
    /// say `WouldBlock`. Data that arrives after the short read is a new
    /// readiness edge, which sets the socket ready again; data that arrived
    /// between the loop's last poll and the read was read with the rest,
    /// and its edge, still queued, costs one spurious read. Once the
    /// reactor has seen the peer's end closed, every read goes to the
    /// system: the end of the stream comes with no edge of its own.
    /// (tokio reads epoll sockets the same way.)
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let inner = &*self.inner;
        if !inner.interest.borrow().read_ready && !buf.is_empty() {
            inner.interest.borrow_mut().read = Some(cx.waker().clone());
            return Poll::Pending;
        }
        loop {
            match (&inner.stream).read(buf) {
                Ok(n) => {
                    crate::timeline::mark(crate::timeline::Step::Read);
                    let mut interest = inner.interest.borrow_mut();
                    if n > 0 && n < buf.len() && !interest.read_closed {
                        interest.read_ready = false;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut interest = inner.interest.borrow_mut();
                    interest.read_ready = false;
                    interest.read = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let inner = &*self.inner;
        loop {
            match (&inner.stream).write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut interest = inner.interest.borrow_mut();
                    if let Err(e) = inner.reactor.want_writable(inner.token, &mut interest) {
                        return Poll::Ready(Err(e));
                    }
                    interest.write = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.stream.shutdown(std::net::Shutdown::Write))
    }
}
