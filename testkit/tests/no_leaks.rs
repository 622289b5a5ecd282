//! Scenarios that count this process's OS threads before and after: they
//! live alone in this file (one test, so one test thread) because other tests
//! running in parallel would change the count.
//!
//! (d) Killing the server mid-call fails the blocked caller with
//! `Disconnected` within a second, and no thread of ours leaks; likewise with
//! both ends in one process. Then: the loop shuts down and its thread is
//! joined once the last handle goes, and the child exits when we disconnect.

use std::time::{Duration, Instant};

use mp_testkit::peer::Peer;
use mp_testkit::probe_server::{os_thread_count, os_thread_count_settled};
use mp_testkit::watchdog::guard;
use multiprocess_thread_map::Error;

mod common;
use common::{child, in_process};

const LIMIT: Duration = Duration::from_secs(60);

fn kill_mid_call(make: fn() -> Peer, gate: &'static str) {
    let threads_before = os_thread_count();
    {
        let mut peer = make();
        let probe = peer.init.make_probe().expect("makeProbe");
        let caller = {
            let probe = probe.clone();
            std::thread::spawn(move || {
                let result = probe.block(gate);
                (result, Instant::now())
            })
        };
        probe.wait_blocked(gate, 1).expect("blocked");
        let killed_at = Instant::now();
        peer.kill_server();
        let (result, returned_at) = caller.join().expect("caller thread");
        assert!(
            matches!(result, Err(Error::Disconnected(_))),
            "got {result:?}"
        );
        let delay = returned_at.duration_since(killed_at);
        assert!(
            delay < Duration::from_secs(1),
            "the caller waited {delay:?}"
        );
        // Later calls fail the same way, at once.
        assert!(matches!(probe.add(1, 1), Err(Error::Disconnected(_))));
        assert!(
            peer.connection
                .wait_disconnected(Duration::from_secs(5))
                .is_some()
        );
        // An in-process server's worker is still blocked in user code (the
        // gate); release it, and it ends because its connection is gone.
        mp_testkit::probe_server::open_gate(gate);
        assert!(
            multiprocess_thread_map::wait_for_workers(0, Duration::from_secs(10)),
            "workers ended"
        );
    }
    assert_eq!(
        os_thread_count_settled(threads_before, Duration::from_secs(5)),
        threads_before,
        "threads leaked:\n{}",
        mp_testkit::watchdog::dump_threads()
    );
}

fn everything_is_released_at_the_end() {
    let before = os_thread_count();
    let mut peer = child();
    let probe = peer.init.make_probe().expect("makeProbe");
    assert_eq!(probe.add(20, 22).expect("add"), 42);
    drop(probe);
    peer.connection.disconnect();
    assert!(
        peer.wait_server_exit(Duration::from_secs(10)),
        "the child exits when we disconnect"
    );
    drop(peer);
    assert_eq!(
        os_thread_count_settled(before, Duration::from_secs(5)),
        before,
        "the loop thread was joined"
    );
}

#[test]
fn kill_mid_call_and_release_everything() {
    guard("kill_mid_call_child", LIMIT, || {
        kill_mid_call(child, "kill-child")
    });
    guard("kill_mid_call_in_process", LIMIT, || {
        kill_mid_call(in_process, "kill-in-process")
    });
    guard(
        "everything_is_released_at_the_end",
        LIMIT,
        everything_is_released_at_the_end,
    );
}
