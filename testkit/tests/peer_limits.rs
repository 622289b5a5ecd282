//! What a peer can make this process keep is bounded: thread names it
//! sends are cut and stored once, error messages it sends are cut, and the
//! process as a whole has a worker cap, beside each connection's, in which
//! workers stuck in user code after their connection closed still count
//! (and are counted, `orphaned_workers`).
//!
//! Every test runs against a child process (see `limits_common`), which must
//! survive and keep serving on another connection.

use std::time::Duration;

use mp_testkit::probe_capnp::probe;
use mp_testkit::watchdog::guard;
use multiprocess_event_loop::bounded::MAX_ERROR_MESSAGE;
use multiprocess_thread_map::MAX_THREAD_NAME;

mod limits_common;
use limits_common::LimitsChild;
use mp_testkit::wire::{
    Answer, GateMethod, Incoming, Raw, call_fn, gate_call, make_probe, make_thread,
    return_exception, whoami,
};

const LIMIT: Duration = Duration::from_secs(120);

/// The child process of this file's tests (see `limits_common`).
#[test]
#[ignore = "the child process of this file's tests, which start it"]
fn limits_child() {
    limits_common::child_main();
}

/// The full name of the worker `thread` (via a Probe made on it), as
/// `whoami` reports it.
fn worker_name(raw: &mut Raw, init: u32, thread: u32, question: u32) -> String {
    raw.send(&make_probe(question, init, thread));
    let probe = raw.results(question)[0];
    raw.send(&whoami(question + 1, probe, thread));
    raw.content(question + 1, |content| {
        content
            .get_as::<probe::whoami_results::Reader<'_>>()
            .and_then(|r| r.get_result())
            .and_then(|info| info.get_name())
            .map(|name| name.to_string().expect("a UTF-8 name"))
            .expect("whoami's result")
    })
}

/// Twenty `makeThread`s with 8 MiB names: each worker keeps the first 128
/// bytes of its name (cut on a character boundary), so the child's memory
/// hardly grows (it grew by 640 MiB when each worker kept four copies).
#[test]
fn long_thread_names_are_cut_and_kept_once() {
    guard("long_thread_names_are_cut_and_kept_once", LIMIT, || {
        let child = LimitsChild::spawn(&[]);
        let mut raw = child.raw();
        let (init, map) = raw.handshake();
        let before = child.rss_kib();
        let long = "n".repeat(8 << 20);
        let mut threads = Vec::new();
        for i in 0..20 {
            raw.send(&make_thread(10 + i, map, &long));
            threads.push(raw.results(10 + i)[0]);
        }
        let after = child.rss_kib();
        eprintln!(
            "20 workers named with 8 MiB each: RSS {before} KiB -> {after} KiB (+{} MiB)",
            after.saturating_sub(before) / 1024
        );
        assert!(
            after.saturating_sub(before) < 64 * 1024,
            "the child grew by {} MiB",
            after.saturating_sub(before) / 1024
        );
        let name = worker_name(&mut raw, init, threads[0], 100);
        assert!(
            name.ends_with(&format!("(from {})", "n".repeat(MAX_THREAD_NAME))),
            "{} bytes: {}",
            name.len(),
            &name[..name.len().min(300)]
        );
        // Cut on a character boundary: 100 two-byte characters keep 64.
        raw.send(&make_thread(200, map, &"é".repeat(100)));
        let accented = raw.results(200)[0];
        let name = worker_name(&mut raw, init, accented, 201);
        assert!(
            name.ends_with(&format!("(from {})", "é".repeat(MAX_THREAD_NAME / 2))),
            "{name}"
        );
        child.assert_serving("after long names");
        drop(raw);
        child.finish("long thread names");
    });
}

/// A peer answers a callback with a 1 MiB exception: the worker's call
/// fails with the reason cut to `MAX_ERROR_MESSAGE`, and so does the
/// method's error the peer gets back.
#[test]
fn a_peers_error_messages_are_cut() {
    guard("a_peers_error_messages_are_cut", LIMIT, || {
        let child = LimitsChild::spawn(&[]);
        let mut raw = child.raw();
        let (_init, _map, thread, probe) = raw.probe("erring");
        raw.send(&call_fn(10, probe, thread, 2, 1, 7));
        let callback = loop {
            match raw.next() {
                Some(Incoming::Call(question, _)) => break question,
                Some(Incoming::Return(id, answer)) => panic!("question {id}: {answer:?}"),
                Some(_) => {}
                None => panic!("the child closed the connection"),
            }
        };
        raw.send(&return_exception(callback, &"e".repeat(1 << 20)));
        let reason = match raw.answer(10) {
            Answer::Exception(reason) => reason,
            other => panic!("callFn succeeded: {other:?}"),
        };
        eprintln!("a 1 MiB reason came back as {} bytes", reason.len());
        assert!(
            reason.len() <= MAX_ERROR_MESSAGE + 128,
            "{} bytes came back",
            reason.len()
        );
        assert!(
            reason.contains("eeee") && reason.ends_with('…'),
            "{reason:.200}"
        );
        child.assert_serving("after a long error");
        drop(raw);
        child.finish("long error messages");
    });
}

/// With a process-wide cap of 4 workers, two connections share it: the
/// fifth `makeThread` is refused whichever connection asks, with a reason.
/// A worker left blocked in a method when its connection closes is
/// orphaned: `orphaned_workers` counts it, and it keeps its place in the
/// cap until its method returns.
#[test]
fn the_process_worker_cap_spans_connections_and_counts_orphans() {
    guard(
        "the_process_worker_cap_spans_connections_and_counts_orphans",
        LIMIT,
        || {
            let mut child = LimitsChild::spawn(&[("MP_LIMITS_MAX_WORKERS_TOTAL", "4".to_string())]);
            let mut a = child.raw();
            let (_init, _map, a1, a_probe) = a.probe("a1");
            a.send(&make_thread(4, _map, "a2"));
            let a2 = a.results(4)[0];
            let mut b = child.raw();
            let (b_init, b_map) = b.handshake();
            b.send(&make_thread(2, b_map, "b1"));
            let b1 = b.results(2)[0];
            b.send(&make_thread(3, b_map, "b2"));
            b.results(3);
            b.send(&make_thread(4, b_map, "b3"));
            let reason = b.exception(4);
            assert!(
                reason.contains("refused")
                    && reason.contains("this process already has 4 worker threads (at most 4)"),
                "{reason}"
            );
            assert_eq!(child.counts(), (4, 0));

            // a2 blocks in a method; `a` hangs up: a1 ends, a2 is orphaned.
            let gate = format!("orphan-{}", std::process::id());
            a.send(&gate_call(5, a_probe, a2, GateMethod::Block, &gate));
            a.send(&gate_call(6, a_probe, a1, GateMethod::WaitBlocked, &gate));
            assert!(matches!(a.answer(6), Answer::Results(_)));
            drop(a);
            let counts = child.wait_counts("a's connection closed", |c| c == (3, 1));
            eprintln!("after a's connection closed: (live, orphaned) = {counts:?}");
            // The orphan still counts: one more worker fits, not two.
            b.send(&make_thread(5, b_map, "b3"));
            b.results(5);
            b.send(&make_thread(6, b_map, "b4"));
            let reason = b.exception(6);
            assert!(reason.contains("at most 4"), "{reason}");

            // Once its method returns, the orphan ends and frees its place.
            b.send(&make_probe(7, b_init, b1));
            let b_probe = b.results(7)[0];
            b.send(&gate_call(8, b_probe, b1, GateMethod::Open, &gate));
            b.results(8);
            child.wait_counts("the orphan's method returned", |c| c == (3, 0));
            b.send(&make_thread(9, b_map, "b4"));
            b.results(9);

            drop(b);
            child.wait_counts("b's connection closed", |c| c == (0, 0));
            child.assert_serving("after the cap");
            child.finish("process worker cap");
        },
    );
}
