//! `idle`: what a connected pair of processes costs while nobody calls.
//!
//! The child serves `call`; the parent connects, makes [`WARMUP_CALLS`] calls so that every
//! thread a call needs (both event loops, the child's worker, the parent's Waiter) exists and
//! has spun and gone to sleep at least once, then makes no call for the whole window. The CPU
//! time of both processes over the window, as a share of one CPU, must stay near zero: a
//! runtime that spins, polls or ticks while idle shows up here. The spinning of `call` is paid
//! only while calls come; a wallet that idles for hours must not pay for it.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::child::ChildProcess;
use crate::cpu;
use crate::run::{json_number, json_string};
use crate::scenarios::{Scenario, call::ContextCall};

/// The name on the command line and in the JSON line.
pub const NAME: &str = "idle";

/// How long the pair idles when `--idle-seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 10;

/// Calls made before the idle window, to set up and wake every thread once.
pub const WARMUP_CALLS: usize = 100;

/// What the `idle` check measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Idle {
    /// The idle window, as measured.
    pub wall: Duration,
    /// User plus system CPU time of both processes over the window; `None` if `/proc` could
    /// not be read.
    pub cpu: Option<Duration>,
}

impl Idle {
    /// CPU time over wall time, in percent of one CPU.
    pub fn cpu_percent(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        self.cpu
            .filter(|_| wall > 0.0)
            .map(|cpu| cpu.as_secs_f64() / wall * 100.0)
    }

    /// One JSON object, on one line, without a newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use stress::run::idle::Idle;
    ///
    /// let idle = Idle { wall: Duration::from_secs(10), cpu: Some(Duration::from_millis(25)) };
    /// assert_eq!(
    ///     idle.to_json(),
    ///     r#"{"scenario": "idle", "seconds": 10.000, "cpu_percent": 0.250}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        format!(
            "{{\"scenario\": {}, \"seconds\": {}, \"cpu_percent\": {}}}",
            json_string(NAME),
            json_number(Some(self.wall.as_secs_f64()), 3),
            json_number(self.cpu_percent(), 3),
        )
    }
}

/// Starts a `call` child as `exe --child call --fd N`, connects, warms up, then measures both
/// processes' CPU time over `window` without a call.
///
/// # Errors
///
/// Spawning the child, setting up the client or a warm-up call failing; or the child not
/// exiting cleanly at the end.
pub fn run(exe: &Path, window: Duration) -> io::Result<Idle> {
    let mut scenario = ContextCall;
    let child = ChildProcess::spawn(exe, scenario.name())?;
    let mut client = scenario.client(child.connection()?)?;
    let mut discarded = Vec::with_capacity(WARMUP_CALLS);
    client.run(WARMUP_CALLS, &mut discarded)?;
    let pids = [std::process::id(), child.pid()];
    let before = cpu::cpu(&pids).ok();
    let start = Instant::now();
    std::thread::sleep(window);
    let wall = start.elapsed();
    let after = cpu::cpu(&pids).ok();
    drop(client);
    let status = child.finish()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the {NAME} child exited with {status}"
        )));
    }
    let cpu = match (before, after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok(Idle { wall, cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_one_cpu() {
        let idle = Idle {
            wall: Duration::from_secs(2),
            cpu: Some(Duration::from_millis(10)),
        };
        assert_eq!(idle.cpu_percent(), Some(0.5));
        let unknown = Idle { cpu: None, ..idle };
        assert_eq!(unknown.cpu_percent(), None);
        assert!(unknown.to_json().ends_with("\"cpu_percent\": null}"));
    }
}
