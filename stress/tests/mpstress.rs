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
        "\"calls\": ",
        "\"max_depth\": ",
        "\"callbacks\": ",
        "\"kills\": ",
        "\"hangs\": 0,",
        "\"lost\": 0,",
        "\"misrouted\": 0,",
        "\"leaked_threads\": 0,",
        "\"peak_rss_kib\": ",
    ] {
        assert!(line.contains(field), "missing {field} in {line}");
    }
    assert!(
        !line.contains("\"calls\": 0,"),
        "no calls were made: {line}"
    );
}
