//! A watchdog for tests: if the guarded section does not finish in time, it
//! prints which threads are stuck where and aborts the test process.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Aborts the process with a dump of every thread unless dropped (or
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
            eprintln!("WATCHDOG: `{label}` did not finish within {timeout:?}; threads:\n{threads}");
            std::process::abort();
        })
        .expect("spawn the watchdog thread")
    }

    /// Starts watching, with what to do if the time runs out: `on_fire` gets
    /// the dump of every thread ([`dump_threads`]) and must not return
    /// normally (it exits or aborts the process).
    pub fn start_with(
        timeout: Duration,
        on_fire: impl FnOnce(String) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (done, fired) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = fired.recv_timeout(timeout) {
                    on_fire(dump_threads());
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
    let mut out = String::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
            let state = read("stat")
                .split(") ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap_or("?")
                .to_string();
            let _ = writeln!(
                out,
                "  tid {} {:<16} state {} wchan {}",
                task.file_name().to_string_lossy(),
                read("comm").trim(),
                state,
                read("wchan").trim()
            );
        }
    }
    let _ = write!(
        out,
        "runtime waits:\n{}",
        multiprocess_event_loop::dump_waiters()
    );
    out
}
