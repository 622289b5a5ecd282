//! The foundation's scenarios, each run twice: against a child process
//! (`mp-child`) and against a server on another loop in this process.
//! Every test runs under a watchdog that aborts with a thread dump on a hang.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mp_testkit::peer::Peer;
use mp_testkit::watchdog::guard;
use multiprocess_thread_map::Error;

const LIMIT: Duration = Duration::from_secs(60);

fn child_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mp-child"))
}

fn child() -> Peer {
    Peer::child(child_exe()).expect("spawn and connect to mp-child")
}

fn in_process() -> Peer {
    Peer::in_process().expect("serve and connect in process")
}

/// (a) One application thread makes 1000 calls: all run on one server worker.
fn one_thread_one_worker(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let first = probe.whoami().expect("whoami");
    for i in 0..1000 {
        assert_eq!(probe.add(i, 1).expect("add"), i + 1);
        if i % 100 == 0 {
            assert_eq!(
                probe.whoami().expect("whoami"),
                first,
                "call {i} ran on another thread"
            );
        }
    }
    assert_eq!(probe.whoami().expect("whoami"), first);
    assert!(
        first.name.contains("(from "),
        "worker name tells the client thread: {}",
        first.name
    );
}

#[test]
fn one_thread_one_worker_child() {
    guard("one_thread_one_worker_child", LIMIT, || {
        one_thread_one_worker(child())
    });
}

#[test]
fn one_thread_one_worker_in_process() {
    guard("one_thread_one_worker_in_process", LIMIT, || {
        one_thread_one_worker(in_process())
    });
}

/// (b) Four application threads get four distinct workers, and a call that
/// blocks on the server does not delay the other three.
fn four_threads_four_workers(peer: Peer) {
    let probe = Arc::new(peer.init.make_probe().expect("makeProbe"));
    let gate = "four-threads";
    let blocked = {
        let probe = probe.clone();
        std::thread::Builder::new()
            .name("blocked-app".into())
            .spawn(move || {
                let me = probe.whoami().expect("whoami");
                probe.block(gate).expect("block returns once opened");
                me
            })
            .expect("spawn")
    };
    probe
        .wait_blocked(gate, 1)
        .expect("the call is blocked on the server");
    let others: Vec<_> = (0..3)
        .map(|i| {
            let probe = probe.clone();
            std::thread::Builder::new()
                .name(format!("free-app-{i}"))
                .spawn(move || {
                    let me = probe.whoami().expect("whoami");
                    for n in 0..50 {
                        assert_eq!(probe.add(n, i).expect("add"), n + i);
                    }
                    assert_eq!(probe.whoami().expect("whoami"), me);
                    me
                })
                .expect("spawn")
        })
        .collect();
    // The three free threads finish while the fourth is still blocked.
    let mut workers = BTreeSet::new();
    for thread in others {
        workers.insert(thread.join().expect("free thread").tid);
    }
    assert!(
        !blocked.is_finished(),
        "the blocked call returned before its gate opened"
    );
    probe.open(gate).expect("open");
    workers.insert(blocked.join().expect("blocked thread").tid);
    workers.insert(probe.whoami().expect("whoami").tid);
    assert_eq!(
        workers.len(),
        5,
        "five application threads, five distinct workers"
    );
}

#[test]
fn four_threads_four_workers_child() {
    guard("four_threads_four_workers_child", LIMIT, || {
        four_threads_four_workers(child())
    });
}

#[test]
fn four_threads_four_workers_in_process() {
    guard("four_threads_four_workers_in_process", LIMIT, || {
        four_threads_four_workers(in_process())
    });
}

/// (c) An application thread that exits frees its server worker.
fn exited_thread_frees_worker(peer: Peer) {
    let probe = Arc::new(peer.init.make_probe().expect("makeProbe"));
    let (workers_before, threads_before) = probe.stats().expect("stats");
    let during = {
        let probe = probe.clone();
        std::thread::spawn(move || {
            probe.add(1, 2).expect("add");
            probe.stats().expect("stats")
        })
        .join()
        .expect("thread")
    };
    assert_eq!(during.0, workers_before + 1, "the new thread got a worker");
    // The exited thread's release reaches the server before this call does.
    let (workers_after, threads_after) = probe.stats().expect("stats");
    assert_eq!(workers_after, workers_before, "the worker was freed");
    assert_eq!(threads_after, threads_before, "and its OS thread joined");
}

#[test]
fn exited_thread_frees_worker_child() {
    guard("exited_thread_frees_worker_child", LIMIT, || {
        exited_thread_frees_worker(child())
    });
}

#[test]
fn exited_thread_frees_worker_in_process() {
    guard("exited_thread_frees_worker_in_process", LIMIT, || {
        exited_thread_frees_worker(in_process())
    });
}

/// (e) A server method that panics (or fails) is a remote error for the
/// caller; the worker survives and the next call works on it.
fn failing_method(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let worker = probe.whoami().expect("whoami");
    match probe.fail("deliberate panic", true) {
        Err(Error::Remote(message)) => assert!(message.contains("deliberate panic"), "{message}"),
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(probe.whoami().expect("whoami after a panic"), worker);
    match probe.fail("deliberate error", false) {
        Err(Error::Remote(message)) => assert!(message.contains("deliberate error"), "{message}"),
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(probe.add(2, 3).expect("add after an error"), 5);
    assert_eq!(probe.whoami().expect("whoami"), worker);
}

#[test]
fn failing_method_child() {
    guard("failing_method_child", LIMIT, || failing_method(child()));
}

#[test]
fn failing_method_in_process() {
    guard("failing_method_in_process", LIMIT, || {
        failing_method(in_process())
    });
}

/// Large payloads cross intact.
#[test]
fn echo_large_payload() {
    guard("echo_large_payload", LIMIT, || {
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        let data: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(probe.echo(data.clone()).expect("echo"), data);
    });
}
