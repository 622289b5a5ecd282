//! `multiprocess::spawn` that cannot complete leaves no process behind: a
//! child whose handshake fails is killed and reaped, and on an event-loop
//! thread nothing is started at all.

use std::process::Command;
use std::time::Duration;

use mp_testkit::watchdog::guard;
use multiprocess::Error;
use multiprocess_proxy_tests::wallet::Init;

const BOUND: Duration = Duration::from_secs(60);

/// The processes whose parent is this one, each with its state letter
/// (`Z` for one that exited and is not reaped), from `/proc/PID/stat`.
fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`: COMM may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid)
            && ppid == me
        {
            found.push((pid, state));
        }
    }
    found
}

#[test]
fn a_child_that_fails_its_handshake_is_reaped_and_spawning_on_a_loop_thread_starts_nothing() {
    // One test: the count of this process's children is the assertion, and
    // tests in one binary run at once.
    guard("spawn failures", BOUND, || {
        assert_eq!(children(), [], "children before the test");
        // The scan sees a child of ours (or every check below is empty).
        let mut control = Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn sleep");
        let listed = children();
        assert!(
            listed.iter().any(|(pid, _)| *pid == control.id()),
            "sleep {} not among {listed:?}",
            control.id()
        );
        control.kill().expect("kill sleep");
        control.wait().expect("reap sleep");
        assert_eq!(children(), [], "the control is reaped");

        // A child that exits at once, without serving: the handshake fails.
        let mut exits = Command::new("sh");
        exits.args(["-c", "exit 3"]);
        match multiprocess::spawn::<dyn Init>(&mut exits) {
            Err(e) => assert!(e.is_disconnected(), "{e:?}"),
            Ok(_) => panic!("a child that serves nothing passed the handshake"),
        }
        assert_eq!(children(), [], "the failed child is reaped");

        // On a loop thread, nothing starts: the error is spawn's own (were
        // the child started, connecting would refuse instead, and the child
        // would be killed and reaped).
        let on_loop = multiprocess::default_loop()
            .expect("the default loop")
            .sync(|| {
                let mut sleeps = Command::new("sleep");
                sleeps.arg("1000");
                multiprocess::spawn::<dyn Init>(&mut sleeps).map(|_| ())
            })
            .expect("the loop runs the closure");
        match on_loop {
            Err(Error::WrongThread(message)) => {
                assert!(message.contains("spawn from"), "{message}")
            }
            other => panic!("expected WrongThread, got {other:?}"),
        }
        assert_eq!(children(), [], "nothing started on the loop thread");
    });
}
