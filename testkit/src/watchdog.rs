//! A watchdog for tests: if the guarded section does not finish in time, it
//! prints which threads are stuck where, ours and those of the child
//! processes the test spawned ([`dump_all`]), and aborts the test process.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{child_waits, children};

/// Aborts the process with a dump of every thread, ours and our registered
/// children's ([`dump_all`]), unless dropped (or
/// [`finish`](Watchdog::finish)ed) within its timeout.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching: `label` names what is guarded.
    pub fn start(label: &str, timeout: Duration) -> Self {
        let label = label.to_string();
        Self::start_with(timeout, move |threads| {
            // Not `eprintln!`: the test harness captures that (in the threads
            // a test spawns too) and prints it only if the test returns,
            // which an aborted test does not.
            let _ = writeln!(
                std::io::stderr().lock(),
                "WATCHDOG: `{label}` did not finish within {timeout:?}; threads:\n{threads}"
            );
            std::process::abort();
        })
        .expect("spawn the watchdog thread")
    }

    /// Starts watching, with what to do if the time runs out: `on_fire` gets
    /// the dump of every thread, ours and our children's ([`dump_all`]), and
    /// must not return normally (it exits or aborts the process).
    pub fn start_with(
        timeout: Duration,
        on_fire: impl FnOnce(String) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (done, fired) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = fired.recv_timeout(timeout) {
                    on_fire(dump_all());
                    std::process::abort();
                }
            })?;
        Ok(Self {
            done: Some(done),
            thread: Some(thread),
        })
    }

    /// Stops watching.
    pub fn finish(self) {}
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `f` under a watchdog.
pub fn guard<T>(label: &str, timeout: Duration, f: impl FnOnce() -> T) -> T {
    let watchdog = Watchdog::start(label, timeout);
    let value = f();
    drop(watchdog);
    value
}

/// Every thread of this process: name, state and kernel wait channel, then
/// what the runtime's waiting threads wait for.
pub fn dump_threads() -> String {
    let mut out = threads_in(Path::new("/proc/self/task"));
    let _ = write!(
        out,
        "runtime waits:\n{}",
        multiprocess_event_loop::dump_waiters()
    );
    out
}

/// Every thread of process `pid` (one of our children, say), as
/// [`dump_threads`] prints ours: name, state and kernel wait channel; empty
/// if there is no such process.
pub fn dump_process_threads(pid: u32) -> String {
    threads_in(&Path::new("/proc").join(pid.to_string()).join("task"))
}

/// How long [`dump_all`] waits for the children it asked for their waits.
const CHILD_ANSWER_LIMIT: Duration = Duration::from_secs(2);

/// What the watchdog prints: [`dump_threads`], then, for every child process
/// registered in [`children`] that still exists, its
/// threads, and its runtime waits if it answers
/// [`child_waits`] (as `mp-child` does).
pub fn dump_all() -> String {
    // One dump at a time (tests may run several at once): a child answers
    // into one file, and a second question before the first answer is read
    // would be answered once, to whichever asker reads first.
    static DUMPING: parking_lot::Mutex<()> = parking_lot::const_mutex(());
    let _one_at_a_time = DUMPING.lock();
    let mut out = dump_threads();
    let live = children::live();
    // Ask them all first, so that they answer while we read /proc.
    let asked: Vec<bool> = live
        .iter()
        .map(|child| child_waits::ask(child.pid))
        .collect();
    let deadline = Instant::now() + CHILD_ANSWER_LIMIT;
    for (child, asked) in live.iter().zip(asked) {
        let _ = write!(
            out,
            "child process {} ({}), threads:\n{}",
            child.pid,
            child.label,
            dump_process_threads(child.pid)
        );
        if asked {
            match child_waits::collect(child.pid, deadline) {
                Some(waits) => {
                    let _ = write!(out, "child process {} runtime waits:\n{waits}", child.pid);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "child process {} runtime waits: no answer within {CHILD_ANSWER_LIMIT:?}",
                        child.pid
                    );
                }
            }
        }
    }
    out
}

/// One line per thread of the process whose `/proc/PID/task` is `tasks`.
fn threads_in(tasks: &Path) -> String {
    let mut out = String::new();
    let Ok(tasks) = std::fs::read_dir(tasks) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        // `TID (COMM) STATE ...`: the last `)` ends COMM, which may hold spaces.
        let stat = read("stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "  tid {} {:<16} state {} wchan {}",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            state,
            read("wchan").trim()
        );
    }
    out
}
