//! Context switches of every thread of a process, read from `/proc` (Linux only).
//!
//! `/proc/PID/status` counts the switches of the process's *main thread* only; each thread has
//! its own `/proc/PID/task/TID/status`. So we sum `voluntary_ctxt_switches` and
//! `nonvoluntary_ctxt_switches` over `/proc/PID/task/*/status`. A thread that exits between two
//! readings takes its counts with it, so measure only while the threads of interest are alive.

use std::fs;
use std::io;
use std::path::Path;

/// Sums `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` in the text of a
/// `/proc/.../status` file; `None` if either line is missing or malformed.
///
/// # Examples
///
/// ```
/// let status = "Name:\tmpbench\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
/// assert_eq!(stress::ctxsw::parse_status(status), Some(15));
/// assert_eq!(stress::ctxsw::parse_status("Name:\tmpbench\n"), None);
/// ```
pub fn parse_status(text: &str) -> Option<u64> {
    let mut voluntary = None;
    let mut nonvoluntary = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "voluntary_ctxt_switches" => &mut voluntary,
            "nonvoluntary_ctxt_switches" => &mut nonvoluntary,
            _ => continue,
        };
        *slot = Some(value.trim().parse::<u64>().ok()?);
    }
    Some(voluntary? + nonvoluntary?)
}

/// Total context switches so far of every live thread of process `pid`.
///
/// # Errors
///
/// If `/proc/PID/task` cannot be read (no such process, or not Linux), or a status file has no
/// context-switch counts. A thread that exits while we read is skipped.
///
/// # Examples
///
/// ```
/// # if cfg!(target_os = "linux") {
/// let n = stress::ctxsw::process_switches(std::process::id())?;
/// println!("{n} context switches so far");
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn process_switches(pid: u32) -> io::Result<u64> {
    Ok(task_switches(pid)?.iter().map(|&(_, n)| n).sum())
}

/// Context switches so far of each live thread of process `pid`, as `(thread id, switches)`.
///
/// # Errors
///
/// As [`process_switches`].
pub fn task_switches(pid: u32) -> io::Result<Vec<(u32, u64)>> {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let mut counts = Vec::new();
    for entry in fs::read_dir(&tasks)? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let status = entry.path().join("status");
        let text = match fs::read_to_string(&status) {
            Ok(text) => text,
            // The thread exited after read_dir listed it.
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let n = parse_status(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no context-switch counts in {}", status.display()),
            )
        })?;
        counts.push((tid, n));
    }
    Ok(counts)
}

/// Sum of [`process_switches`] over several processes.
///
/// # Errors
///
/// The first error of [`process_switches`].
pub fn switches(pids: &[u32]) -> io::Result<u64> {
    pids.iter().map(|&pid| process_switches(pid)).sum()
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const STATUS: &str = "Name:\tmpbench\n\
        State:\tS (sleeping)\n\
        Tgid:\t4242\n\
        Pid:\t4243\n\
        Threads:\t3\n\
        voluntary_ctxt_switches:\t1021\n\
        nonvoluntary_ctxt_switches:\t17\n";

    #[test]
    fn parses_real_status_layout() {
        assert_eq!(parse_status(STATUS), Some(1038));
    }

    #[test]
    fn missing_or_malformed_counts_are_none() {
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("voluntary_ctxt_switches:\t5\n"), None);
        assert_eq!(parse_status("nonvoluntary_ctxt_switches:\t5\n"), None);
        assert_eq!(
            parse_status("voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t5\n"),
            None
        );
    }

    #[test]
    fn similar_keys_are_not_confused() {
        // `nonvoluntary_...` ends with `voluntary_...`: matching must be on the whole key.
        let text = "nonvoluntary_ctxt_switches: 2\nvoluntary_ctxt_switches: 40\n";
        assert_eq!(parse_status(text), Some(42));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn counts_threads_other_than_the_main_one() {
        // A helper thread blocks and times out 20 times: at least 20 voluntary switches, all on
        // a thread that is not the main thread, so only the walk over tasks can see them. We
        // compare that thread's own entry: other tests' threads may come and go meanwhile. The
        // helper stays alive (waiting for `release`) until after the second reading.
        const TIMEOUTS: u64 = 20;
        let (idle_tx, idle_rx) = crossbeam_channel::bounded::<()>(0);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
        let (tid_tx, tid_rx) = crossbeam_channel::bounded::<u32>(1);
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
        let pid = std::process::id();
        let helper = std::thread::spawn(move || {
            // SAFETY: gettid has no arguments and cannot fail.
            let tid = u32::try_from(unsafe { libc::gettid() }).expect("positive tid");
            tid_tx.send(tid).expect("test thread is waiting");
            let _ = go_rx.recv_timeout(Duration::from_secs(60));
            // `idle_tx` lives in here so the channel stays connected and each wait times out.
            for _ in 0..TIMEOUTS {
                let _ = idle_rx.recv_timeout(Duration::from_millis(1));
            }
            done_tx.send(()).expect("test thread is waiting");
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
            drop(idle_tx);
        });
        let tid = tid_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("helper started");
        assert_ne!(tid, pid, "the helper is not the main thread");
        let of_helper = |counts: Vec<(u32, u64)>| {
            counts
                .into_iter()
                .find(|&(t, _)| t == tid)
                .map(|(_, n)| n)
                .expect("the helper thread is listed under /proc/PID/task")
        };
        let before = of_helper(task_switches(pid).expect("read /proc"));
        go_tx.send(()).expect("helper is waiting");
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("helper finished its timeouts");
        let after = of_helper(task_switches(pid).expect("read /proc"));
        // The helper is still alive, so the process total includes its (monotonic) count.
        assert!(process_switches(pid).expect("read /proc") >= after);
        release_tx.send(()).expect("helper is waiting");
        helper.join().expect("helper thread");
        assert!(
            after - before >= TIMEOUTS,
            "expected at least {TIMEOUTS} switches, got {}",
            after - before
        );
    }

    #[test]
    fn missing_process_is_an_error() {
        // Pid numbers above pid_max (at most 2^22 on Linux) never exist.
        assert!(process_switches(u32::MAX).is_err());
    }
}
