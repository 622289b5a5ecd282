//! What the limit tests share (`mod limits_common;` in each file): a child
//! process that serves every connection made to it, and a raw Cap'n Proto
//! peer that writes hand-built messages.
//!
//! # The child
//!
//! `mp-child` serves one connection; these tests need a child that keeps
//! serving *other* connections while one peer abuses it. So the child is this
//! test binary itself, run with `--ignored --exact limits_child` (each test
//! file has that entry, calling [`child_main`]): it accepts connections on a
//! listening socket the parent made and passed down, serves `Init` on each,
//! and exits when its stdin closes (the parent's [`LimitsChild`] dropped or
//! finished). Its configuration comes from the environment
//! (`MP_LIMITS_*`, see [`child_main`]). Each line the parent writes to its
//! stdin asks for its worker counts, which it writes to its stdout
//! ([`LimitsChild::counts`]).
//!
//! # The raw peer
//!
//! [`Raw`] is a socket the test writes Cap'n Proto RPC messages to, one by
//! one, as a hostile or buggy peer would (the same technique as
//! `tests/bad_input.rs`); the messages are built with `mp_testkit::wire`. Every read and write has a timeout, so no wait is
//! unbounded.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use capnp::message::{Builder, HeapAllocator, ReaderOptions};
use capnp_rpc::rpc_capnp::{message, return_};
use std::sync::Arc;

use mp_testkit::probe::{Init, Probe};
use mp_testkit::probe_capnp::init;
use mp_testkit::wire::{bootstrap, bytes, construct, make_probe, make_thread};
use multiprocess::Interface;
use multiprocess_thread_map::{Connection, EventLoop, LoopHandle};

/// The bound on every socket read and write, and on every wait for the
/// child.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------

/// The environment variable that carries the listening socket's fd.
const LISTEN_FD: &str = "MP_LIMITS_LISTEN_FD";

/// What starts the child's answer to a question on its stdin (the test
/// harness writes its own lines to stdout too).
const COUNTS: &str = "mp-limits-counts: ";

/// The body of the child process: serves every connection made to the
/// listening socket its parent passed, until its stdin closes. Settings
/// from the environment: `MP_LIMITS_WORKER_STACK` (bytes),
/// `MP_LIMITS_MAX_WORKERS` (per connection), `MP_LIMITS_MAX_WORKERS_TOTAL`
/// (for the process), `MP_LIMITS_FLOW_BUDGET` and `MP_LIMITS_MAX_MESSAGE`
/// (bytes, for every connection: `ConnectionLimits`).
pub(crate) fn child_main() {
    let fd: i32 = std::env::var(LISTEN_FD)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("limits_child is the child process of this file's tests, which start it");
    let _ = mp_testkit::child_waits::answer_sigusr1();
    mp_testkit::init_tracing();
    let setting = |name: &str| -> Option<usize> { std::env::var(name).ok()?.parse().ok() };
    if let Some(bytes) = setting("MP_LIMITS_WORKER_STACK") {
        multiprocess_thread_map::set_worker_stack_size(bytes);
    }
    if let Some(count) = setting("MP_LIMITS_MAX_WORKERS") {
        multiprocess_thread_map::set_max_workers_per_connection(count);
    }
    if let Some(count) = setting("MP_LIMITS_MAX_WORKERS_TOTAL") {
        multiprocess_thread_map::set_max_workers(count);
    }
    let mut limits = multiprocess_thread_map::ConnectionLimits::default();
    if let Some(bytes) = setting("MP_LIMITS_FLOW_BUDGET") {
        limits.flow_budget_bytes = bytes;
    }
    if let Some(bytes) = setting("MP_LIMITS_MAX_MESSAGE") {
        limits.max_message_bytes = bytes;
    }
    // SAFETY: the parent passed this listening socket for us alone.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    // Answers each line with the worker counts; exits when the parent
    // closes our stdin (or dies): nothing else ends `accept`. Written to the
    // stdout handle itself, which the test harness does not capture.
    std::thread::spawn(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
            let counts = format!(
                "{COUNTS}{} {}\n",
                multiprocess_thread_map::live_workers(),
                multiprocess_thread_map::orphaned_workers()
            );
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(counts.as_bytes());
            let _ = stdout.flush();
        }
        std::process::exit(0);
    });
    let event_loop = EventLoop::start("limits-child-loop").expect("start the child's loop");
    let mut connections: Vec<Connection> = Vec::new();
    for stream in listener.incoming() {
        let stream = stream.expect("accept");
        connections.retain(|c| !c.is_disconnected());
        connections.push(
            Connection::serve_with_limits(
                &event_loop,
                stream,
                mp_testkit::probe_server::bootstrap,
                limits,
            )
            .expect("serve"),
        );
    }
}

/// A running child (see the module's notes): connect to it as many times as
/// needed.
pub(crate) struct LimitsChild {
    path: PathBuf,
    pid: u32,
    stdin: Option<std::process::ChildStdin>,
    /// The child's answers (`live orphaned`), read from its stdout.
    counts: mpsc::Receiver<(usize, usize)>,
    exited: mpsc::Receiver<std::io::Result<std::process::ExitStatus>>,
    waiter: Option<std::thread::JoinHandle<()>>,
    event_loop: LoopHandle,
}

impl LimitsChild {
    /// Starts the child, with `env` set in its environment.
    pub(crate) fn spawn(env: &[(&str, String)]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("mp-limits-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the child's socket");
        let fd = listener.as_raw_fd();
        let mut command = Command::new(std::env::current_exe().expect("this test binary"));
        command
            .args(["--ignored", "--exact", "limits_child", "--test-threads=1"])
            .env(LISTEN_FD, fd.to_string())
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        // SAFETY: runs in the forked child before exec, and only calls
        // fcntl (async-signal-safe) on an fd the parent keeps open until
        // spawn returns.
        unsafe {
            command.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn the child");
        drop(listener);
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("the child's stdout");
        let (counts_tx, counts) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // The harness's own "test limits_child ... " may start
                // the line.
                let Some(at) = line.find(COUNTS) else {
                    continue;
                };
                let answer = &line[at + COUNTS.len()..];
                let mut numbers = answer.split(' ').filter_map(|n| n.parse().ok());
                if let (Some(live), Some(orphaned)) = (numbers.next(), numbers.next())
                    && counts_tx.send((live, orphaned)).is_err()
                {
                    return;
                }
            }
        });
        let registration = mp_testkit::children::register(pid, "limits child");
        let (exited_tx, exited) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            // Reaped: the pid may name another process from now on.
            drop(registration);
            let _ = exited_tx.send(status);
        });
        Self {
            path,
            pid,
            stdin,
            counts,
            exited,
            waiter: Some(waiter),
            event_loop: EventLoop::start("limits-client-loop").expect("client loop"),
        }
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// A new connection to the child, for raw messages.
    pub(crate) fn raw(&self) -> Raw {
        Raw::new(UnixStream::connect(&self.path).expect("connect to the child"))
    }

    /// A new connection to the child, through the runtime.
    pub(crate) fn connect(&self) -> (Connection, Arc<dyn Init>) {
        let stream = UnixStream::connect(&self.path).expect("connect to the child");
        let (connection, init) =
            Connection::connect::<init::Client>(&self.event_loop, stream).expect("handshake");
        (connection, <dyn Init as Interface>::from_remote(init))
    }

    /// The child's live and orphaned workers (`live_workers`,
    /// `orphaned_workers`), asked for on its stdin.
    pub(crate) fn counts(&mut self) -> (usize, usize) {
        let stdin = self.stdin.as_mut().expect("the child's stdin");
        stdin.write_all(b"counts\n").expect("ask the child");
        stdin.flush().expect("ask the child");
        self.counts
            .recv_timeout(IO_TIMEOUT)
            .expect("the child answers within the timeout")
    }

    /// Waits (bounded) until the child's counts satisfy `done`; returns
    /// them. Each look is a round trip to the child.
    pub(crate) fn wait_counts(
        &mut self,
        what: &str,
        done: impl Fn((usize, usize)) -> bool,
    ) -> (usize, usize) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let counts = self.counts();
            if done(counts) {
                return counts;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the child's counts stayed at {counts:?} (live, orphaned)"
            );
        }
    }

    /// Panics if the child has exited.
    pub(crate) fn assert_running(&self, what: &str) {
        if let Ok(status) = self.exited.try_recv() {
            panic!("{what}: the child exited: {status:?}");
        }
    }

    /// The child runs and serves a new connection: `makeProbe`, `add` and
    /// an echo work. Returns the probe (its connection kept alive by it).
    pub(crate) fn assert_serving(&self, what: &str) -> Arc<dyn Probe> {
        self.assert_running(what);
        let (_connection, init) = self.connect();
        let probe = init.make_probe().expect("makeProbe on a new connection");
        assert_eq!(probe.add(20, 22).expect("add on a new connection"), 42);
        assert_eq!(probe.echo(b"here").expect("echo"), b"here");
        self.assert_running(what);
        probe
    }

    /// The child's resident memory (`VmRSS`), in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// How many writable mappings of at least `bytes` the child has: the
    /// memory it reserved for its own use, touched or not, in large pieces.
    /// (Its total virtual size is no measure of that: a malloc arena,
    /// created whenever threads contend for the allocator, reserves 64 MiB
    /// of address space, mapped inaccessible until used.)
    pub(crate) fn large_writable_mappings(&self, bytes: u64) -> usize {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid))
            .expect("the child's /proc maps");
        maps.lines()
            .filter(|line| {
                let mut fields = line.split_whitespace();
                let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                    return false;
                };
                let Some((start, end)) = range.split_once('-') else {
                    return false;
                };
                let size = u64::from_str_radix(end, 16)
                    .unwrap_or(0)
                    .saturating_sub(u64::from_str_radix(start, 16).unwrap_or(0));
                perms.contains('w') && size >= bytes
            })
            .count()
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("the child's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    /// Closes the child's stdin and checks it exits with success (no crash,
    /// no abort) within [`IO_TIMEOUT`].
    pub(crate) fn finish(mut self, what: &str) {
        drop(self.stdin.take());
        let status = match self.exited.recv_timeout(IO_TIMEOUT) {
            Ok(status) => status.expect("wait for the child"),
            Err(_) => panic!("{what}: the child did not exit within {IO_TIMEOUT:?}"),
        };
        assert!(status.success(), "{what}: the child exited with {status}");
    }
}

impl Drop for LimitsChild {
    fn drop(&mut self) {
        // A child still running (a failed test): closing stdin ends it; kill
        // it as well, in case it is stuck.
        drop(self.stdin.take());
        if self.exited.recv_timeout(Duration::from_secs(2)).is_err() {
            // SAFETY: kill(2) on our own child's pid, not yet reaped (its
            // waiter thread has not returned).
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---------------------------------------------------------------------------
// A raw socket speaking to a server.
// ---------------------------------------------------------------------------

/// What the server answered to one question.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Results: the export ids of the capabilities they carry, in cap-table
    /// order.
    Results(Vec<u32>),
    /// An exception, with its reason.
    Exception(String),
}

/// What the server sent, as far as these tests care.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// The answer to one of our questions.
    Return(u32, Answer),
    /// A call the server made to one of our exports (a callback): its
    /// question id, and the export it targets (`None` for a promised
    /// answer).
    Call(u32, Option<u32>),
    /// The server is closing the connection, for this reason.
    Abort(String),
    /// Anything else (`Release`, `Resolve`, ...).
    Other,
}

/// Our end of a connection, where we write what we like.
pub(crate) struct Raw {
    pub(crate) stream: UnixStream,
    /// Bytes read but not yet parsed into messages.
    pending: Vec<u8>,
}

impl Raw {
    pub(crate) fn new(stream: UnixStream) -> Self {
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Writes `data`. The server may close the connection before it has
    /// read everything: a broken pipe or reset here is not a failure.
    pub(crate) fn write(&mut self, data: &[u8]) {
        match self.stream.write_all(data) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
            Err(e) => panic!("writing to the server: {e}"),
        }
    }

    pub(crate) fn send(&mut self, message: &Builder<HeapAllocator>) {
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
                panic!("the server neither answered nor closed within {IO_TIMEOUT:?}")
            }
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    /// The next whole message the server sent, or `None` at EOF.
    pub(crate) fn next_message(
        &mut self,
    ) -> Option<capnp::message::Reader<capnp::serialize::OwnedSegments>> {
        loop {
            let mut slice: &[u8] = &self.pending;
            let options = *ReaderOptions::new().traversal_limit_in_words(None);
            match capnp::serialize::try_read_message(&mut slice, options) {
                Ok(Some(message)) => {
                    let used = self.pending.len() - slice.len();
                    self.pending.drain(..used);
                    return Some(message);
                }
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

    /// The next message the server sent, as far as these tests care; `None`
    /// at EOF.
    pub(crate) fn next(&mut self) -> Option<Incoming> {
        let message = self.next_message()?;
        let root = message
            .get_root::<message::Reader<'_>>()
            .expect("a message root");
        Some(match root.which().expect("a known message type") {
            message::Return(Ok(ret)) => {
                let answer = match ret.which().expect("a known return type") {
                    return_::Results(payload) => Answer::Results(
                        payload
                            .expect("payload")
                            .get_cap_table()
                            .expect("cap table")
                            .iter()
                            .map(|d| match d.which().expect("descriptor") {
                                capnp_rpc::rpc_capnp::cap_descriptor::SenderHosted(id) => id,
                                capnp_rpc::rpc_capnp::cap_descriptor::SenderPromise(id) => id,
                                _ => u32::MAX,
                            })
                            .collect(),
                    ),
                    return_::Exception(e) => Answer::Exception(
                        e.expect("exception")
                            .get_reason()
                            .expect("reason")
                            .to_string()
                            .unwrap_or_else(|_| "<non-UTF-8>".into()),
                    ),
                    _ => Answer::Exception("<other return type>".into()),
                };
                Incoming::Return(ret.get_answer_id(), answer)
            }
            message::Call(Ok(call)) => {
                let target = call.get_target().ok().and_then(|t| match t.which() {
                    Ok(capnp_rpc::rpc_capnp::message_target::ImportedCap(id)) => Some(id),
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

    /// Reads until the server answers `question`; panics if it closes the
    /// connection instead.
    pub(crate) fn answer(&mut self, question: u32) -> Answer {
        loop {
            match self.next() {
                None => panic!("the server closed the connection instead of answering {question}"),
                Some(Incoming::Abort(reason)) => {
                    panic!("the server aborted instead of answering {question}: {reason}")
                }
                Some(Incoming::Return(id, answer)) if id == question => return answer,
                Some(_) => {}
            }
        }
    }

    /// Reads until the server answers `question` with results, and returns
    /// what `read` makes of their content; panics on an exception.
    pub(crate) fn content<T>(
        &mut self,
        question: u32,
        read: impl FnOnce(capnp::any_pointer::Reader<'_>) -> T,
    ) -> T {
        loop {
            let Some(message) = self.next_message() else {
                panic!("the server closed the connection instead of answering {question}");
            };
            let root = message
                .get_root::<message::Reader<'_>>()
                .expect("a message root");
            if let Ok(message::Return(Ok(ret))) = root.which()
                && ret.get_answer_id() == question
            {
                match ret.which().expect("a known return type") {
                    return_::Results(payload) => {
                        return read(payload.expect("payload").get_content());
                    }
                    return_::Exception(e) => panic!(
                        "question {question} failed: {:?}",
                        e.and_then(|e| e.get_reason()).map(|r| r.to_string())
                    ),
                    _ => panic!("unexpected return type for {question}"),
                }
            }
        }
    }

    /// The export ids of a successful answer's capabilities.
    pub(crate) fn results(&mut self, question: u32) -> Vec<u32> {
        match self.answer(question) {
            Answer::Results(caps) => caps,
            Answer::Exception(reason) => panic!("question {question} failed: {reason}"),
        }
    }

    /// The reason of a failed answer.
    pub(crate) fn exception(&mut self, question: u32) -> String {
        match self.answer(question) {
            Answer::Exception(reason) => reason,
            Answer::Results(caps) => {
                panic!("question {question} succeeded (caps {caps:?}) but should have failed")
            }
        }
    }

    /// Reads until the server closes the connection; returns the reason of
    /// its `Abort`, if it sent one.
    pub(crate) fn expect_closed(mut self) -> Option<String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut abort = None;
        while let Some(incoming) = self.next() {
            if let Incoming::Abort(reason) = incoming {
                abort = Some(reason);
            }
            assert!(Instant::now() < deadline, "the server never closed");
        }
        abort
    }

    /// Bootstrap and `construct` (our ThreadMap is our export 0): returns
    /// the export ids of the server's `Init` and `ThreadMap`.
    pub(crate) fn handshake(&mut self) -> (u32, u32) {
        self.send(&bootstrap(0));
        let init = self.results(0)[0];
        self.send(&construct(1, init, 0));
        let map = self.results(1)[0];
        (init, map)
    }

    /// The handshake, a worker and a Probe on it: returns the export ids of
    /// `Init`, the `ThreadMap`, the worker's `Thread` and the `Probe`
    /// (questions 0 to 3).
    pub(crate) fn probe(&mut self, thread_name: &str) -> (u32, u32, u32, u32) {
        let (init, map) = self.handshake();
        self.send(&make_thread(2, map, thread_name));
        let thread = self.results(2)[0];
        self.send(&make_probe(3, init, thread));
        let probe = self.results(3)[0];
        (init, map, thread, probe)
    }
}
