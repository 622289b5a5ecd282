//! The rest of the protocol surface, as a buggy or hostile peer uses it:
//! `construct` twice, `Release` and `Finish` for ids never issued, a
//! question id reused while in flight, bootstrap asked for many times, and
//! method or interface numbers the interface does not have.
//!
//! Each time, the peer gets a clear error or its connection is closed (with
//! an `Abort` that says why); never a panic, a hang, or harm to the child's
//! other connections. Every test runs against a child process (see
//! `limits_common`), which must survive and keep serving on another
//! connection.

use std::time::Duration;

use mp_testkit::watchdog::guard;

mod limits_common;
use limits_common::LimitsChild;
use mp_testkit::wire::{
    self, Answer, GateMethod, Incoming, PROBE, Raw, add, bootstrap, call, call_saved_from_notifier,
    construct, finish, gate_call, make_thread, release, return_exception, save_fn,
};

const LIMIT: Duration = Duration::from_secs(120);

/// The child process of this file's tests (see `limits_common`).
#[test]
#[ignore = "the child process of this file's tests, which start it"]
fn limits_child() {
    limits_common::child_main();
}

/// Reads until the child closes `raw`, which it must do (with an `Abort`
/// whose reason contains `why`) rather than answer on.
fn closed_with(raw: Raw, what: &str, why: &str) {
    let abort = raw.expect_closed();
    eprintln!("{what}: closed, abort {abort:?}");
    let abort = abort.unwrap_or_else(|| panic!("{what}: closed without an Abort"));
    assert!(abort.contains(why), "{what}: {abort}");
}

/// `construct` a second time on the same connection succeeds, and what it
/// does is plain: the child keeps the newer of our ThreadMaps (the one it
/// would ask for workers on our side) and hands us another ThreadMap of its
/// own, for the same connection. Workers made through either are the
/// connection's, under its one cap, and the workers made before keep
/// serving. Refusing would buy nothing: the call replaces one reference
/// with another, and the ThreadMap it returns is a capability like any
/// other, which the peer holds until it releases it (as with bootstrap).
#[test]
fn construct_twice_replaces_our_thread_map_and_keeps_the_connection() {
    guard(
        "construct_twice_replaces_our_thread_map_and_keeps_the_connection",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[("MP_LIMITS_MAX_WORKERS", "3".to_string())]);
            let mut raw = child.raw();
            let (init, first_map, thread, probe) = raw.probe("first");
            raw.send(&construct(4, init, 7));
            let second_map = raw.results(4)[0];
            // The child now asks the newer map (our export 7), not the first
            // (export 0), for a thread of ours: its notifier thread, which
            // serves no call of ours, calls back a saved function (export 1).
            raw.send(&save_fn(20, probe, thread, 1));
            raw.results(20);
            raw.send(&call_saved_from_notifier(21, probe, thread));
            let (question, asked) = loop {
                match raw.next() {
                    Some(Incoming::Call(question, target)) => break (question, target),
                    Some(Incoming::Return(id, answer)) => panic!("question {id}: {answer:?}"),
                    Some(_) => {}
                    None => panic!("the child closed the connection"),
                }
            };
            assert_eq!(asked, Some(7), "the child asked another ThreadMap of ours");
            // Refused: the notifier's call fails, and so does the request;
            // and so does the call pipelined on it, sent to us as well.
            raw.send(&return_exception(question, "no thread for you"));
            let reason = loop {
                match raw.next() {
                    Some(Incoming::Call(question, _)) => {
                        raw.send(&return_exception(question, "no thread for you"))
                    }
                    Some(Incoming::Return(21, Answer::Exception(reason))) => break reason,
                    Some(Incoming::Return(id, answer)) => panic!("question {id}: {answer:?}"),
                    Some(_) => {}
                    None => panic!("the child closed the connection"),
                }
            };
            assert!(reason.contains("no thread for you"), "{reason}");
            raw.send(&make_thread(5, second_map, "second"));
            let second = raw.results(5)[0];
            raw.send(&add(6, probe, second, 1, 2));
            assert!(matches!(raw.answer(6), Answer::Results(_)));
            raw.send(&add(7, probe, thread, 3, 4));
            assert!(matches!(raw.answer(7), Answer::Results(_)));
            // One cap for the connection, whichever map asks: 3 workers.
            raw.send(&make_thread(8, first_map, "third"));
            raw.results(8);
            raw.send(&make_thread(9, second_map, "fourth"));
            let reason = raw.exception(9);
            assert!(reason.contains("at most 3"), "{reason}");
            child.assert_serving("after construct twice");
            drop(raw);
            child.finish("construct twice");
        },
    );
}

/// `Release` of an export id the child never issued, or of more references
/// than it issued, closes that connection with an `Abort` saying what was
/// wrong. A `Finish` of a question never asked is ignored, as capnp-rpc
/// does by design (it may cross a `Return` that needed none): the
/// connection goes on answering.
#[test]
fn release_and_finish_of_unknown_ids_close_that_connection_only() {
    guard(
        "release_and_finish_of_unknown_ids_close_that_connection_only",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let good = child.assert_serving("before");

            let mut raw = child.raw();
            raw.handshake();
            raw.send(&release(4321, 1));
            closed_with(raw, "Release of an unknown export", "invalid export");

            let mut raw = child.raw();
            let (init, _map) = raw.handshake();
            raw.send(&release(init, 1_000_000));
            closed_with(raw, "Release of too many references", "below zero");

            let mut raw = child.raw();
            let (_init, _map, thread, probe) = raw.probe("finisher");
            raw.send(&finish(4321));
            raw.send(&add(5, probe, thread, 1, 2));
            assert!(
                matches!(raw.answer(5), Answer::Results(_)),
                "after a Finish of an unknown question"
            );
            drop(raw);

            assert_eq!(good.add(1, 2).expect("the other connection"), 3);
            child.assert_serving("after unknown ids");
            drop(good);
            child.finish("unknown ids");
        },
    );
}

/// A question id reused while the first question is still in flight (its
/// call blocked in the child): the connection is closed, the blocked worker
/// is left to finish its method, and then ends.
#[test]
fn a_question_id_reused_in_flight_closes_that_connection_only() {
    guard(
        "a_question_id_reused_in_flight_closes_that_connection_only",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let good = child.assert_serving("before");
            let workers_before = good.stats().expect("stats").workers;
            let gate = format!("reused-{}", std::process::id());

            let mut raw = child.raw();
            let (_init, map, thread, probe) = raw.probe("reuser");
            raw.send(&make_thread(4, map, "watcher"));
            let watcher = raw.results(4)[0];
            raw.send(&gate_call(10, probe, thread, GateMethod::Block, &gate));
            raw.send(&gate_call(
                11,
                probe,
                watcher,
                GateMethod::WaitBlocked,
                &gate,
            ));
            assert!(matches!(raw.answer(11), Answer::Results(_)));
            // Question 10 is blocked in the child: ask it again.
            raw.send(&add(10, probe, watcher, 1, 1));
            closed_with(raw, "a question id reused in flight", "in-use question id");

            assert_eq!(good.add(2, 2).expect("the other connection"), 4);
            good.open(&gate).expect("open the gate");
            let deadline = std::time::Instant::now() + limits_common::IO_TIMEOUT;
            while good.stats().expect("stats").workers > workers_before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the closed connection's workers never ended"
                );
            }
            child.assert_serving("after a reused question");
            drop(good);
            child.finish("question reused");
        },
    );
}

/// Bootstrap asked for 10,000 times on one connection (each question
/// finished): every one is answered with the same `Init`, the child's
/// memory does not grow with the count, and `Init` still works.
#[test]
fn bootstrap_many_times_is_answered_and_costs_nothing_kept() {
    guard(
        "bootstrap_many_times_is_answered_and_costs_nothing_kept",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let mut raw = child.raw();
            let (init, _map) = raw.handshake();
            let before = child.rss_kib();
            const COUNT: u32 = 10_000;
            let mut batch = Vec::new();
            for q in 100..100 + COUNT {
                batch.extend(wire::bytes(&bootstrap(q)));
                batch.extend(wire::bytes(&finish(q)));
            }
            raw.write(&batch);
            let mut answered = 0;
            while answered < COUNT {
                match raw.next() {
                    Some(Incoming::Return(q, Answer::Results(caps))) if q >= 100 => {
                        assert_eq!(caps, [init], "bootstrap {q} answered another capability");
                        answered += 1;
                    }
                    Some(Incoming::Return(q, answer)) => panic!("question {q}: {answer:?}"),
                    Some(Incoming::Abort(why)) => panic!("the child aborted: {why}"),
                    Some(_) => {}
                    None => panic!("the child closed after {answered} bootstraps"),
                }
            }
            let after = child.rss_kib();
            eprintln!("{COUNT} bootstraps: RSS {before} KiB -> {after} KiB");
            assert!(
                after.saturating_sub(before) < 16 * 1024,
                "the child grew by {} KiB",
                after - before
            );
            // Init still answers (its export's references were all
            // released by the finishes, but the first bootstrap's remains).
            raw.send(&construct(20_000, init, 9));
            raw.results(20_000);
            child.assert_serving("after many bootstraps");
            drop(raw);
            child.finish("many bootstraps");
        },
    );
}

/// A method number `Probe` does not have, and an interface id that is not
/// `Probe`'s, called on a Probe: each fails with an "unimplemented" error
/// for that call, and the connection and its worker carry on.
#[test]
fn unknown_methods_and_interfaces_fail_the_call_only() {
    guard(
        "unknown_methods_and_interfaces_fail_the_call_only",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let mut raw = child.raw();
            let (_init, _map, thread, probe) = raw.probe("unknown");
            raw.send(&call(10, probe, PROBE, 200, &[], |_| {}));
            let reason = raw.exception(10);
            eprintln!("method 200: {reason}");
            assert!(
                reason.to_lowercase().contains("not implemented"),
                "{reason}"
            );
            raw.send(&call(11, probe, 0x1234_5678_9abc_def0, 0, &[], |_| {}));
            let reason = raw.exception(11);
            eprintln!("unknown interface: {reason}");
            assert!(
                reason.to_lowercase().contains("not implemented"),
                "{reason}"
            );
            raw.send(&add(12, probe, thread, 5, 6));
            assert!(matches!(raw.answer(12), Answer::Results(_)));
            child.assert_serving("after unknown methods");
            drop(raw);
            child.finish("unknown methods");
        },
    );
}
