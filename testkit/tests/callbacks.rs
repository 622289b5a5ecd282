//! Closures passed across processes run on the waiting caller's thread, to
//! any depth, with its thread-locals and locks; they are dropped off the loop
//! thread when released; a broken link anywhere in a nest fails every
//! blocked thread promptly. Every test runs under a watchdog.

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mp_testkit::peer::Peer;
use mp_testkit::probe::{CallFnOutput, IntFn, Probe};
use mp_testkit::probe_server::{counter_drops_of, tid};
use mp_testkit::watchdog::guard;
use multiprocess_thread_map::Error;
use parking_lot::ReentrantMutex;

mod common;
use common::{child, in_process};

const LIMIT: Duration = Duration::from_secs(60);

thread_local! {
    static MARK: Cell<u32> = const { Cell::new(0) };
}

/// A callback the server calls while serving our call runs on our thread:
/// same thread id, same thread-locals.
fn callback_runs_on_the_calling_thread(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let me = tid();
    MARK.with(|m| m.set(7));
    let (result, worker) = probe
        .call_fn(
            Arc::new(move |x| {
                assert_eq!(tid(), me, "the callback ran on another thread");
                assert_eq!(MARK.with(|m| m.get()), 7, "not our thread-locals");
                Ok(x * 2)
            }),
            21,
        )
        .map(|out| (out.result, out.tid))
        .expect("callFn");
    assert_eq!(result, 42);
    assert_eq!(
        worker,
        probe.whoami().expect("whoami").tid,
        "served on our worker"
    );
}

#[test]
fn callback_runs_on_the_calling_thread_child() {
    guard("callback_runs_on_the_calling_thread_child", LIMIT, || {
        callback_runs_on_the_calling_thread(child())
    });
}

#[test]
fn callback_runs_on_the_calling_thread_in_process() {
    guard(
        "callback_runs_on_the_calling_thread_in_process",
        LIMIT,
        || callback_runs_on_the_calling_thread(in_process()),
    );
}

/// A closure for `recurse`: at each level it checks it runs on `caller`,
/// that the server level above ran on the one worker, and that the lock
/// `caller` holds can be taken again; then it recurses once more.
fn recursive(
    probe: Arc<dyn Probe>,
    caller: i64,
    worker: Arc<OnceLock<i64>>,
    lock: Arc<ReentrantMutex<Cell<u32>>>,
) -> IntFn {
    Arc::new(move |depth| {
        assert_eq!(tid(), caller, "level {depth} ran on another thread");
        let guard = lock
            .try_lock()
            .expect("the caller's lock is ours again inside the callback");
        guard.set(guard.get() + 1);
        if depth == 0 {
            return Ok(0);
        }
        let next = recursive(probe.clone(), caller, worker.clone(), lock.clone());
        let (result, served_by) = probe
            .recurse(next, depth - 1)
            .map(|out| (out.result, out.tid))
            .expect("nested recurse");
        let first = *worker.get_or_init(|| served_by);
        assert_eq!(
            served_by, first,
            "level {depth} was served by another worker"
        );
        Ok(result + 1)
    })
}

/// Recursion across the process boundary: thread ids at every level, no
/// new threads, no deadlock; the caller's reentrant lock is held throughout.
fn nested_recursion(peer: Peer, depth: i32, count_threads: bool) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let worker = probe.whoami().expect("whoami").tid;
    let (workers_before, threads_before) = probe
        .stats()
        .map(|s| (s.workers, s.os_threads))
        .expect("stats");
    let lock = Arc::new(ReentrantMutex::new(Cell::new(0)));
    let held = lock.lock();
    let served = Arc::new(OnceLock::new());
    let (result, top) = probe
        .recurse(
            recursive(probe.clone(), tid(), served.clone(), lock.clone()),
            depth,
        )
        .map(|out| (out.result, out.tid))
        .expect("recurse");
    assert_eq!(result, depth, "every level ran once");
    assert_eq!(top, worker, "the top level ran on our worker");
    if let Some(nested) = served.get() {
        assert_eq!(*nested, worker, "nested levels ran on our worker too");
    }
    assert_eq!(
        held.get(),
        depth as u32 + 1,
        "the lock was taken again at every level"
    );
    drop(held);
    // Only a child's counts are its own: in this process, other tests run
    // in parallel.
    if count_threads {
        assert_eq!(
            probe
                .stats()
                .map(|s| (s.workers, s.os_threads))
                .expect("stats"),
            (workers_before, threads_before),
            "no new threads"
        );
    }
}

#[test]
fn nested_recursion_depth_64_child() {
    guard("nested_recursion_depth_64_child", LIMIT, || {
        nested_recursion(child(), 64, true)
    });
}

#[test]
fn nested_recursion_depth_64_in_process() {
    guard("nested_recursion_depth_64_in_process", LIMIT, || {
        nested_recursion(in_process(), 64, false)
    });
}

#[test]
fn reentrant_lock_at_depth_1_2_and_8() {
    guard("reentrant_lock_at_depth_1_2_and_8", LIMIT, || {
        for depth in [1, 2, 8] {
            nested_recursion(child(), depth, true);
        }
    });
}

/// Signals, from the thread that drops it, that a closure was dropped.
struct DropSignal(mpsc::Sender<String>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        let _ = self.0.send(name);
    }
}

fn closure_with_signal() -> (IntFn, mpsc::Receiver<String>) {
    let (sender, dropped) = mpsc::channel();
    let signal = DropSignal(sender);
    let closure: IntFn = Arc::new(move |x| {
        let _ = &signal;
        Ok(x + 1)
    });
    (closure, dropped)
}

/// Releasing the last handle drops the closure in its process, on a thread
/// that is not the loop thread, with no extra round trip.
fn closures_are_dropped_off_the_loop(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    // Passed for one call: released when the call is over.
    let (closure, dropped) = closure_with_signal();
    assert_eq!(probe.call_fn(closure, 1).expect("callFn").result, 2);
    let thread = dropped
        .recv_timeout(Duration::from_secs(10))
        .expect("dropped after the call");
    assert_ne!(thread, "client-loop", "dropped on the loop thread");
    // Kept by the server: released when it lets go.
    let (closure, dropped) = closure_with_signal();
    probe.save_fn(Some(closure)).expect("saveFn");
    assert_eq!(probe.saved_fn_count().expect("count"), 1);
    assert_eq!(probe.call_saved(41).expect("callSaved"), 42);
    assert_eq!(
        dropped.try_recv(),
        Err(mpsc::TryRecvError::Empty),
        "dropped while still kept"
    );
    // Looking at the channel only sees a drop that has already happened, so
    // the server calls the closure once more right before releasing it: a
    // dropped closure cannot run, and a drop cannot be undone, so the one
    // that runs now was alive all the while it was kept.
    assert_eq!(
        probe
            .call_saved(1)
            .expect("callSaved just before the release"),
        2,
        "dropped while still kept"
    );
    probe.save_fn(None).expect("saveFn(None)");
    let thread = dropped
        .recv_timeout(Duration::from_secs(10))
        .expect("dropped once released");
    assert_ne!(thread, "client-loop", "dropped on the loop thread");
}

#[test]
fn closures_are_dropped_off_the_loop_child() {
    guard("closures_are_dropped_off_the_loop_child", LIMIT, || {
        closures_are_dropped_off_the_loop(child())
    });
}

#[test]
fn closures_are_dropped_off_the_loop_in_process() {
    guard(
        "closures_are_dropped_off_the_loop_in_process",
        LIMIT,
        || closures_are_dropped_off_the_loop(in_process()),
    );
}

/// A closure passed with each of many calls (more than the loop hands its
/// cleanup thread at once) is dropped after its call, every one: on the
/// cleanup thread, in the order they were released (or, if the release
/// overtook the caller's own reference, by the caller), never on the loop;
/// none is lost or kept waiting for a batch that never fills.
fn many_released_closures_are_all_dropped_in_order(peer: Peer) {
    const CALLS: i32 = 300;
    let probe = peer.init.make_probe().expect("makeProbe");
    let (sender, dropped) = mpsc::channel::<(i32, String)>();
    struct Numbered(i32, mpsc::Sender<(i32, String)>);
    impl Drop for Numbered {
        fn drop(&mut self) {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            let _ = self.1.send((self.0, name));
        }
    }
    for i in 0..CALLS {
        let signal = Numbered(i, sender.clone());
        let closure: IntFn = Arc::new(move |x| {
            let _ = &signal;
            Ok(x + 1)
        });
        assert_eq!(probe.call_fn(closure, i).expect("callFn").result, i + 1);
    }
    drop(sender);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < CALLS as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match dropped.recv_timeout(left) {
            Ok(drop) => seen.push(drop),
            Err(e) => panic!("{} of {CALLS} closures dropped: {e}", seen.len()),
        }
    }
    // The caller's own reference goes when `call_fn` returns: if the
    // release overtook that, the caller's thread drops the closure itself.
    let me = std::thread::current().name().unwrap_or("?").to_string();
    let elsewhere: Vec<&(i32, String)> = seen
        .iter()
        .filter(|(_, t)| *t != "mp-cleanup" && *t != me)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "dropped on another thread: {elsewhere:?}"
    );
    let mut all: Vec<i32> = seen.iter().map(|(i, _)| *i).collect();
    all.sort_unstable();
    assert_eq!(all, (0..CALLS).collect::<Vec<_>>(), "not each dropped once");
    let cleaned: Vec<i32> = seen
        .iter()
        .filter(|(_, t)| t == "mp-cleanup")
        .map(|(i, _)| *i)
        .collect();
    assert!(
        cleaned.windows(2).all(|pair| pair[0] < pair[1]),
        "the cleanup thread dropped them out of order: {cleaned:?}"
    );
    assert!(
        cleaned.len() > CALLS as usize / 2,
        "only {} of {CALLS} dropped on the cleanup thread",
        cleaned.len()
    );
}

#[test]
fn many_released_closures_are_all_dropped_in_order_child() {
    guard(
        "many_released_closures_are_all_dropped_in_order_child",
        LIMIT,
        || many_released_closures_are_all_dropped_in_order(child()),
    );
}

/// libmultiprocess's example shape: A calls B passing a callback; B, while
/// serving it, calls the callback, which forwards to C. The forwarded call
/// runs on C's worker for A's thread, the same one A reaches directly.
#[test]
fn three_processes_callback_forwards_to_a_third() {
    guard(
        "three_processes_callback_forwards_to_a_third",
        LIMIT,
        || {
            let b = child();
            let c = child();
            let probe_b = b.init.make_probe().expect("makeProbe B");
            let probe_c = c.init.make_probe().expect("makeProbe C");
            let c_worker = probe_c.whoami().expect("whoami C");
            let me = tid();
            let forward = probe_c.clone();
            let result = probe_b
                .call_fn(
                    Arc::new(move |x| {
                        assert_eq!(tid(), me, "the callback ran on A's calling thread");
                        assert_eq!(
                            forward.whoami().expect("whoami C from the callback"),
                            c_worker
                        );
                        Ok(forward.add(x, 100).expect("C.add"))
                    }),
                    1,
                )
                .expect("B.callFn")
                .result;
            assert_eq!(result, 101);
        },
    );
}

/// Runs `outer.callFn(closure)` on a thread, where the closure (on that
/// thread) blocks in `blocked_in.block(gate)`; once it is blocked, kills
/// `victim`. Returns the outer call's outcome, how long after the kill it
/// came back, and whether the closure was dropped afterwards.
fn kill_while_a_callback_blocks(
    outer: Arc<dyn Probe>,
    blocked_in: Arc<dyn Probe>,
    victim: &mut Peer,
    gate: &'static str,
) -> (
    multiprocess_thread_map::Result<CallFnOutput>,
    Duration,
    bool,
) {
    let (sender, dropped) = mpsc::channel();
    let signal = DropSignal(sender);
    let nested = blocked_in.clone();
    let (outcome, unwound) = std::thread::scope(|scope| {
        let caller = scope.spawn(move || {
            outer.call_fn(
                Arc::new(move |_| {
                    let _ = &signal;
                    match nested.block(gate) {
                        Err(Error::Disconnected(_)) => Ok(-1),
                        other => panic!("expected Disconnected, got {other:?}"),
                    }
                }),
                0,
            )
        });
        blocked_in
            .wait_blocked(gate, 1)
            .expect("the callback is blocked");
        let killed = Instant::now();
        victim.kill_server();
        let outcome = caller.join().expect("caller");
        (outcome, killed.elapsed())
    });
    let was_dropped = dropped.recv_timeout(Duration::from_secs(10)).is_ok();
    (outcome, unwound, was_dropped)
}

/// Kill any process of a nested chain: every thread blocked in it gets
/// `Disconnected` promptly, and the closures are dropped.
#[test]
fn kill_any_process_of_a_nested_chain() {
    guard("kill_any_process_of_a_nested_chain", LIMIT, || {
        // A -> B.callFn(closure); the closure, on A's thread, blocks in C.
        // Kill C: the closure's call fails at once, and the chain unwinds.
        let b = child();
        let mut c = child();
        let probe_b = b.init.make_probe().expect("makeProbe B");
        let probe_c = c.init.make_probe().expect("makeProbe C");
        let (outcome, unwound, dropped) =
            kill_while_a_callback_blocks(probe_b, probe_c, &mut c, "nest-c");
        assert_eq!(outcome.expect("B's call completes").result, -1);
        assert!(unwound < Duration::from_secs(1), "unwound in {unwound:?}");
        assert!(dropped, "the closure was dropped");

        // A -> B.callFn(closure); the closure calls B.block, which runs on
        // B's worker nested in its own callback. Kill B: both waits on A's
        // thread end with Disconnected.
        let mut b = child();
        let probe_b = b.init.make_probe().expect("makeProbe B");
        let (outcome, unwound, dropped) =
            kill_while_a_callback_blocks(probe_b.clone(), probe_b, &mut b, "nest-b");
        assert!(
            matches!(outcome, Err(Error::Disconnected(_))),
            "got {outcome:?}"
        );
        assert!(unwound < Duration::from_secs(1), "unwound in {unwound:?}");
        assert!(dropped, "the closure was dropped");
    });
}

/// An interface object with `destroy @0 (context)`: it stays alive while we
/// hold it; dropping our handle calls `destroy`, and the object's destructor
/// runs on the worker mapped to the dropping thread.
///
/// Other tests in this process make and drop Counters of their own at the
/// same time, so this one looks only at the drops of its own Counters, by id.
fn destroy_runs_on_the_mapped_worker(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let worker = probe.whoami().expect("whoami").tid;
    let counter = probe.make_counter().expect("makeCounter");
    let id = counter.id().expect("id");
    for expected in 1..=3 {
        assert_eq!(counter.increment().expect("increment"), expected);
    }
    assert_eq!(
        counter_drops_of(&*probe, id).expect("drops"),
        [],
        "destroyed while we still hold it"
    );
    drop(counter);
    assert_eq!(
        counter_drops_of(&*probe, id).expect("drops"),
        [worker],
        "dropping the client destroyed the object, once, on our mapped worker"
    );
    // A counter dropped by another thread is destroyed on that thread's worker.
    let counter = probe.make_counter().expect("makeCounter");
    let other_id = counter.id().expect("id");
    assert_ne!(other_id, id, "two counters, one id");
    let other_worker = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let other = probe.whoami().expect("whoami").tid;
                drop(counter);
                other
            })
            .join()
            .expect("thread")
    });
    assert_eq!(
        counter_drops_of(&*probe, other_id).expect("drops"),
        [other_worker],
        "dropping the client destroyed the object, once, on the dropping thread's worker"
    );
    assert_ne!(other_worker, worker);
}

#[test]
fn destroy_runs_on_the_mapped_worker_child() {
    guard("destroy_runs_on_the_mapped_worker_child", LIMIT, || {
        destroy_runs_on_the_mapped_worker(child())
    });
}

#[test]
fn destroy_runs_on_the_mapped_worker_in_process() {
    guard(
        "destroy_runs_on_the_mapped_worker_in_process",
        LIMIT,
        || destroy_runs_on_the_mapped_worker(in_process()),
    );
}

/// Objects left over when a connection dies are dropped on the cleanup
/// thread, never on the loop thread.
#[test]
fn leftover_objects_are_dropped_on_the_cleanup_thread() {
    guard(
        "leftover_objects_are_dropped_on_the_cleanup_thread",
        LIMIT,
        || {
            let mut peer = in_process();
            let probe = peer.init.make_probe().expect("makeProbe");
            let counter = probe.make_counter().expect("makeCounter");
            let id = counter.id().expect("id");
            assert_eq!(counter.increment().expect("increment"), 1);
            assert_eq!(
                counter_drops_of(&*probe, id).expect("drops"),
                [],
                "destroyed while we still hold it"
            );
            peer.kill_server();
            drop(counter); // its destroy fails: the connection is gone
            // The server's loop thread hands the object to its cleanup
            // thread. Other tests drop Counters of their own in this process
            // meanwhile: look at this one's drops only.
            let drops =
                mp_testkit::probe_server::local_counter_drops_of(id, Duration::from_secs(10));
            assert_eq!(
                drops.len(),
                1,
                "the leftover object was not dropped exactly once: {drops:?}"
            );
            let (tid, name) = &drops[0];
            assert_eq!(
                name.as_deref(),
                Some("mp-cleanup"),
                "dropped on thread {tid} ({name:?})"
            );
        },
    );
}
