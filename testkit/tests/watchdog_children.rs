//! The watchdog's dump covers the child processes a test spawned: their
//! threads, read from `/proc`, and, for `mp-child`, what its threads wait
//! for; a child leaves the dump once it is reaped. Every test runs under a
//! watchdog.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mp_testkit::children;
use mp_testkit::watchdog::{Watchdog, dump_all, guard};

use common::child;

const LIMIT: Duration = Duration::from_secs(60);

/// A child that runs until its stdin closes: `cat`, reading a pipe of ours.
fn cat() -> Child {
    Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cat")
}

/// Closes `cat`'s stdin and reaps it (bounded by the test's watchdog).
fn end(mut cat: Child) {
    drop(cat.stdin.take());
    let status = cat.wait().expect("wait for cat");
    assert!(status.success(), "cat exited with {status}");
}

/// The lines of `dump` about child `pid` (its headers and what follows
/// each, up to another child's); `None` if the dump does not name it.
fn section(dump: &str, pid: u32) -> Option<String> {
    let ours = format!("child process {pid} ");
    let mut inside = false;
    let mut lines = Vec::new();
    for line in dump.lines() {
        if line.starts_with("child process ") {
            inside = line.starts_with(&ours);
        }
        if inside {
            lines.push(line);
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n") + "\n")
}

#[test]
fn a_registered_child_is_dumped_until_unregistered() {
    guard(
        "a_registered_child_is_dumped_until_unregistered",
        LIMIT,
        || {
            let cat = cat();
            let pid = cat.id();
            let registration = children::register(pid, "cat, for the test");
            let dump = dump_all();
            let ours = section(&dump, pid).unwrap_or_else(|| panic!("no child {pid} in:\n{dump}"));
            assert!(
                ours.starts_with(&format!(
                    "child process {pid} (cat, for the test), threads:\n"
                )),
                "{ours}"
            );
            // Its main thread: tid = pid, named after the program, in a read.
            assert!(
                ours.contains(&format!("  tid {pid} cat ")),
                "no thread of child {pid} in:\n{ours}"
            );
            // `cat` does not answer SIGUSR1 (it would die of it): not asked.
            assert!(!ours.contains("runtime waits"), "{ours}");
            drop(registration);
            let dump = dump_all();
            assert!(section(&dump, pid).is_none(), "{dump}");
            end(cat);
        },
    );
}

#[test]
fn a_reaped_child_is_not_dumped_even_if_still_registered() {
    guard(
        "a_reaped_child_is_not_dumped_even_if_still_registered",
        LIMIT,
        || {
            let cat = cat();
            let pid = cat.id();
            let registration = children::register(pid, "cat, reaped");
            end(cat);
            // Reaped, so the pid may name another process by now: listed, not dumped.
            assert!(children::registered().iter().any(|c| c.pid == pid));
            assert!(!children::live().iter().any(|c| c.pid == pid));
            let dump = dump_all();
            assert!(section(&dump, pid).is_none(), "{dump}");
            drop(registration);
        },
    );
}

#[test]
fn an_mp_child_is_dumped_with_what_its_threads_wait_for() {
    guard(
        "an_mp_child_is_dumped_with_what_its_threads_wait_for",
        LIMIT,
        || {
            let peer = child();
            let mp_testkit::peer::Server::Child(process) = &peer.server else {
                unreachable!("common::child spawns a child");
            };
            let pid = process.id();
            let probe = peer.init.make_probe().expect("makeProbe");
            let gate = format!("watchdog-children-{}", std::process::id());
            let dump = std::thread::scope(|s| {
                let blocked = s.spawn(|| probe.block(&gate));
                // From this thread, so on another worker of the child.
                probe.wait_blocked(&gate, 1).expect("waitBlocked");
                let dump = dump_all();
                // Released before any assertion, which would otherwise leave
                // the scope waiting for the blocked call.
                probe.open(&gate).expect("open");
                blocked.join().expect("the blocking thread").expect("block");
                dump
            });
            let ours = section(&dump, pid).unwrap_or_else(|| panic!("no child {pid} in:\n{dump}"));
            assert!(
                ours.starts_with(&format!("child process {pid} (mp-child), threads:\n")),
                "{ours}"
            );
            assert!(ours.contains(&format!("  tid {pid} mp-child ")), "{ours}");
            assert!(
                ours.contains(mp_testkit::child_waits::THREAD_NAME),
                "{ours}"
            );
            // Only the child runs requests: this comes from its answer.
            assert!(
                ours.contains(&format!("child process {pid} runtime waits:\n")),
                "{ours}"
            );
            assert!(ours.contains(": running a request"), "{ours}");
            drop(probe);
            drop(peer);
            let dump = dump_all();
            assert!(section(&dump, pid).is_none(), "{dump}");
        },
    );
}

#[test]
fn the_watchdog_fires_with_the_childrens_threads() {
    guard(
        "the_watchdog_fires_with_the_childrens_threads",
        LIMIT,
        || {
            let cat = cat();
            let pid = cat.id();
            let registration = children::register(pid, "cat, watched");
            let (fired_tx, fired) = mpsc::channel();
            let watchdog = Watchdog::start_with(Duration::from_millis(1), move |dump| {
                let _ = fired_tx.send(dump);
                // `on_fire` must not return (the watchdog would abort the test
                // process): unwind its thread instead, without a panic message.
                std::panic::resume_unwind(Box::new("fired, as the test wants"));
            })
            .expect("start the watchdog");
            let dump = fired.recv_timeout(LIMIT).expect("the watchdog fired");
            drop(watchdog);
            let ours = section(&dump, pid).unwrap_or_else(|| panic!("no child {pid} in:\n{dump}"));
            assert!(ours.contains(&format!("  tid {pid} cat ")), "{ours}");
            drop(registration);
            end(cat);
        },
    );
}
