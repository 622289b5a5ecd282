//! Child processes that a test drives a line at a time ([`LineProcess`]):
//! stdin and stdout piped, each registered with the watchdog's
//! [`children`](crate::children) so a hang dumps their threads too, killed
//! if a test drops them still running; and a directory of a test's own for
//! their files ([`TempDir`]).
//!
//! The reads here block: call them under [`guard`](crate::watchdog::guard),
//! whose bound turns a child that never prints into a failure.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::children::Registration;

/// A child process with its stdin and stdout piped: commands go in a line
/// at a time, answers come out a line at a time. Dropped while it still
/// runs (a test that failed half-way), it is killed and reaped.
pub struct LineProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    name: String,
    _registration: Registration,
}

impl LineProcess {
    /// Starts `exe` with `args`, registered under the name `exe`.
    pub fn start<S: AsRef<OsStr>>(exe: &str, args: &[S]) -> Self {
        let mut command = Command::new(exe);
        command.args(args);
        Self::spawn(command, exe)
    }

    /// Starts `command` (its stdin and stdout piped here; anything else
    /// set on it, its environment or stderr, is kept), registered with the
    /// watchdog as `name`, which also names it in the panics here.
    pub fn spawn(mut command: Command, name: &str) -> Self {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let registration = crate::children::register(child.id(), name);
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            child,
            stdin,
            stdout,
            name: name.to_string(),
            _registration: registration,
        }
    }

    /// The process itself: to kill it, wait for it, or take its stderr if
    /// [`spawn`](Self::spawn) was given a piped one.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints, without its line ending; `None` at the end
    /// of its output. Blocks: call it under the test's watchdog.
    pub fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read {}'s output: {e}", self.name));
        (n > 0).then(|| line.trim_end().to_string())
    }

    /// The next line it prints, as [`next_line`](Self::next_line); panics
    /// if its output ended instead.
    pub fn line(&mut self) -> String {
        self.next_line()
            .unwrap_or_else(|| panic!("{}'s output ended", self.name))
    }

    /// Reads lines until one starts with `prefix` and returns the rest of
    /// it; panics, with the lines skipped, if the output ends first.
    pub fn until(&mut self, prefix: &str) -> String {
        let mut seen = Vec::new();
        loop {
            let Some(line) = self.next_line() else {
                panic!("output ended with no line {prefix:?}; it printed {seen:#?}")
            };
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
            seen.push(line);
        }
    }

    /// Writes `command` and a newline to its stdin, and flushes.
    pub fn send(&mut self, command: &str) {
        let name = &self.name;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").unwrap_or_else(|e| panic!("write to {name}: {e}"));
        stdin.flush().expect("flush");
    }

    /// Closes its stdin and waits for it to exit; panics unless it exited
    /// with success.
    pub fn finish(mut self) {
        self.stdin = None;
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name));
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        // A test that failed half-way leaves nothing running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A directory of one test's own under the system's temporary directory,
/// created empty (mode 0755) and removed with everything in it when
/// dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/<prefix>-<our pid>-<label>-<n>`, with `n` counting the
    /// directories this process made: tests that run at once stay apart.
    pub fn new(prefix: &str, label: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create the test's directory");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test's directory");
        Self(path)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
