//! `post` and `sync` called on the loop's own thread (from a posted closure
//! or from a task) run their closure inline, at once: a `sync` there never
//! waits for the loop it is running on, so it never deadlocks, however deep
//! the nesting; a `post` there runs before it returns, ahead of work other
//! threads queued earlier.
//!
//! Each test runs under `common::within`: without the inline path, the
//! `sync`s below would wait forever for their own thread, and the watchdog
//! would fail the test with a dump of what every thread waits for.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multiprocess_event_loop::{EventLoop, LoopHandle};

const LIMIT: Duration = Duration::from_secs(30);

type Log = Arc<Mutex<Vec<&'static str>>>;

fn record(log: &Log, what: &'static str) {
    log.lock().expect("log").push(what);
}

fn entries(log: &Log) -> Vec<&'static str> {
    log.lock().expect("log").clone()
}

/// The name of the calling thread.
fn here() -> Option<String> {
    std::thread::current().name().map(String::from)
}

#[test]
fn sync_from_a_posted_closure_runs_inline_and_returns_its_value() {
    common::within(LIMIT, || {
        let event_loop = EventLoop::start("inline-sync-loop").expect("loop");
        let log: Log = Arc::default();
        let (on_loop, inner_log) = (event_loop.clone(), log.clone());
        let (value, outer_thread, inner_thread) = event_loop
            .sync(move || {
                record(&inner_log, "outer before");
                let seen = inner_log.clone();
                let (value, inner_thread) = on_loop
                    .sync(move || {
                        record(&seen, "inner");
                        (6 * 7, here())
                    })
                    .expect("a sync from the loop thread runs");
                record(&inner_log, "outer after");
                (value, here(), inner_thread)
            })
            .expect("sync");
        assert_eq!(value, 42);
        assert_eq!(outer_thread.as_deref(), Some("inline-sync-loop"));
        assert_eq!(
            inner_thread, outer_thread,
            "the inner closure ran right there"
        );
        // Inline: the inner closure ran before the inner `sync` returned,
        // not after the outer closure.
        assert_eq!(entries(&log), ["outer before", "inner", "outer after"]);
    });
}

#[test]
fn nested_syncs_through_handles_and_posters_run_inline() {
    common::within(LIMIT, || {
        let event_loop = EventLoop::start("nested-sync-loop").expect("loop");
        let (first, poster, last) = (event_loop.clone(), event_loop.poster(), event_loop.clone());
        // A closure that syncs a closure that syncs a closure: each level
        // adds its depth, so the sum says every level ran and returned.
        let total = event_loop
            .sync(move || {
                let below = first
                    .sync(move || {
                        let below = poster
                            .sync(move || {
                                let below = last.sync(|| 1).expect("depth 4");
                                below + 2
                            })
                            .expect("depth 3");
                        below + 3
                    })
                    .expect("depth 2");
                below + 4
            })
            .expect("depth 1");
        assert_eq!(total, 1 + 2 + 3 + 4);
    });
}

#[test]
fn sync_and_post_from_a_task_run_inline() {
    common::within(LIMIT, || {
        let event_loop = EventLoop::start("task-inline-loop").expect("loop");
        let log: Log = Arc::default();
        let (done, finished) = mpsc::channel();
        let (on_loop, in_task) = (event_loop.clone(), log.clone());
        event_loop
            .spawn(move || async move {
                // A task may await in between; here it needs no await to
                // show that neither call waits for the loop it runs on.
                record(&in_task, "task before");
                let seen = in_task.clone();
                let value = on_loop.sync(move || {
                    record(&seen, "synced");
                    7
                });
                let seen = in_task.clone();
                let posted = on_loop.post(move || record(&seen, "posted"));
                record(&in_task, "task after");
                let _ = done.send((value, posted));
            })
            .expect("spawn");
        let (value, posted) = finished
            .recv_timeout(LIMIT)
            .expect("the task finished without waiting for itself");
        assert_eq!(value.expect("sync from a task"), 7);
        posted.expect("post from a task");
        assert_eq!(
            entries(&log),
            ["task before", "synced", "posted", "task after"]
        );
    });
}

#[test]
fn post_from_the_loop_thread_runs_before_it_returns_ahead_of_queued_work() {
    common::within(LIMIT, || {
        let event_loop = EventLoop::start("inline-post-loop").expect("loop");
        let log: Log = Arc::default();
        let (queued_ran, queued_done) = mpsc::channel();
        let (on_loop, in_closure) = (event_loop.clone(), log.clone());
        event_loop
            .post(move || {
                record(&in_closure, "outer before");
                // Another thread posts while this closure keeps the loop
                // busy: its closure is queued behind this one.
                let other = on_loop.clone();
                let seen = in_closure.clone();
                std::thread::spawn(move || {
                    other.post(move || {
                        record(&seen, "queued by another thread");
                        let _ = queued_ran.send(());
                    })
                })
                .join()
                .expect("the other thread")
                .expect("post from the other thread");
                // Posted from the loop thread: runs now, before `post`
                // returns, ahead of the closure queued above.
                let seen = in_closure.clone();
                on_loop
                    .post(move || record(&seen, "posted inline"))
                    .expect("post from the loop thread");
                record(&in_closure, "outer after");
            })
            .expect("post");
        queued_done
            .recv_timeout(LIMIT)
            .expect("the queued closure ran");
        assert_eq!(
            entries(&log),
            [
                "outer before",
                "posted inline",
                "outer after",
                "queued by another thread"
            ]
        );
    });
}

/// A handle used only from the loop thread still counts: the loop runs
/// while it lives, and `sync` through it works like any other.
#[test]
fn a_handle_made_on_the_loop_thread_syncs_inline_there() {
    common::within(LIMIT, || {
        let event_loop = EventLoop::start("own-handle-loop").expect("loop");
        let value = event_loop
            .sync(|| {
                let own: LoopHandle = multiprocess_event_loop::LoopContext::with(|cx| cx.handle())
                    .expect("on the loop thread");
                let value = own.sync(|| 5).expect("inline");
                // Dropping a handle on the loop thread never joins it.
                drop(own);
                value
            })
            .expect("sync");
        assert_eq!(value, 5);
    });
}

/// While the loop shuts down (its mailbox closed, its exit hooks running)
/// a `sync` on its thread still runs inline rather than failing or waiting;
/// once it is gone, a `sync` or `post` from another thread fails at once.
#[test]
fn sync_on_the_loop_thread_works_during_shutdown_and_fails_fast_after() {
    common::within(LIMIT, || {
        let event_loop = EventLoop::start("shutdown-sync-loop").expect("loop");
        let poster = event_loop.poster();
        let (ran, during_exit) = mpsc::channel();
        let in_hook = poster.clone();
        event_loop
            .sync(move || {
                multiprocess_event_loop::LoopContext::with(|cx| {
                    cx.at_exit(move || {
                        let _ = ran.send(in_hook.sync(|| 9));
                    })
                })
                .expect("on the loop thread");
            })
            .expect("sync");
        // The last handle: the loop exits (running the hook) and is joined.
        drop(event_loop);
        let value = during_exit
            .try_recv()
            .expect("the exit hook ran before the drop returned");
        assert_eq!(value.expect("a sync inside the exit hook"), 9);
        assert!(matches!(
            poster.sync(|| 1),
            Err(multiprocess_event_loop::Error::LoopShutDown)
        ));
        assert!(matches!(
            poster.post(|| {}),
            Err(multiprocess_event_loop::Error::LoopShutDown)
        ));
    });
}

/// From the thread of *another* loop, `sync` fails at once with
/// `WrongThread` instead of stalling that loop (two loops syncing each other
/// would deadlock); `post` works.
#[test]
fn sync_from_another_loops_thread_fails_and_post_works() {
    common::within(LIMIT, || {
        let first = EventLoop::start("first-loop").expect("loop");
        let second = EventLoop::start("second-loop").expect("loop");
        let target = second.clone();
        let (ran, on_second) = mpsc::channel();
        let outcome = first
            .sync(move || {
                let synced = target.sync(|| 1);
                let posted = target.post(move || {
                    let _ = ran.send(here());
                });
                (synced, posted)
            })
            .expect("sync to the first loop");
        assert!(
            matches!(
                outcome.0,
                Err(multiprocess_event_loop::Error::WrongThread(_))
            ),
            "got {:?}",
            outcome.0
        );
        assert!(outcome.1.is_ok(), "post: {:?}", outcome.1);
        assert_eq!(
            on_second
                .recv_timeout(Duration::from_secs(10))
                .expect("the posted closure ran")
                .as_deref(),
            Some("second-loop")
        );
    });
}
