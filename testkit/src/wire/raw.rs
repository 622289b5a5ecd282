//! [`Raw`]: our end of a connection, where a test writes the messages of
//! [`super`] (or any bytes at all) and reads what the server answers, with
//! a timeout on every read and write, so that no wait is unbounded.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use capnp::message::{Builder, HeapAllocator, ReaderOptions};
use capnp_rpc::rpc_capnp::{cap_descriptor, message, message_target, return_};

use super::{bootstrap, bytes, construct, make_probe, make_thread};

/// What the server answered to one question.
#[derive(Debug)]
pub enum Answer {
    /// Results: the export ids of the capabilities they carry
    /// (`senderHosted` or `senderPromise`; `u32::MAX` for any other
    /// descriptor), in cap-table order.
    Results(Vec<u32>),
    /// An exception, with its reason.
    Exception(String),
}

/// What the server sent, as far as these tests care.
#[derive(Debug)]
pub enum Incoming {
    /// The answer to one of our questions.
    Return(u32, Answer),
    /// A call the server made to one of our exports (a callback): its
    /// question id, and the export it targets (`None` for a promised
    /// answer).
    Call(u32, Option<u32>),
    /// The server is closing the connection, for this reason.
    Abort(String),
    /// Anything else (`Release`, noted in [`Raw::released`], `Resolve`,
    /// ...).
    Other,
}

/// Our end of a connection, where we write what we like.
pub struct Raw {
    /// The socket, for what the messages do not cover (shutting down our
    /// write side, say).
    pub stream: UnixStream,
    /// The bound on every read and write.
    timeout: Duration,
    /// Bytes read but not yet parsed into messages.
    pending: Vec<u8>,
    /// The ids of our exports the server released, in order (as seen while
    /// reading its messages).
    pub released: Vec<u32>,
}

/// The export id a result's capability descriptor names.
fn export_id(descriptor: cap_descriptor::Reader<'_>) -> u32 {
    match descriptor.which().expect("descriptor") {
        cap_descriptor::SenderHosted(id) | cap_descriptor::SenderPromise(id) => id,
        _ => u32::MAX,
    }
}

/// The text of an exception's or abort's reason.
impl From<Result<(Vec<u32>, ()), String>> for Answer {
    fn from(decoded: Result<(Vec<u32>, ()), String>) -> Self {
        match decoded {
            Ok((caps, ())) => Answer::Results(caps),
            Err(reason) => Answer::Exception(reason),
        }
    }
}

/// A `Return`'s results (their capability ids, as in [`Answer::Results`],
/// and what `read` makes of their content) or its exception's reason.
fn decode_return<T>(
    ret: return_::Reader<'_>,
    read: impl FnOnce(capnp::any_pointer::Reader<'_>) -> T,
) -> Result<(Vec<u32>, T), String> {
    match ret.which().expect("a known return type") {
        return_::Results(payload) => {
            let payload = payload.expect("payload");
            let caps = payload
                .get_cap_table()
                .expect("cap table")
                .iter()
                .map(export_id)
                .collect();
            Ok((caps, read(payload.get_content())))
        }
        return_::Exception(e) => Err(reason(e.expect("exception").get_reason())),
        _ => Err("<other return type>".into()),
    }
}

fn reason(text: capnp::Result<capnp::text::Reader<'_>>) -> String {
    text.expect("reason")
        .to_string()
        .unwrap_or_else(|_| "<non-UTF-8>".into())
}

impl Raw {
    /// Wraps `stream`, every read and write on it bounded by `timeout`.
    pub fn new(stream: UnixStream, timeout: Duration) -> Self {
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(timeout))
            .expect("write timeout");
        Self {
            stream,
            timeout,
            pending: Vec::new(),
            released: Vec::new(),
        }
    }

    /// Writes `data`. The server may close the connection before it has
    /// read everything (it rejects a message from its header, say): a
    /// broken pipe or reset here is not a failure.
    pub fn write(&mut self, data: &[u8]) {
        match self.stream.write_all(data) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
            Err(e) => panic!("writing to the server: {e}"),
        }
    }

    /// Writes `message`, serialized.
    pub fn send(&mut self, message: &Builder<HeapAllocator>) {
        self.write(&bytes(message));
    }

    /// Reads more bytes; `false` at EOF (or reset).
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the server neither answered nor closed within {:?}",
                    self.timeout
                )
            }
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    /// The next whole message the server sent, or `None` at EOF. Notes a
    /// `Release` in [`Raw::released`].
    pub fn next_message(
        &mut self,
    ) -> Option<capnp::message::Reader<capnp::serialize::OwnedSegments>> {
        loop {
            let mut slice: &[u8] = &self.pending;
            let options = *ReaderOptions::new().traversal_limit_in_words(None);
            match capnp::serialize::try_read_message(&mut slice, options) {
                Ok(Some(message)) => {
                    let used = self.pending.len() - slice.len();
                    self.pending.drain(..used);
                    if let Ok(root) = message.get_root::<message::Reader<'_>>()
                        && let Ok(message::Release(Ok(release))) = root.which()
                    {
                        self.released.push(release.get_id());
                    }
                    return Some(message);
                }
                // Not a whole message yet.
                Ok(None) | Err(_) if !self.fill() => {
                    assert!(
                        self.pending.is_empty(),
                        "the server closed mid-message ({} bytes left)",
                        self.pending.len()
                    );
                    return None;
                }
                Ok(None) | Err(_) => {}
            }
        }
    }

    /// Reads until the server answers `question`; panics if it closes the
    /// connection instead.
    pub fn answer(&mut self, question: u32) -> Answer {
        Answer::from(self.returned(question, |_| ()))
    }

    /// Reads until the server answers `question`: its results' capability
    /// ids (as in [`Answer::Results`]) and what `read` makes of their
    /// content, or the exception's reason. Panics if the server closes the
    /// connection instead.
    pub fn returned<T>(
        &mut self,
        question: u32,
        read: impl FnOnce(capnp::any_pointer::Reader<'_>) -> T,
    ) -> Result<(Vec<u32>, T), String> {
        loop {
            let Some(message) = self.next_message() else {
                panic!("the server closed the connection instead of answering {question}");
            };
            let root = message
                .get_root::<message::Reader<'_>>()
                .expect("a message root");
            match root.which().expect("a known message type") {
                message::Return(Ok(ret)) if ret.get_answer_id() == question => {
                    return decode_return(ret, read);
                }
                message::Abort(abort) => panic!(
                    "the server aborted instead of answering {question}: {:?}",
                    abort.and_then(|a| a.get_reason()).map(|r| r.to_string())
                ),
                _ => {}
            }
        }
    }

    /// Reads until the server answers `question` with results, and returns
    /// what `read` makes of their content; panics on an exception.
    pub fn content<T>(
        &mut self,
        question: u32,
        read: impl FnOnce(capnp::any_pointer::Reader<'_>) -> T,
    ) -> T {
        match self.returned(question, read) {
            Ok((_, content)) => content,
            Err(reason) => panic!("question {question} failed: {reason}"),
        }
    }

    /// The export ids of a successful answer's capabilities.
    pub fn results(&mut self, question: u32) -> Vec<u32> {
        match self.answer(question) {
            Answer::Results(caps) => caps,
            Answer::Exception(reason) => panic!("question {question} failed: {reason}"),
        }
    }

    /// The reason of a failed answer.
    pub fn exception(&mut self, question: u32) -> String {
        match self.answer(question) {
            Answer::Exception(reason) => reason,
            Answer::Results(caps) => {
                panic!("question {question} succeeded (caps {caps:?}) but should have failed")
            }
        }
    }

    /// Reads until the server closes the connection; returns the reason of
    /// its `Abort`, if it sent one.
    pub fn expect_closed(mut self) -> Option<String> {
        let deadline = Instant::now() + self.timeout;
        let mut abort = None;
        for incoming in self.by_ref() {
            if let Incoming::Abort(reason) = incoming {
                abort = Some(reason);
            }
            assert!(Instant::now() < deadline, "the server never closed");
        }
        abort
    }

    /// Bootstrap and `construct` (our ThreadMap is our export 0): returns
    /// the export ids of the server's `Init` and `ThreadMap` (questions 0
    /// and 1).
    pub fn handshake(&mut self) -> (u32, u32) {
        self.send(&bootstrap(0));
        let init = self.results(0)[0];
        self.send(&construct(1, init, 0));
        let map = self.results(1)[0];
        (init, map)
    }

    /// The handshake, a worker and a Probe on it: returns the export ids of
    /// `Init`, the `ThreadMap`, the worker's `Thread` and the `Probe`
    /// (questions 0 to 3).
    pub fn probe(&mut self, thread_name: &str) -> (u32, u32, u32, u32) {
        let (init, map) = self.handshake();
        self.send(&make_thread(2, map, thread_name));
        let thread = self.results(2)[0];
        self.send(&make_probe(3, init, thread));
        let probe = self.results(3)[0];
        (init, map, thread, probe)
    }
}

/// The server's messages, as far as these tests care, until it closes the
/// connection.
impl Iterator for Raw {
    type Item = Incoming;

    /// The next message the server sent, as far as these tests care; `None`
    /// at EOF.
    fn next(&mut self) -> Option<Incoming> {
        let message = self.next_message()?;
        let root = message
            .get_root::<message::Reader<'_>>()
            .expect("a message root");
        Some(match root.which().expect("a known message type") {
            message::Return(Ok(ret)) => {
                Incoming::Return(ret.get_answer_id(), decode_return(ret, |_| ()).into())
            }
            message::Call(Ok(call)) => {
                let target = call.get_target().ok().and_then(|t| match t.which() {
                    Ok(message_target::ImportedCap(id)) => Some(id),
                    _ => None,
                });
                Incoming::Call(call.get_question_id(), target)
            }
            message::Abort(abort) => Incoming::Abort(
                abort
                    .and_then(|a| a.get_reason())
                    .ok()
                    .and_then(|r| r.to_string().ok())
                    .unwrap_or_default(),
            ),
            _ => Incoming::Other,
        })
    }
}
