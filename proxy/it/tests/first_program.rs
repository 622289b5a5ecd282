//! The README's first program is the one in `proxy/it/src/bin/first-program.rs`,
//! and it runs: its call runs in the child it spawns, on a worker dedicated
//! to the calling thread.

use std::process::{Command, Stdio};
use std::sync::mpsc; // sync-facade: allow (test plumbing, not runtime code)
use std::time::Duration;

#[test]
fn the_readme_shows_the_first_program() {
    let source = include_str!("../src/bin/first-program.rs");
    let readme = include_str!("../../../README.md");
    let body = &source[source
        .find("use multiprocess_proxy_tests")
        .expect("the program's first line")..];
    assert!(
        readme.contains(body),
        "README's first program differs from proxy/it/src/bin/first-program.rs"
    );
}

#[test]
fn the_first_program_calls_into_its_child() {
    let child = Command::new(env!("CARGO_BIN_EXE_first-program"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start first-program");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("wait for first-program"),
        Err(_) => {
            // SAFETY: plain kill(2) of the child we started; no memory involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("first-program did not finish within 60 s");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.trim();
    let rest = line
        .strip_prefix("2 + 3 = 5 on first-program-")
        .unwrap_or_else(|| panic!("unexpected output: {line}"));
    let server_pid = &rest[..rest.find('/').expect("pid/worker")];
    assert_ne!(server_pid, pid.to_string(), "runs in the child: {line}");
    assert!(
        rest.contains("/worker-") && rest.contains(&format!("(from first-program-{pid}/main-")),
        "on the main thread's worker: {line}"
    );
}
