//! Loom models of the per-thread `Waiter`: a thread blocked for its reply runs
//! the jobs posted to it, waits nest, a dropped `Reply` still wakes its
//! waiter, and a worker's `serve` races `close` and `post`.
//!
//! The models create Waiters with `Waiter::new` rather than
//! `Waiter::current()`: the latter lives in a std `thread_local!`, and loom
//! runs all its threads on one OS thread.
#![cfg(loom)]

use loom_tests::model;
use multiprocess_event_loop::sync::{Arc, AtomicBool, AtomicUsize, Ordering, thread};
use multiprocess_event_loop::{Error, Waiter};

fn waiting_for(what: &'static str) -> impl Fn() -> String {
    move || what.to_string()
}

/// Two threads each post a job and then a job that replies to the waiting
/// thread; the waiting thread gets both replies, having run every job exactly
/// once, on itself, in each poster's order.
///
/// Why it holds: `post` queues under the Waiter's lock and then notifies, and
/// `wait` sleeps only after finding the queue empty under that lock, so a job
/// posted before or during the wait is never missed. Jobs run one at a time in
/// FIFO order, so a poster's plain job runs before its replying job; once both
/// replies are in, all four jobs have run.
#[test]
fn a_waiting_thread_runs_every_job_posted_to_it() {
    model(|| {
        let waiter = Waiter::new("main");
        let me = thread::current().id();
        let counter = Arc::new(AtomicUsize::new(0));
        let (slot_a, reply_a) = waiter.reply_slot::<usize>(Error::Disconnected("a".into()));
        let (slot_b, reply_b) = waiter.reply_slot::<usize>(Error::Disconnected("b".into()));

        let posters: Vec<_> = [(1, reply_a), (2, reply_b)]
            .into_iter()
            .map(|(bit, reply)| {
                let waiter = waiter.clone();
                let counter = counter.clone();
                thread::spawn(move || {
                    let plain = {
                        let counter = counter.clone();
                        move || {
                            assert_eq!(
                                thread::current().id(),
                                me,
                                "a job runs on the waiting thread"
                            );
                            counter.fetch_add(bit, Ordering::SeqCst);
                        }
                    };
                    assert!(waiter.post(Box::new(plain)).is_ok());
                    let replying = move || reply.send(Ok(counter.load(Ordering::SeqCst)));
                    assert!(waiter.post(Box::new(replying)).is_ok());
                })
            })
            .collect();

        let seen_a = waiter.wait(&slot_a, waiting_for("a")).expect("a's reply");
        let seen_b = waiter.wait(&slot_b, waiting_for("b")).expect("b's reply");
        assert_eq!(seen_a & 1, 1, "a's job ran before a's reply");
        assert_eq!(seen_b & 2, 2, "b's job ran before b's reply");
        for poster in posters {
            poster.join().expect("poster panicked");
        }
        assert_eq!(counter.load(Ordering::SeqCst), 3);
        assert_eq!(waiter.queued(), 0);
    });
}

/// Nested waits: the waiting thread runs a job that itself waits for a second
/// reply. Another thread, told that the job started, sends the outer reply
/// (which arrives during the inner wait) and then the inner one. Both waits
/// return their own value.
///
/// Why it holds: a reply goes into its own slot, so the inner wait cannot take
/// the outer value. The inner wait may consume the `notified` flag the outer
/// reply set; that is harmless because every `wait` looks at its slot again
/// after running a job and before it sleeps (`--cfg loom_broken_waiter` breaks
/// exactly this, and this model then deadlocks).
#[test]
fn nested_waits_each_get_their_own_reply() {
    model(|| {
        let waiter = Waiter::new("main");
        let (outer_slot, outer_reply) =
            waiter.reply_slot::<u32>(Error::Disconnected("outer".into()));
        let (inner_slot, inner_reply) =
            waiter.reply_slot::<u32>(Error::Disconnected("inner".into()));
        let helper_waiter = Waiter::new("helper");
        let (started_slot, started) =
            helper_waiter.reply_slot::<()>(Error::Disconnected("started".into()));
        let inner_value = Arc::new(AtomicUsize::new(0));

        let helper = thread::spawn(move || {
            helper_waiter
                .wait(&started_slot, waiting_for("the job to start"))
                .expect("started");
            outer_reply.send(Ok(1));
            inner_reply.send(Ok(2));
        });

        let job = {
            let waiter = waiter.clone();
            let inner_value = inner_value.clone();
            move || {
                started.send(Ok(()));
                let value = waiter.wait(&inner_slot, waiting_for("inner"));
                inner_value.store(value.expect("inner reply") as usize, Ordering::SeqCst);
            }
        };
        assert!(waiter.post(Box::new(job)).is_ok());

        assert_eq!(
            waiter
                .wait(&outer_slot, waiting_for("outer"))
                .expect("outer reply"),
            1
        );
        assert_eq!(
            inner_value.load(Ordering::SeqCst),
            2,
            "the job (and its inner wait) ran first"
        );
        helper.join().expect("helper panicked");
    });
}

/// A `Reply` dropped unsent on another thread wakes the waiter with the error
/// it was created with, while a job posted meanwhile still runs.
///
/// Why it holds: `Reply`'s `Drop` delivers `on_drop` through the same path as
/// `send` (slot first, then `notified` under the lock), so the waiter cannot
/// miss it any more than a sent value.
#[test]
fn a_dropped_reply_wakes_the_waiter_with_its_error() {
    model(|| {
        let waiter = Waiter::new("main");
        let (slot, reply) = waiter.reply_slot::<u32>(Error::Disconnected("peer went away".into()));
        let ran = Arc::new(AtomicBool::new(false));

        let dropper = thread::spawn(move || drop(reply));
        let poster = {
            let waiter = waiter.clone();
            let ran = ran.clone();
            thread::spawn(move || {
                waiter
                    .post(Box::new(move || ran.store(true, Ordering::SeqCst)))
                    .is_ok()
            })
        };

        match waiter.wait(&slot, waiting_for("a reply that never comes")) {
            Err(Error::Disconnected(message)) => assert_eq!(message, "peer went away"),
            other => panic!("expected the on_drop error, got {other:?}"),
        }
        dropper.join().expect("dropper panicked");
        assert!(poster.join().expect("poster panicked"));
        // The job was either run by the wait or is still queued: never lost.
        let ran = ran.load(Ordering::SeqCst);
        assert_eq!(waiter.queued(), usize::from(!ran));
    });
}

/// A worker thread in `serve`, a `close` and a `post` of a job carrying a
/// `Reply`, all racing. The job either runs (its reply says `Ok`) or is refused
/// or dropped at close (its dropped reply says `Disconnected`); never both and
/// never neither, so the poster always wakes. `close` reports the worker idle
/// only when no job is running and none will start.
///
/// Why it holds: `post`, `close` and the worker's take-a-job step all happen
/// under the Waiter's lock; `serve` checks `closed` before taking a job and
/// drops (not runs) what is left once closed; a job is moved, never copied, so
/// its `Reply` delivers exactly once, by `send` or by `Drop`. `busy` is set
/// under the lock when a job is taken and cleared only once it has finished.
#[test]
fn serve_racing_close_and_post_runs_or_refuses_each_job_once() {
    model(|| {
        let worker_waiter = Waiter::new("worker");
        let started = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let closed_idle = Arc::new(AtomicBool::new(false));

        let worker = {
            let worker_waiter = worker_waiter.clone();
            thread::spawn(move || worker_waiter.serve())
        };
        let closer = {
            let worker_waiter = worker_waiter.clone();
            let (started, finished, closed_idle) =
                (started.clone(), finished.clone(), closed_idle.clone());
            thread::spawn(move || {
                let idle = worker_waiter.close();
                if idle {
                    closed_idle.store(true, Ordering::SeqCst);
                    // Idle means no job is half-way through.
                    let started = started.load(Ordering::SeqCst);
                    assert!(
                        !started || finished.load(Ordering::SeqCst),
                        "close said idle while a job ran"
                    );
                }
            })
        };

        let caller = Waiter::new("caller");
        let (slot, reply) = caller.reply_slot::<()>(Error::Disconnected("worker closed".into()));
        let job = {
            let (started, finished, closed_idle) =
                (started.clone(), finished.clone(), closed_idle.clone());
            move || {
                assert!(
                    !closed_idle.load(Ordering::SeqCst),
                    "a job started after close said the worker was idle"
                );
                started.store(true, Ordering::SeqCst);
                reply.send(Ok(()));
                finished.store(true, Ordering::SeqCst);
            }
        };
        // A refused job comes back here and is dropped, and with it its Reply.
        let accepted = worker_waiter.post(Box::new(job)).is_ok();

        let outcome = caller.wait(&slot, waiting_for("the worker"));
        closer.join().expect("closer panicked");
        worker.join().expect("worker panicked");
        let ran = started.load(Ordering::SeqCst);
        match outcome {
            Ok(()) => assert!(ran && accepted),
            Err(Error::Disconnected(_)) => assert!(!ran),
            Err(other) => panic!("unexpected error {other}"),
        }
        assert_eq!(
            worker_waiter.queued(),
            0,
            "serve leaves nothing queued behind"
        );
    });
}
