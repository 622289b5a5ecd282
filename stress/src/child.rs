//! Spawning the child process over an inherited socket, and making sure it goes away.
//!
//! # Design note
//!
//! The parent spawns the child with [`multiprocess_thread_map::spawn_process_with`]: it creates
//! a [`UnixStream::pair`] (both ends close-on-exec), re-executes a binary with
//! `--child SCENARIO --fd N`, where `N` is the number of the child's end, clears `FD_CLOEXEC` on
//! that one descriptor in the forked child only, and closes its own copy of the child's end as
//! soon as the child is spawned.
//!
//! Invariant that rules out orphans: after the spawn, the parent's end is the only other
//! reference to the connection, and it never leaves the parent (it is close-on-exec). So when
//! the parent closes or shuts it down, or dies, the child reads EOF and must exit. The
//! [`ChildProcess`] handle shuts the socket down and reaps the child on drop, killing it if it
//! has not exited within [`EXIT_GRACE`].
//!
//! The child's stdin and stdout are pipes to the parent, for one thing only: the parent asks
//! (one byte on the child's stdin) for the child's count of Waiter sleeps
//! ([`multiprocess_event_loop::waiter::sleeps`]), which lives in the child's memory, and a
//! thread of the child started by [`report_sleeps`] answers with one line on its stdout.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

/// The hidden subcommand that turns a benchmark binary into the child: `--child NAME --fd N`.
pub const CHILD_FLAG: &str = "--child";

/// The flag that carries the inherited descriptor number, like Bitcoin Core's `-ipcfd`.
pub const FD_FLAG: &str = "--fd";

/// How long [`ChildProcess::finish`] (and drop) waits for the child to exit after the socket
/// is shut down, before it kills the child.
pub const EXIT_GRACE: Duration = Duration::from_secs(10);

/// A running child process and the parent's end of its socket.
///
/// Dropping it shuts the socket down (the child sees EOF), waits up to [`EXIT_GRACE`] for the
/// child to exit, and kills it otherwise. Use [`finish`](Self::finish) to see how it ended.
#[derive(Debug)]
pub struct ChildProcess {
    child: Option<Child>,
    conn: UnixStream,
    /// Where the parent asks for, and reads, the child's sleeps.
    ask: Option<ChildStdin>,
    answers: Option<BufReader<ChildStdout>>,
    /// The child in the test kit's registry (so that a test watchdog's dump shows its
    /// threads), until it is reaped.
    registration: Option<mp_testkit::children::Registration>,
}

impl ChildProcess {
    /// Starts `exe --child SCENARIO --fd N`, with `N` the child's end of a fresh socket pair.
    ///
    /// `exe` must understand the hidden subcommand (`mpbench` does). The child's stdin and
    /// stdout are pipes for [`sleeps`](Self::sleeps); its stderr is ours, so its errors are
    /// seen.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use stress::child::ChildProcess;
    ///
    /// let exe = std::env::current_exe()?;
    /// let child = ChildProcess::spawn(&exe, "raw")?;
    /// let conn = child.connection()?; // talk to the child over this
    /// drop(conn);
    /// let status = child.finish()?; // EOF: the child exits
    /// assert!(status.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn(exe: &Path, scenario: &str) -> io::Result<ChildProcess> {
        let mut cmd = Command::new(exe);
        cmd.arg(CHILD_FLAG)
            .arg(scenario)
            .arg(FD_FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        // Appends the number of the child's end (`--fd N`), and closes our copy of it once the
        // child is spawned: as long as it were open here, the child would not see EOF when
        // `conn` closes.
        let (mut child, conn) =
            multiprocess_thread_map::spawn_process_with(&mut cmd, |fd| fd.to_string())?;
        let ask = child.stdin.take();
        let answers = child.stdout.take().map(BufReader::new);
        let registration = mp_testkit::children::register(
            child.id(),
            format!("{} --child {scenario}", exe.display()),
        );
        Ok(ChildProcess {
            child: Some(child),
            conn,
            ask,
            answers,
            registration: Some(registration),
        })
    }

    /// The child's process id (for `/proc/PID/...`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child's [`multiprocess_event_loop::waiter::sleeps`] so far, asked over its stdin
    /// and answered on its stdout by the thread [`report_sleeps`] started in the child.
    ///
    /// # Errors
    ///
    /// If the child does not answer (it exited, or does not run [`report_sleeps`]: EOF) or
    /// answers something else than a number.
    pub fn sleeps(&mut self) -> io::Result<u64> {
        let (Some(ask), Some(answers)) = (self.ask.as_mut(), self.answers.as_mut()) else {
            return Err(io::Error::other("the child's pipes are gone"));
        };
        ask.write_all(b"?")?;
        ask.flush()?;
        let mut line = String::new();
        if answers.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the child does not report its sleeps",
            ));
        }
        line.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the child reported {line:?} for its sleeps"),
            )
        })
    }

    /// A new handle on the parent's end of the socket.
    ///
    /// Shutting the socket down (as [`finish`](Self::finish) does) affects every handle.
    pub fn connection(&self) -> io::Result<UnixStream> {
        self.conn.try_clone()
    }

    /// Shuts the socket down, then waits up to [`EXIT_GRACE`] for the child to exit.
    ///
    /// # Errors
    ///
    /// `TimedOut` if the child had to be killed; otherwise any error from waiting for it.
    pub fn finish(mut self) -> io::Result<ExitStatus> {
        self.shutdown_and_reap()
    }

    fn shutdown_and_reap(&mut self) -> io::Result<ExitStatus> {
        // Fails only if already shut down or never connected; either way EOF is on its way.
        let _ = self.conn.shutdown(Shutdown::Both);
        // EOF on its stdin ends the child's reporting thread.
        self.ask = None;
        let status = match self.child.take() {
            Some(child) => wait_bounded(child, EXIT_GRACE),
            None => Err(io::Error::other("child already reaped")),
        };
        // Reaped (or killed, and reaped as soon as SIGKILL lands): the registry must not keep
        // a pid that may be reused.
        self.registration = None;
        status
    }
}

/// In the child: starts a thread that answers each byte on stdin with one line on stdout,
/// this process's [`multiprocess_event_loop::waiter::sleeps`] so far; it ends on EOF. What
/// [`ChildProcess::sleeps`] reads.
///
/// # Errors
///
/// If the thread cannot be spawned.
pub fn report_sleeps() -> io::Result<()> {
    thread::Builder::new()
        .name("mpbench-report-sleeps".into())
        .spawn(|| {
            let mut stdin = io::stdin().lock();
            let mut stdout = io::stdout().lock();
            let mut byte = [0u8; 1];
            while matches!(stdin.read(&mut byte), Ok(1)) {
                let sleeps = multiprocess_event_loop::waiter::sleeps();
                if writeln!(stdout, "{sleeps}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return;
                }
            }
        })?;
    Ok(())
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(e) = self.shutdown_and_reap() {
                eprintln!("mpbench: child process: {e}");
            }
        }
    }
}

/// Waits for `child` to exit for at most `timeout`; kills it (`SIGKILL`) if it has not.
fn wait_bounded(mut child: Child, timeout: Duration) -> io::Result<ExitStatus> {
    let pid = child.id();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::Builder::new()
        .name("mpbench-reaper".into())
        .spawn(move || {
            // The receiver may have given up; nobody is left to tell.
            let _ = tx.send(child.wait());
        })?;
    match rx.recv_timeout(timeout) {
        Ok(status) => status,
        Err(_) => {
            let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
            // SAFETY: `kill` takes plain integers and touches no memory of ours. `pid` is still
            // our unreaped child (the reaper has not returned from `wait`), so the number cannot
            // have been reused by an unrelated process, short of the child being reaped in the
            // instant between the timeout and this call.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            // SIGKILL cannot be caught, so this wait is short; it is bounded all the same.
            let _ = rx.recv_timeout(timeout);
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("child {pid} did not exit within {timeout:?} of EOF; killed it"),
            ))
        }
    }
}

/// Takes ownership of the socket the parent passed as `--fd N`.
///
/// Checks that `fd` is an open socket, and marks it close-on-exec again so it does not leak
/// into processes the child may start.
///
/// # Errors
///
/// `InvalidInput` if `fd` is a standard stream; otherwise [`multiprocess_thread_map::take_fd`]'s
/// error: the OS error if it is not open, or an error saying it is not a socket, or that the
/// socket was already taken in this process.
///
/// # Safety
///
/// `fd` must be the descriptor inherited from the parent, and nothing else in this process may
/// own or use it: call this once, at start-up, before anything else could open or adopt that
/// number.
pub unsafe fn adopt_inherited_fd(fd: RawFd) -> io::Result<UnixStream> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is a standard stream, not the inherited socket"),
        ));
    }
    // SAFETY: this function's contract is `take_fd`'s: `fd` is the parent's descriptor and
    // nobody else in this process owns it. `take_fd` checks it is an open socket and marks it
    // close-on-exec.
    unsafe { multiprocess_thread_map::take_fd(fd) }
}
