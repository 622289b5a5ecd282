//! The child's threads and memory, read from `/proc` (Linux only): what `scale` leaves behind.
//!
//! Threads are the entries of `/proc/PID/task`; memory is `VmRSS` (resident now) and `VmHWM`
//! (the resident peak) of `/proc/PID/status`. Writing `5` to `/proc/PID/clear_refs` resets the
//! peak to the current resident size, so the peak can be that of the measured calls alone; if
//! the kernel refuses, the peak is the process's lifetime peak, which is no smaller.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// The child's threads and resident memory before and after a scenario's measured calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    /// Threads of the child just before the measured calls.
    pub threads_before: usize,
    /// Threads of the child after them, once back to `threads_before` or after
    /// [`SETTLE_LIMIT`].
    pub threads_after: usize,
    /// Resident memory just before the measured calls, KiB.
    pub rss_before_kib: u64,
    /// Peak resident memory during the measured calls, KiB.
    pub rss_peak_kib: u64,
    /// Resident memory after them (when the threads are counted), KiB.
    pub rss_after_kib: u64,
}

/// How long to wait, after the warm-up and after the measured calls, for the child's thread
/// count to come back down: its workers are released asynchronously once the threads they
/// served have exited (a thousand take a good fraction of a second on a busy machine).
pub const SETTLE_LIMIT: Duration = Duration::from_secs(10);

impl Resources {
    /// The `SCENARIO-resources` JSON line, on one line, without a newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use stress::run::Resources;
    ///
    /// let r = Resources {
    ///     threads_before: 4,
    ///     threads_after: 4,
    ///     rss_before_kib: 5000,
    ///     rss_peak_kib: 40000,
    ///     rss_after_kib: 5200,
    /// };
    /// assert_eq!(
    ///     r.to_json("scale"),
    ///     r#"{"scenario": "scale-resources", "server_threads_before": 4, "server_threads_after": 4, "server_rss_before_kib": 5000, "server_rss_peak_kib": 40000, "server_rss_after_kib": 5200}"#
    /// );
    /// ```
    pub fn to_json(&self, scenario: &str) -> String {
        format!(
            "{{\"scenario\": {}, \"server_threads_before\": {}, \"server_threads_after\": {}, \"server_rss_before_kib\": {}, \"server_rss_peak_kib\": {}, \"server_rss_after_kib\": {}}}",
            super::json_string(&format!("{scenario}-resources")),
            self.threads_before,
            self.threads_after,
            self.rss_before_kib,
            self.rss_peak_kib,
            self.rss_after_kib,
        )
    }

    /// One line for people.
    pub fn describe(&self, scenario: &str) -> String {
        format!(
            "{scenario}: server threads {} before, {} after; server RSS {} KiB before, {} KiB peak, {} KiB after",
            self.threads_before,
            self.threads_after,
            self.rss_before_kib,
            self.rss_peak_kib,
            self.rss_after_kib
        )
    }
}

/// Resident memory of a process, KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the resident peak (since start, or since [`reset_peak`]).
    pub peak_kib: u64,
}

/// `VmRSS` and `VmHWM` from the text of a `/proc/PID/status` file; `None` if either is missing.
///
/// # Examples
///
/// ```
/// use stress::run::resources::{Memory, parse_memory};
///
/// let status = "Name:\tmpbench\nVmHWM:\t    9000 kB\nVmRSS:\t    8000 kB\nThreads:\t3\n";
/// assert_eq!(parse_memory(status), Some(Memory { rss_kib: 8000, peak_kib: 9000 }));
/// assert_eq!(parse_memory("Name:\tmpbench\n"), None);
/// ```
pub fn parse_memory(status: &str) -> Option<Memory> {
    let mut rss = None;
    let mut peak = None;
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "VmRSS" => &mut rss,
            "VmHWM" => &mut peak,
            _ => continue,
        };
        let kib = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        *slot = Some(kib);
    }
    Some(Memory {
        rss_kib: rss?,
        peak_kib: peak?,
    })
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    ["/proc", &pid.to_string(), file].iter().collect()
}

/// Resident memory of process `pid`.
///
/// # Errors
///
/// If `/proc/PID/status` cannot be read or has no memory lines.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let path = proc_path(pid, "status");
    parse_memory(&fs::read_to_string(&path)?).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no VmRSS/VmHWM in {}", path.display()),
        )
    })
}

/// Threads of process `pid`: the entries of `/proc/PID/task`.
///
/// # Errors
///
/// If `/proc/PID/task` cannot be read.
pub fn threads(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(proc_path(pid, "task"))?.count())
}

/// Resets the resident peak (`VmHWM`) of process `pid` to its current resident size.
///
/// # Errors
///
/// If the kernel refuses the write to `/proc/PID/clear_refs`.
pub fn reset_peak(pid: u32) -> io::Result<()> {
    fs::write(proc_path(pid, "clear_refs"), "5")
}

/// What is recorded before the measured calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Before {
    threads: usize,
    rss_kib: u64,
}

impl Before {
    /// Waits up to `limit` for the child to have no more than `baseline` threads (workers of a
    /// warm-up may still be on their way out), then resets its peak (best effort) and reads its
    /// threads and memory.
    ///
    /// The reset comes first, so the peak [`after`](Self::after) reads covers the moment
    /// `rss_before_kib` was read, and is never below it.
    pub(crate) fn take(pid: u32, baseline: usize, limit: Duration) -> io::Result<Before> {
        let threads = settle(pid, baseline, limit)?;
        // Without the reset the peak is the lifetime peak: still an upper bound.
        let _ = reset_peak(pid);
        let rss_kib = memory(pid)?.rss_kib;
        Ok(Before { threads, rss_kib })
    }

    /// Waits up to `limit` for the child to have no more threads than before, then reads
    /// its threads and memory.
    pub(crate) fn after(self, pid: u32, limit: Duration) -> io::Result<Resources> {
        let threads_after = settle(pid, self.threads, limit)?;
        let memory = memory(pid)?;
        Ok(Resources {
            threads_before: self.threads,
            threads_after,
            rss_before_kib: self.rss_kib,
            rss_peak_kib: memory.peak_kib.max(memory.rss_kib),
            rss_after_kib: memory.rss_kib,
        })
    }
}

/// Polls the threads of process `pid` until there are at most `count` or `limit` has passed;
/// returns the last count.
///
/// # Errors
///
/// If `/proc/PID/task` cannot be read.
pub fn settle(pid: u32, count: usize, limit: Duration) -> io::Result<usize> {
    let deadline = Instant::now() + limit;
    let mut now = threads(pid)?;
    while now > count && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
        now = threads(pid)?;
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_memory_lines_are_none() {
        assert_eq!(parse_memory("VmRSS:\t1 kB\n"), None);
        assert_eq!(parse_memory("VmRSS:\tx kB\nVmHWM:\t1 kB\n"), None);
        assert_eq!(parse_memory("VmRSS:\t1 MB\nVmHWM:\t1 kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let before = Before::take(pid, usize::MAX, Duration::ZERO).expect("read /proc");
        assert!(before.threads >= 1);
        assert!(before.rss_kib > 0);
        let r = before.after(pid, Duration::ZERO).expect("read /proc");
        assert_eq!(
            (r.threads_before, r.rss_before_kib),
            (before.threads, before.rss_kib)
        );
        // The peak runs from the reset, before `rss_before_kib` was read, to now.
        assert!(
            r.rss_peak_kib >= r.rss_before_kib,
            "peak {} KiB below the {} KiB at the start",
            r.rss_peak_kib,
            r.rss_before_kib
        );
        assert!(r.rss_after_kib > 0);
        assert!(r.threads_after >= 1);
    }
}
