//! The seeds' architecture, runnable: Bitcoin Core's node / wallet / GUI
//! split on generated proxies (`schema/demo.capnp`).
//!
//! - `node` listens on `<datadir>/node.sock` (`-ipcbind=unix`), spawns
//!   `wallet` on a socketpair (`-ipcfd`), mines a block every
//!   `-blocktime` milliseconds and tells every subscriber;
//! - `wallet` subscribes to the node's blocks with a closure (paid
//!   [`REWARD`] per block) and answers balance queries;
//! - `gui`, started on its own, connects to `node.sock` and shows the
//!   node's height and the wallet's balance (through the node);
//! - `demo` runs the whole set: `cargo run -p multiprocess-demo --bin demo`.
//!
//! Every program prints one line per event on stdout, prefixed with its
//! name (`node: listening ...`); the wallet shares the node's stdout.
//!
//! **Exit codes.** When its peer goes away (the node was stopped, or
//! killed), `wallet` and `gui` print `<name>: disconnected from the node
//! (<reason>); exiting` and exit with code 0: losing the node is how their
//! life ends, not a failure of theirs. A `gui` that cannot connect exits
//! with 1, and with 2 for an address that does not parse; `node` prints
//! `node: error: ...` and exits with 1 if it cannot start (a bad argument,
//! a socket in use, a wallet that does not start).
//!
//! `load-server` and `load-client` (`schema/load.capnp`) are the processes
//! of the many-clients test (`tests/many_clients.rs`).

multiprocess::include_proxies!();

use std::io::Write;
use std::path::{Path, PathBuf};

/// What the wallet is paid per block.
pub const REWARD: i64 = 50;

/// Prints one line on stdout, flushed at once (whoever reads it may be
/// waiting for it).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The value of `-name=value` in `args`, if given.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    let prefix = format!("-{name}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

/// The data directory of `-datadir=DIR`, or the demo's default,
/// `$TMPDIR/multiprocess-demo`.
pub fn datadir(args: &[String]) -> PathBuf {
    flag(args, "datadir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("multiprocess-demo"))
}

/// The executable `name` beside the running one (cargo builds the demo's
/// binaries into one directory).
pub fn sibling_exe(name: &str) -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    Ok(dir.join(name))
}

/// A thread name without the `(from ...)` that says whom a worker serves.
pub fn short_thread_name(name: &str) -> &str {
    name.split_once(" (from ").map_or(name, |(short, _)| short)
}

/// What `/proc` says about a process: its threads, open file descriptors
/// and resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    /// Threads (`Threads:` in `/proc/PID/status`).
    pub threads: usize,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: usize,
    /// Resident set size in KiB (`VmRSS:`).
    pub rss_kib: u64,
}

impl ProcessStats {
    /// Reads the figures of process `pid` (`None`: this process).
    pub fn read(pid: Option<u32>) -> std::io::Result<Self> {
        let dir = match pid {
            Some(pid) => PathBuf::from(format!("/proc/{pid}")),
            None => PathBuf::from("/proc/self"),
        };
        let status = std::fs::read_to_string(dir.join("status"))?;
        let field = |name: &str| -> std::io::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("no {name} in {}", dir.display())))
        };
        let threads = field("Threads:")? as usize;
        let rss_kib = field("VmRSS:")?;
        let mut fds = std::fs::read_dir(dir.join("fd"))?.count();
        if pid.is_none() {
            // The directory being read is open too.
            fds = fds.saturating_sub(1);
        }
        Ok(Self {
            threads,
            fds,
            rss_kib,
        })
    }
}

/// The names of the threads of process `pid` (`/proc/PID/task/*/comm`),
/// sorted: what to print when a thread count is off.
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect();
    names.sort();
    names
}

/// The threads of `after` that `before` did not have (names compared as a
/// multiset), but for the loop's cleanup thread (`mp-cleanup`), which the
/// runtime starts the first time it needs it and keeps for the loop's
/// life: one more of those is no leak.
pub fn threads_beyond(before: &[String], after: &[String]) -> Vec<String> {
    let mut left = before.to_vec();
    let mut beyond = Vec::new();
    for name in after {
        match left.iter().position(|n| n == name) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => beyond.push(name.clone()),
        }
    }
    if let Some(i) = beyond.iter().position(|n| n == "mp-cleanup")
        && !before.iter().any(|n| n == "mp-cleanup")
    {
        beyond.swap_remove(i);
    }
    beyond
}

impl std::fmt::Display for ProcessStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "threads={} fds={} rss_kib={}",
            self.threads, self.fds, self.rss_kib
        )
    }
}
