//! A stored callback invoked later by a thread of the callee that serves no
//! call runs on a worker made in the caller's process through the ThreadMap
//! `construct` exchanged: one per invoking thread, reused, freed when that
//! thread exits. (Alone in its file: it counts this process's workers.)

use std::sync::Arc;
use std::time::Duration;

use mp_testkit::probe_server::tid;
use mp_testkit::watchdog::guard;

mod common;
use common::child;

#[test]
fn stored_callback_from_a_thread_serving_no_call() {
    guard(
        "stored_callback_from_a_thread_serving_no_call",
        Duration::from_secs(60),
        || {
            let peer = child();
            let probe = peer.init.make_probe().expect("makeProbe");
            assert_eq!(multiprocess_thread_map::live_workers(), 0);
            let me = tid();
            probe
                .save_fn(Some(Arc::new(|_| Ok(i32::try_from(tid()).unwrap_or(-1)))))
                .expect("saveFn");
            // From the worker serving our call: runs on us.
            assert_eq!(i64::from(probe.call_saved(0).expect("callSaved")), me);
            // From the child's notifier thread: runs on a worker of ours made for it.
            let (first, notifier) = probe
                .call_saved_from_notifier(0)
                .map(|out| (out.result, out.tid))
                .expect("from notifier");
            assert_ne!(
                i64::from(first),
                me,
                "ran on the caller's thread, which serves nothing"
            );
            assert_ne!(i64::from(first), notifier, "ran in the wrong process");
            assert_eq!(
                multiprocess_thread_map::live_workers(),
                1,
                "one worker for the notifier"
            );
            let second = probe.call_saved_from_notifier(0).expect("again").result;
            assert_eq!(second, first, "the notifier's worker is reused");
            assert_eq!(multiprocess_thread_map::live_workers(), 1);
            // The notifier thread exits: its worker here is freed.
            probe.stop_notifier().expect("stopNotifier");
            assert!(
                multiprocess_thread_map::wait_for_workers(0, Duration::from_secs(10)),
                "the notifier's worker was not freed"
            );
            probe.save_fn(None).expect("saveFn(None)");
        },
    );
}
