//! The two-party network under each connection's `RpcSystem`: capnp-rpc's
//! `twoparty::VatNetwork`, with bounds on what the peer can make us buffer.
//!
//! # Why not `twoparty::VatNetwork`
//!
//! capnp-rpc's network buffers without limit: every message written to a
//! peer that does not read waits in an unbounded queue, every request it
//! sends is read (and held until answered) however many are already
//! waiting, and a message's memory is allocated in full as soon as its
//! 8-byte header announces its size. A peer that pipelines 1 MiB echoes
//! and never reads the replies, or queues them behind a busy worker, grows
//! this process by as much as it likes.
//!
//! # The budget
//!
//! Each connection has a budget ([`ConnectionLimits::flow_budget_bytes`]).
//! Two amounts count against it, both on the loop thread:
//!
//! - **held input**: the bytes of the messages read from the peer that are
//!   still alive: requests queued or running (capnp-rpc keeps a call's
//!   message until it is answered), and responses not yet read out;
//! - **queued output**: the bytes of the messages waiting to be written to
//!   the peer (replies it has not read, callbacks, ...).
//!
//! While their sum exceeds the budget, the connection reads no further
//! message from the peer: the reading task waits, and is woken when a held
//! message is dropped or a queued one written brings the sum back under.
//! The peer's writes then fill the socket and block: backpressure, as Cap'n
//! Proto C++'s flow limit does. The message that takes the sum over the
//! budget is still read whole, so the budget is exceeded by at most one
//! message ([`ConnectionLimits::max_message_bytes`]). A peer that hangs
//! up while its connection is paused is noticed all the same (the socket's
//! hang-up is looked at without reading), and the connection closes.
//!
//! As with C++'s flow limit, a budget smaller than what a legitimate peer
//! keeps in flight can stall a connection: one whose held requests wait
//! for callbacks from the peer, which are not read while it is over budget,
//! or two peers that both have more than their budget queued for each
//! other. The default (64 MiB) is far above what calls and callbacks keep
//! in flight; raise it for bulk transfers.
//!
//! # Reading
//!
//! A message larger than [`ConnectionLimits::max_message_bytes`] (announced
//! in its segment table) fails the connection before anything else is
//! read. A message's memory grows as its bytes arrive (geometrically, from
//! 64 KiB), not as its header announces: an 8-byte header that announces
//! 63 MiB costs 64 KiB until the data follows. And a message may be read
//! only a few times over its own size (`traversal_limit`), so a few bytes
//! cannot stand for millions of elements.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use capnp::capability::Promise;
use capnp::message::{Builder, HeapAllocator, ReaderOptions, ReaderSegments};
use capnp_rpc::rpc_twoparty_capnp::Side;
use futures::channel::oneshot;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use futures::{FutureExt, TryFutureExt};

/// The default [`ConnectionLimits::max_message_bytes`]: 64 MiB, capnp's
/// own default traversal limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The default [`ConnectionLimits::flow_budget_bytes`]: 64 MiB.
pub const DEFAULT_FLOW_BUDGET_BYTES: usize = 64 << 20;

/// What one connection's peer can make this process buffer
/// (`Connection::serve_with_limits`, `Connection::connect_with_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The largest message accepted from the peer, in bytes: a larger one
    /// (as its header announces) closes the connection.
    pub max_message_bytes: usize,
    /// How many bytes of the peer's messages still held (requests queued or
    /// running) plus our messages not yet written to it (replies it has not
    /// read) the connection allows before it stops reading from the peer,
    /// until that drops back under.
    pub flow_budget_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            flow_budget_bytes: DEFAULT_FLOW_BUDGET_BYTES,
        }
    }
}

/// A connection's budget: what counts against it, and the reading task
/// waiting for it to drop back under. Loop thread only.
struct Budget {
    limit: usize,
    held_in: Cell<usize>,
    queued_out: Cell<usize>,
    reader: RefCell<Option<Waker>>,
}

impl Budget {
    fn over(&self) -> bool {
        self.held_in.get().saturating_add(self.queued_out.get()) > self.limit
    }

    /// Gives back `bytes` of `which`, and wakes the reader if that brings
    /// the connection back under its budget.
    fn release(&self, which: &Cell<usize>, bytes: usize) {
        which.set(which.get().saturating_sub(bytes));
        if !self.over()
            && let Some(reader) = self.reader.borrow_mut().take()
        {
            reader.wake();
        }
    }
}

/// The stream a connection reads: an `AsyncRead` that can also tell,
/// without reading, that the peer has hung up.
pub(crate) trait Input: AsyncRead + Unpin + 'static {
    /// Ready once the peer has closed its end; until then `Pending`, with
    /// `cx` woken when the stream's readiness changes.
    fn poll_peer_closed(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl Input for futures::io::BufReader<multiprocess_event_loop::ReadHalf> {
    fn poll_peer_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.get_ref().poll_peer_closed(cx)
    }
}

/// Waits until the connection is under its budget. A peer that hangs up
/// meanwhile fails the wait: its messages are not read, so its EOF would
/// not be, and the connection (and all it holds) would outlive it.
async fn under_budget<R: Input>(budget: &Budget, input: &R) -> capnp::Result<()> {
    futures::future::poll_fn(|cx| {
        if !budget.over() {
            return Poll::Ready(Ok(()));
        }
        *budget.reader.borrow_mut() = Some(cx.waker().clone());
        match input.poll_peer_closed(cx) {
            Poll::Ready(()) => Poll::Ready(Err(capnp::Error::disconnected(
                "the peer hung up while over its flow budget".to_string(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Bytes counted against a budget until dropped.
struct Ticket {
    budget: Rc<Budget>,
    output: bool,
    bytes: usize,
}

impl Ticket {
    fn take(budget: &Rc<Budget>, output: bool, bytes: usize) -> Self {
        let which = if output {
            &budget.queued_out
        } else {
            &budget.held_in
        };
        which.set(which.get().saturating_add(bytes));
        Self {
            budget: budget.clone(),
            output,
            bytes,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let which = if self.output {
            &self.budget.queued_out
        } else {
            &self.budget.held_in
        };
        self.budget.release(which, self.bytes);
    }
}

/// A message's segments in one word-aligned buffer.
struct Segments {
    words: Vec<capnp::Word>,
    /// Each segment's start and end, in words.
    bounds: Vec<(usize, usize)>,
}

impl ReaderSegments for Segments {
    fn get_segment(&self, idx: u32) -> Option<&[u8]> {
        let &(start, end) = self.bounds.get(idx as usize)?;
        Some(capnp::Word::words_to_bytes(self.words.get(start..end)?))
    }
}

/// The most segments a message may have (as capnp's own reader: fewer
/// than 512).
const MAX_SEGMENTS: usize = 511;

/// How much of a message's memory is committed before its data arrives.
const FIRST_CHUNK_WORDS: usize = 8 * 1024;

/// How many times over its own size a message may be read, at least
/// [`MIN_TRAVERSAL_WORDS`] words.
const TRAVERSAL_FACTOR: usize = 8;
const MIN_TRAVERSAL_WORDS: usize = 8 * 1024;

/// The words that may be read from a message of `words` words before
/// reading it fails (capnp's traversal limit). A pointer can make a few
/// bytes stand for far more: a list of 4 million zero-sized elements is
/// 8 bytes, and capnp counts each element as a word read. With capnp's
/// fixed default (8 Mi words), such a 488-byte `Call` had capnp-rpc walk a
/// cap table of 4 million entries, stalling the loop (and every connection
/// on it) for 0.6 s in a debug build. Bound to a multiple of what arrived,
/// a message can be read several times over (the runtime and a method read
/// each field once or twice), and nothing more.
fn traversal_limit(words: usize) -> usize {
    words
        .saturating_mul(TRAVERSAL_FACTOR)
        .max(MIN_TRAVERSAL_WORDS)
}

/// Reads one message, or `None` at a clean end of stream. Fails on a
/// segment table that announces more than `max_words`.
async fn read_message<R: AsyncRead + Unpin>(
    input: &mut R,
    max_words: usize,
) -> capnp::Result<Option<Segments>> {
    let mut first = [0u8; 8];
    let n = input.read(&mut first).await?;
    if n == 0 {
        return Ok(None);
    }
    input.read_exact(&mut first[n..]).await?;
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = (le(&first[..4]) as u32).wrapping_add(1) as usize;
    if count == 0 || count > MAX_SEGMENTS {
        return Err(capnp::Error::failed(format!(
            "Too many segments: {count} (at most {MAX_SEGMENTS})"
        )));
    }
    let mut lengths = vec![le(&first[4..])];
    if count > 1 {
        // The rest of the table, padded to a whole word.
        let mut rest = vec![0u8; (count & !1) * 4];
        input.read_exact(&mut rest).await?;
        lengths.extend(rest.chunks_exact(4).take(count - 1).map(le));
    }
    let total: usize = lengths.iter().sum();
    if total > max_words {
        return Err(capnp::Error::failed(format!(
            "a message of {} bytes is too large: over this connection's limit of {} bytes",
            total.saturating_mul(8),
            max_words.saturating_mul(8)
        )));
    }
    let mut bounds = Vec::with_capacity(count);
    let mut start = 0;
    for length in lengths {
        bounds.push((start, start + length));
        start += length;
    }
    // Memory committed as the data arrives: the buffer grows (by half, from
    // a first chunk) only once what it holds has been read.
    let mut words: Vec<capnp::Word> = Vec::new();
    while words.len() < total {
        let filled = words.len();
        let grown = total.min(filled.saturating_add((filled / 2).max(FIRST_CHUNK_WORDS)));
        words.resize(grown, capnp::word(0, 0, 0, 0, 0, 0, 0, 0));
        let bytes = capnp::Word::words_to_bytes_mut(&mut words[filled..]);
        input.read_exact(bytes).await?;
    }
    Ok(Some(Segments { words, bounds }))
}

/// A message read from the peer; its bytes count against the budget until
/// capnp-rpc drops it.
struct Incoming {
    message: capnp::message::Reader<Segments>,
    _ticket: Ticket,
}

impl capnp_rpc::IncomingMessage for Incoming {
    fn get_body(&self) -> capnp::Result<capnp::any_pointer::Reader<'_>> {
        self.message.get_root()
    }
}

/// A message in the write queue; its bytes count against the budget until
/// written (the queue then drops it).
struct Queued {
    message: Rc<Builder<HeapAllocator>>,
    _ticket: Ticket,
}

impl capnp_futures::serialize::AsOutputSegments for Queued {
    fn as_output_segments(&self) -> capnp::OutputSegments<'_> {
        self.message.get_segments_for_output()
    }
}

type Sender = crate::write_queue::Sender<Queued>;

struct Outgoing {
    message: Builder<HeapAllocator>,
    sender: Sender,
    budget: Rc<Budget>,
}

impl capnp_rpc::OutgoingMessage for Outgoing {
    fn get_body(&mut self) -> capnp::Result<capnp::any_pointer::Builder<'_>> {
        self.message.get_root()
    }

    fn get_body_as_reader(&self) -> capnp::Result<capnp::any_pointer::Reader<'_>> {
        self.message.get_root_as_reader()
    }

    fn send(self: Box<Self>) -> (Promise<(), capnp::Error>, Rc<Builder<HeapAllocator>>) {
        let Outgoing {
            message,
            mut sender,
            budget,
        } = *self;
        let ticket = Ticket::take(&budget, true, message.size_in_words().saturating_mul(8));
        let message = Rc::new(message);
        let queued = Queued {
            message: message.clone(),
            _ticket: ticket,
        };
        (Promise::from_future(sender.send(queued)), message)
    }

    fn take(self: Box<Self>) -> Builder<HeapAllocator> {
        self.message
    }

    fn size_in_words(&self) -> usize {
        self.message.size_in_words()
    }
}

struct Inner<R> {
    input: Rc<RefCell<Option<R>>>,
    sender: Sender,
    side: Side,
    limits: ConnectionLimits,
    budget: Rc<Budget>,
    on_disconnect: Option<oneshot::Sender<()>>,
}

impl<R> Drop for Inner<R> {
    fn drop(&mut self) {
        if let Some(fulfiller) = self.on_disconnect.take() {
            let _ = fulfiller.send(());
        }
    }
}

struct Connection<R> {
    inner: Rc<RefCell<Inner<R>>>,
}

impl<R: Input> capnp_rpc::Connection<Side> for Connection<R> {
    fn get_peer_vat_id(&self) -> Side {
        self.inner.borrow().side
    }

    fn new_outgoing_message(
        &mut self,
        first_segment_word_size: u32,
    ) -> Box<dyn capnp_rpc::OutgoingMessage> {
        let inner = self.inner.borrow();
        Box::new(Outgoing {
            message: Builder::new(
                HeapAllocator::new().first_segment_words(first_segment_word_size),
            ),
            sender: inner.sender.clone(),
            budget: inner.budget.clone(),
        })
    }

    fn receive_incoming_message(
        &mut self,
    ) -> Promise<Option<Box<dyn capnp_rpc::IncomingMessage>>, capnp::Error> {
        let inner = self.inner.borrow();
        let Some(mut input) = inner.input.borrow_mut().take() else {
            return Promise::err(capnp::Error::failed(
                "a second read of the connection while one is in progress".to_string(),
            ));
        };
        let put_back = inner.input.clone();
        let budget = inner.budget.clone();
        let max_words = inner.limits.max_message_bytes / 8;
        Promise::from_future(async move {
            // Backpressure: no further message while over the budget.
            under_budget(&budget, &input).await?;
            let segments = read_message(&mut input, max_words).await?;
            *put_back.borrow_mut() = Some(input);
            Ok(segments.map(|segments| {
                let bytes = segments.words.len() * 8;
                let options = *ReaderOptions::new()
                    .traversal_limit_in_words(Some(traversal_limit(segments.words.len())));
                Box::new(Incoming {
                    message: capnp::message::Reader::new(segments, options),
                    _ticket: Ticket::take(&budget, false, bytes),
                }) as Box<dyn capnp_rpc::IncomingMessage>
            }))
        })
    }

    fn shutdown(&mut self, result: capnp::Result<()>) -> Promise<(), capnp::Error> {
        Promise::from_future(self.inner.borrow_mut().sender.terminate(result))
    }
}

/// A two-party network over one stream, with [`ConnectionLimits`]; what
/// `capnp_rpc::twoparty::VatNetwork` is, otherwise.
pub(crate) struct Network<R: Input> {
    connection: Option<Connection<R>>,
    weak: Weak<RefCell<Inner<R>>>,
    driver: futures::future::Shared<Promise<(), capnp::Error>>,
    side: Side,
}

impl<R: Input> Network<R> {
    pub(crate) fn new<W: AsyncWrite + Unpin + 'static>(
        input: R,
        output: W,
        side: Side,
        limits: ConnectionLimits,
    ) -> Self {
        let (fulfiller, disconnected) = oneshot::channel();
        let disconnected =
            disconnected.map_err(|_| capnp::Error::disconnected("disconnected".into()));
        let (sender, queue) = crate::write_queue::write_queue(output);
        // Runs until the queue ends and the connection is gone, even if the
        // queue fails first.
        let driver = Promise::from_future(queue.then(move |r| {
            disconnected
                .then(move |_| futures::future::ready(r))
                .map_ok(|_| ())
        }))
        .shared();
        let inner = Rc::new(RefCell::new(Inner {
            input: Rc::new(RefCell::new(Some(input))),
            sender,
            side,
            limits,
            budget: Rc::new(Budget {
                limit: limits.flow_budget_bytes,
                held_in: Cell::new(0),
                queued_out: Cell::new(0),
                reader: RefCell::new(None),
            }),
            on_disconnect: Some(fulfiller),
        }));
        Self {
            weak: Rc::downgrade(&inner),
            connection: Some(Connection { inner }),
            driver,
            side,
        }
    }
}

impl<R: Input> capnp_rpc::VatNetwork<Side> for Network<R> {
    fn connect(&mut self, host_id: Side) -> Option<Box<dyn capnp_rpc::Connection<Side>>> {
        if host_id == self.side {
            return None;
        }
        // Asked for once, as the connection starts (the peer's bootstrap),
        // while the RpcSystem holds it; should it ever be gone, `None`
        // rather than the panic of capnp-rpc's own network.
        let inner = self.weak.upgrade()?;
        Some(Box::new(Connection { inner }))
    }

    fn accept(&mut self) -> Promise<Box<dyn capnp_rpc::Connection<Side>>, capnp::Error> {
        match self.connection.take() {
            Some(c) => Promise::ok(Box::new(c) as Box<dyn capnp_rpc::Connection<Side>>),
            None => Promise::from_future(futures::future::pending()),
        }
    }

    fn drive_until_shutdown(&mut self) -> Promise<(), capnp::Error> {
        Promise::from_future(self.driver.clone())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;

    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn a_cut_message_fails_and_an_oversized_one_is_refused() {
        // 8 bytes: one segment of 8 Mi words (64 MiB), then only 16 bytes.
        let mut data = vec![0, 0, 0, 0];
        data.extend_from_slice(&(8u32 << 20).to_le_bytes());
        data.extend_from_slice(&[7; 16]);
        let mut input = futures::io::Cursor::new(data);
        let outcome = block_on(read_message(&mut input, 16 << 20));
        assert!(outcome.is_err(), "a cut message is an error");
        // And the same header with a limit below it is refused outright.
        let mut data = vec![0, 0, 0, 0];
        data.extend_from_slice(&(8u32 << 20).to_le_bytes());
        let mut input = futures::io::Cursor::new(data);
        let refused = block_on(read_message(&mut input, 1 << 20)).err();
        assert!(
            refused
                .as_ref()
                .is_some_and(|e| e.extra.contains("over this connection's limit")),
            "{refused:?}"
        );
    }

    #[test]
    fn messages_read_back_as_written() {
        let mut builder = Builder::new_default();
        builder
            .init_root::<capnp::any_pointer::Builder<'_>>()
            .initn_as::<capnp::text_list::Builder<'_>>(3)
            .set(1, "hello");
        let mut data = Vec::new();
        capnp::serialize::write_message(&mut data, &builder).expect("write");
        // Two messages, the second with a second segment.
        let mut big = Builder::new(HeapAllocator::new().first_segment_words(1));
        big.init_root::<capnp::any_pointer::Builder<'_>>()
            .initn_as::<capnp::text_list::Builder<'_>>(2)
            .set(0, "x".repeat(100_000).as_str());
        capnp::serialize::write_message(&mut data, &big).expect("write");
        let mut input = futures::io::Cursor::new(data);
        for expected in ["hello", ""] {
            let segments = block_on(read_message(&mut input, 1 << 20))
                .expect("read")
                .expect("a message");
            let reader = capnp::message::Reader::new(segments, ReaderOptions::new());
            let list = reader
                .get_root::<capnp::text_list::Reader<'_>>()
                .expect("root");
            let text = list.get(1).expect("text").to_str().expect("UTF-8");
            assert_eq!(text, expected);
        }
        assert!(
            block_on(read_message(&mut input, 1 << 20))
                .expect("EOF")
                .is_none()
        );
    }
}
