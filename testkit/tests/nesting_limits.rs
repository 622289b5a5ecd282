//! Nesting never crashes: a thread blocked in a call runs the requests
//! queued for it inside its wait, and each one that calls out nests one more
//! wait on its stack. A request that would start with too little stack left
//! is refused with `Error::NestingLimit` for its caller, and the thread, the
//! connection and the process carry on (`event-loop/src/stack.rs`).
//!
//! Every test runs against a child process (see `limits_common`), which must
//! survive and keep serving on another connection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mp_testkit::probe::{IntFn, Probe};
use mp_testkit::watchdog::guard;
use multiprocess_thread_map::Error;

mod limits_common;
use limits_common::LimitsChild;
use mp_testkit::wire::{self, Answer, Incoming, add, call_fn, make_thread};

const LIMIT: Duration = Duration::from_secs(120);

/// The child process of this file's tests (see `limits_common`).
#[test]
#[ignore = "the child process of this file's tests, which start it"]
fn limits_child() {
    limits_common::child_main();
}

/// A peer pipelines thousands of `callFn` requests onto one worker and never
/// answers the callbacks they make: each runs nested inside the wait of the
/// one before. The worker nests as deep as its stack allows, then refuses
/// the rest, each with a nesting-limit error; the child stays up, serves
/// other threads of the same connection and other connections, and once
/// the peer hangs up, the stuck worker unwinds and ends.
#[test]
fn pipelined_nested_requests_are_refused_not_a_stack_overflow() {
    guard(
        "pipelined_nested_requests_are_refused_not_a_stack_overflow",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let good = child.assert_serving("before");
            let (workers_before, _) = good
                .stats()
                .map(|s| (s.workers, s.os_threads))
                .expect("stats");

            let mut raw = child.raw();
            let (_init, map, thread, probe) = raw.probe("hostile");
            // Our exports: 0 is our ThreadMap (handshake), 1 the function,
            // 2 the thread it is called back on. We answer neither.
            const COUNT: u32 = 5000;
            const FIRST: u32 = 10;
            let mut batch = Vec::new();
            for i in 0..COUNT {
                batch.extend(wire::bytes(&call_fn(
                    FIRST + i,
                    probe,
                    thread,
                    2,
                    1,
                    i as i32,
                )));
            }
            raw.write(&batch);
            let started = Instant::now();
            // The worker runs them in order: those it nested call us back,
            // the rest are refused. The loop may send a refusal before the
            // call back of a request nested just before it (they leave by
            // different queues), so we read until every request is
            // accounted for.
            let (mut callbacks, mut refused) = (0u32, 0u32);
            let mut reason = String::new();
            while callbacks + refused < COUNT {
                match raw.next() {
                    None => panic!(
                        "the child closed the connection (crashed?) after {callbacks} callbacks and {refused} refusals"
                    ),
                    Some(Incoming::Call(..)) => callbacks += 1,
                    Some(Incoming::Return(id, Answer::Exception(why))) if id >= FIRST => {
                        assert!(
                            why.contains("nesting limit") && why.contains("Probe.callFn refused"),
                            "question {id}: {why}"
                        );
                        refused += 1;
                        reason = why;
                    }
                    Some(Incoming::Return(id, answer)) => {
                        panic!("question {id}: unexpected answer {answer:?}")
                    }
                    Some(Incoming::Abort(why)) => panic!("the child aborted: {why}"),
                    Some(Incoming::Other) => {}
                }
            }
            eprintln!(
                "{callbacks} requests nested, {refused} refused in {:?}: {reason}",
                started.elapsed()
            );
            assert!(refused > 0, "nothing was refused");
            assert_eq!(
                callbacks + refused,
                COUNT,
                "every request nested or was refused"
            );
            assert!(
                callbacks >= 100,
                "a default worker nests at least 100 levels (nested {callbacks})"
            );

            // The stuck worker still answers, with a refusal; another worker
            // of the same connection serves normally.
            raw.send(&add(9000, probe, thread, 1, 2));
            let why = match raw.answer(9000) {
                Answer::Exception(why) => why,
                other => panic!("the stuck worker ran a request: {other:?}"),
            };
            assert!(why.contains("nesting limit"), "{why}");
            raw.send(&make_thread(9001, map, "another"));
            let other = raw.results(9001)[0];
            raw.send(&add(9002, probe, other, 2, 3));
            assert!(matches!(raw.answer(9002), Answer::Results(_)));
            // Other connections are served.
            let fresh = child.assert_serving("with the hostile peer connected");
            assert_eq!(good.add(1, 1).expect("the earlier connection"), 2);
            drop(fresh);

            // Hanging up fails every callback the worker waits for: it
            // unwinds and ends, with the other worker of that connection.
            drop(raw);
            let deadline = Instant::now() + limits_common::IO_TIMEOUT;
            loop {
                let (workers, _) = good
                    .stats()
                    .map(|s| (s.workers, s.os_threads))
                    .expect("stats");
                if workers <= workers_before {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the hostile connection's workers never ended ({workers} live, {workers_before} before)"
                );
            }
            child.assert_serving("after the hostile peer left");
            drop(good);
            child.finish("pipelined nesting");
        },
    );
}

/// What a recursion through `recurse` found: how deep it got, and the error
/// that stopped it.
#[derive(Default)]
struct Deepest {
    levels: i32,
    error: Option<Error>,
}

/// A closure for `recurse` that goes `depth` levels deeper, recording in
/// `deepest` how far it got and why it stopped.
fn recursive(probe: Arc<dyn Probe>, top: i32, deepest: Arc<Mutex<Deepest>>) -> IntFn {
    Arc::new(move |depth| {
        {
            let mut deepest = deepest.lock().expect("lock");
            deepest.levels = deepest.levels.max(top - depth);
        }
        if depth == 0 {
            return Ok(0);
        }
        let next = recursive(probe.clone(), top, deepest.clone());
        match probe.recurse(next, depth - 1) {
            Ok(out) if out.result < 0 => Ok(out.result),
            Ok(out) => Ok(out.result + 1),
            Err(e) => {
                deepest.lock().expect("lock").error.get_or_insert(e);
                Ok(-1)
            }
        }
    })
}

/// Runs `probe.recurse` as deep as `top` from a new thread with `stack`
/// bytes of stack; returns the result and what the recursion found.
fn recurse_from_thread(probe: Arc<dyn Probe>, top: i32, stack: usize) -> (i32, Deepest) {
    let deepest = Arc::new(Mutex::new(Deepest::default()));
    let f = recursive(probe.clone(), top, deepest.clone());
    let result = std::thread::Builder::new()
        .name("recurser".into())
        .stack_size(stack)
        .spawn(move || probe.recurse(f, top))
        .expect("spawn")
        .join()
        .expect("the recursing thread")
        .expect("the top-level recurse");
    let deepest = std::mem::take(&mut *deepest.lock().expect("lock"));
    (result.result, deepest)
}

/// Legitimate recursion past what the child's worker can hold: the level
/// that would overflow its stack is refused with `Error::NestingLimit`, the
/// levels above unwind normally, and the worker, the connection and the
/// child carry on. Our side has 256 MiB of stack, so the child's worker is
/// the one that runs out.
#[test]
fn deep_recursion_is_refused_at_the_workers_stack_limit() {
    guard(
        "deep_recursion_is_refused_at_the_workers_stack_limit",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let (_connection, init) = child.connect();
            let probe = init.make_probe().expect("makeProbe");
            let worker = probe.whoami().expect("whoami");
            let (result, deepest) = recurse_from_thread(probe.clone(), 100_000, 256 << 20);
            eprintln!(
                "a default worker held {} levels: {:?}",
                deepest.levels, deepest.error
            );
            assert_eq!(result, -1, "the recursion stopped short and said so");
            match &deepest.error {
                Some(Error::NestingLimit(why)) => {
                    assert!(why.contains("Probe.recurse refused"), "{why}")
                }
                other => panic!("expected a nesting limit from the child, got {other:?}"),
            }
            let default_levels = deepest.levels;
            assert!(
                default_levels >= 100,
                "a default worker nests at least 100 levels (got {default_levels})"
            );
            // The worker carries on: the same one serves the next calls,
            // and a recursion it can hold still works.
            assert_eq!(probe.whoami().expect("whoami"), worker);
            assert_eq!(probe.add(2, 2).expect("add after the refusal"), 4);
            let (result, deepest) = recurse_from_thread(probe.clone(), 20, 256 << 20);
            assert_eq!(result, 20, "{:?}", deepest.error);
            child.assert_serving("after the refusal");

            // A bigger worker stack holds deeper recursion.
            let big =
                LimitsChild::spawn(&[("MP_LIMITS_WORKER_STACK", (16usize << 20).to_string())]);
            let (_big_connection, big_init) = big.connect();
            let big_probe = big_init.make_probe().expect("makeProbe");
            let (_, bigger) = recurse_from_thread(big_probe.clone(), 100_000, 256 << 20);
            eprintln!("a 16 MiB worker held {} levels", bigger.levels);
            assert!(
                matches!(bigger.error, Some(Error::NestingLimit(_))),
                "{:?}",
                bigger.error
            );
            // Eight times the stack: well over four times the levels.
            assert!(
                bigger.levels > 4 * default_levels,
                "16 MiB of stack held {} levels, 2 MiB {default_levels}",
                bigger.levels
            );
            drop((big_probe, _big_connection));
            big.finish("deep recursion, 16 MiB workers");
            drop((probe, _connection));
            child.finish("deep recursion");
        },
    );
}

/// The same for an application thread, which runs the callbacks of its own
/// call while it waits: with a small stack, it refuses the callback that
/// would nest too deep, the peer's method fails with that error, and the
/// thread (here, in the test process: an overflow would abort the test)
/// carries on.
#[test]
fn an_application_thread_refuses_callbacks_past_its_stack() {
    guard(
        "an_application_thread_refuses_callbacks_past_its_stack",
        LIMIT,
        || {
            // The child's workers get far more stack than our thread.
            let child =
                LimitsChild::spawn(&[("MP_LIMITS_WORKER_STACK", (64usize << 20).to_string())]);
            let (_connection, init) = child.connect();
            let probe = init.make_probe().expect("makeProbe");
            let (result, deepest) = recurse_from_thread(probe.clone(), 100_000, 1 << 20);
            eprintln!(
                "a 1 MiB application thread held {} levels: {:?}",
                deepest.levels, deepest.error
            );
            assert_eq!(result, -1, "the recursion stopped short and said so");
            // Our thread refused the callback; the child's method, whose
            // call of it failed, reports that to the level above.
            match &deepest.error {
                Some(Error::Failed(failure)) => assert!(
                    failure.message.contains("nesting limit")
                        && failure.message.contains("IntFn.call refused"),
                    "{failure:?}"
                ),
                other => panic!("expected our refusal, relayed by the child, got {other:?}"),
            }
            assert!(deepest.levels >= 10, "only {} levels", deepest.levels);
            let (result, deepest) = recurse_from_thread(probe.clone(), 5, 1 << 20);
            assert_eq!(result, 5, "{:?}", deepest.error);
            child.assert_serving("after our refusal");
            drop((probe, _connection));
            child.finish("application thread nesting");
        },
    );
}
