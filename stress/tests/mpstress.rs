//! `mpstress` end to end: a short run with kills must finish with every
//! answer checked and nothing misrouted, lost or leaked.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn short_run_with_kills_checks_every_answer() {
    let child = Command::new(env!("CARGO_BIN_EXE_mpstress"))
        .args(["--duration", "4s", "--kill", "--threads", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mpstress");
    let pid = child.id();
    // Watchdog: kill the run if it outlives its duration by far.
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(120)).is_err() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().expect("mpstress output");
    let _ = done.send(());
    let _ = watchdog.join();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success(),
        "mpstress failed ({}): {line}",
        output.status
    );
    for field in [
        "\"hangs\": 0,",
        "\"lost\": 0,",
        "\"misrouted\": 0,",
        "\"leaked_threads\": 0,",
    ] {
        assert!(line.contains(field), "missing {field} in {line}");
    }
    // A run of 4 s with --kill: the killer strikes every 0.3 to 1.5 s, and four threads
    // making call trees call back into this process at every level.
    for key in ["calls", "max_depth", "callbacks", "kills", "peak_rss_kib"] {
        let value = count(line, key);
        assert!(value > 0, "{key} is {value}: {line}");
    }
}

/// The value of the integer field `key` of the one-line JSON object `line`.
fn count(line: &str, key: &str) -> u64 {
    let prefix = format!("\"{key}\": ");
    let start = line
        .find(&prefix)
        .unwrap_or_else(|| panic!("missing {key} in {line}"))
        + prefix.len();
    let digits = &line[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{key} is not a count ({e}): {line}"))
}
