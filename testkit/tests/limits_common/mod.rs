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
//! [`LimitsChild::raw`] connects a `mp_testkit::wire::Raw`: a socket the
//! test writes Cap'n Proto RPC messages to, one by one, as a hostile or
//! buggy peer would (the same technique as `tests/bad_input.rs`). Every read
//! and write has a timeout ([`IO_TIMEOUT`]), so no wait is unbounded.

#![allow(dead_code)]

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::Arc;

use mp_testkit::probe::{Init, Probe};
use mp_testkit::probe_capnp::init;
use mp_testkit::wire::Raw;
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
    multiprocess::install_tracing();
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
        Raw::new(
            UnixStream::connect(&self.path).expect("connect to the child"),
            IO_TIMEOUT,
        )
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
