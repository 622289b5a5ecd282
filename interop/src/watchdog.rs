//! A watchdog for the interop programs: if the guarded run does not finish
//! in time, it prints what every thread waits for, kills the child
//! processes it was told about, and exits with status 3, so a hung peer (C++
//! or Rust) never hangs the run. The test kit's watchdog, with that as what
//! it does when it fires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The exit status of a process whose watchdog fired.
pub const WATCHDOG_EXIT: i32 = 3;

/// Kills the registered children and exits unless dropped within its
/// timeout.
pub struct Watchdog {
    /// Stops watching when dropped.
    _watching: mp_testkit::watchdog::Watchdog,
    children: Arc<Mutex<Vec<u32>>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    /// Starts watching `label` for `timeout`.
    pub fn start(label: &str, timeout: Duration) -> std::io::Result<Self> {
        let children: Arc<Mutex<Vec<u32>>> = Arc::default();
        let label = label.to_string();
        let to_kill = children.clone();
        let watching = mp_testkit::watchdog::Watchdog::start_with(timeout, move |threads| {
            let pids = to_kill.lock().unwrap_or_else(|p| p.into_inner()).clone();
            crate::say_err(&format!(
                "{label}: WATCHDOG: not done after {timeout:?}; killing child processes {pids:?} and exiting with status {WATCHDOG_EXIT}. Threads:\n{threads}"
            ));
            for pid in pids {
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            std::process::exit(WATCHDOG_EXIT);
        })?;
        Ok(Self {
            _watching: watching,
            children,
        })
    }

    /// Kills child `pid` too if the watchdog fires.
    pub fn watch_child(&self, pid: u32) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
    }

    /// Forgets child `pid` (it was reaped: its pid may be reused).
    pub fn forget_child(&self, pid: u32) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != pid);
    }
}
