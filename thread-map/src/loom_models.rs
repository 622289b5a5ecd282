//! Loom models of the thread-map hand-offs that need private items (the
//! worker lifecycle). Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p multiprocess-thread-map --release --lib`.
//!
//! They drive the real [`Worker`]: `Worker::spawn` starts a loom thread
//! running `Waiter::serve`, `Worker::post` queues on its Waiter, and dropping
//! the `Worker` runs `Worker::shutdown`, which joins the thread at once if it
//! is idle and otherwise leaves the join to the job the worker hands its
//! [`Reaper`] when it stops serving. In production the reaper posts that job
//! to the event loop; here it hands it to a [`StandInLoop`], a queue that the
//! model's main thread (standing in for the loop thread, which owns and drops
//! workers) runs.
//!
//! Other threads post to a worker through its Waiter (`Worker::waiter`):
//! `Worker::post` is exactly `self.waiter.post(job)`, and the `Worker` itself
//! stays on the loop thread, which drops it, as in production (loom has no
//! scoped threads to lend it out).
//!
//! Waiters are made with `Waiter::new` or taken from the worker, never with
//! `Waiter::current()`: that is a std `thread_local!`, and loom runs all its
//! threads on one OS thread.
//!
//! Each model can fail (see `loom-tests/README.md` for the commands):
//! `--cfg loom_broken_worker` makes `Worker::shutdown` join a busy worker,
//! and both release models deadlock; `--cfg loom_broken_reply` makes a
//! dropped `Reply` skip the wake-up, and the racing release model deadlocks;
//! `--cfg loom_broken_fifo` makes a waiting thread run the newest job first,
//! and the busy-worker FIFO model sees job3 before job2.

use std::cell::Cell;
use std::collections::VecDeque;

use multiprocess_event_loop::mailbox::Job;
use multiprocess_event_loop::{Error, Reply, Result, Slot, Waiter};

use crate::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering, thread};
use crate::worker::{Reaper, Worker};

thread_local! {
    // Whether a model is running on this OS thread (all of loom's threads).
    static IN_MODEL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` under loom, bounding preemptions to 2 unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise (as `loom_tests::model` does).
fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            IN_MODEL.with(|in_model| in_model.set(false));
        }
    }
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    IN_MODEL.with(|in_model| in_model.set(true));
    let _running = Running;
    builder.check(f);
}

/// A [`Reply`] that is dropped as usual (delivering its `on_drop` error)
/// while a model runs, and leaked instead when its thread unwinds or after
/// the model: after a deadlock report loom unwinds every blocked thread, and
/// a `Reply` dropped then would take a loom lock outside any execution, a
/// second panic that aborts the test binary and hides the report.
struct ModelReply<T>(Option<Reply<T>>);

impl<T> ModelReply<T> {
    fn send(mut self, value: Result<T>) {
        if let Some(reply) = self.0.take() {
            reply.send(value);
        }
    }
}

impl<T> Drop for ModelReply<T> {
    fn drop(&mut self) {
        if std::thread::panicking() || !IN_MODEL.with(Cell::get) {
            std::mem::forget(self.0.take());
        }
    }
}

/// `waiter.reply_slot(on_drop)`, with the reply wrapped in [`ModelReply`].
fn reply_slot<T>(waiter: &Arc<Waiter>, on_drop: &str) -> (Arc<Slot<Result<T>>>, ModelReply<T>) {
    let (slot, reply) = waiter.reply_slot(Error::Disconnected(on_drop.to_string()));
    (slot, ModelReply(Some(reply)))
}

fn waiting_for(what: &'static str) -> impl Fn() -> String {
    move || what.to_string()
}

/// What was posted to the stand-in loop.
enum Kind {
    /// A closure a request sends to the loop, as an outgoing call does.
    Call,
    /// A worker's own join, handed over by its [`Reaper`].
    Reap,
}

/// Stands in for the event loop as far as workers are concerned: a FIFO of
/// jobs that the model's main thread runs, blocking while it is empty.
struct StandInLoop {
    queue: Mutex<VecDeque<(Kind, Job)>>,
    cv: Condvar,
}

impl StandInLoop {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
        })
    }

    fn post(&self, kind: Kind, job: Job) {
        self.queue.lock().push_back((kind, job));
        self.cv.notify_one();
    }

    /// The reaper a worker hands its join to: like the loop's `post`, minus
    /// the refusal once the loop has shut down.
    fn reaper(self: &Arc<Self>) -> Reaper {
        let event_loop = self.clone();
        Box::new(move |job| event_loop.post(Kind::Reap, job))
    }

    /// Runs what is posted, in order, until it has run a worker's reap job.
    fn run_until_reaped(&self) {
        loop {
            let (kind, job) = {
                let mut queue = self.queue.lock();
                loop {
                    if let Some(entry) = queue.pop_front() {
                        break entry;
                    }
                    queue = self.cv.wait(queue);
                }
            };
            job();
            if let Kind::Reap = kind {
                return;
            }
        }
    }

    /// Runs what is queued now, without blocking (a loop turn before the
    /// next event).
    fn run_queued(&self) {
        loop {
            let entry = self.queue.lock().pop_front();
            match entry {
                Some((_, job)) => job(),
                None => return,
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }
}

fn spawn_worker(event_loop: &Arc<StandInLoop>) -> Worker {
    Worker::spawn(
        "worker-1 (from model)".into(),
        "mp-worker-1".to_string(),
        event_loop.reaper(),
        None,
    )
    .expect("spawning a loom thread cannot fail")
}

/// A request that makes an outgoing call through the loop (a callback to its
/// client, say) and waits for the answer on the worker's Waiter, then
/// replies `answer + 1` to its caller.
fn calling_request(
    event_loop: &Arc<StandInLoop>,
    worker_waiter: &Arc<Waiter>,
    ran: &Arc<AtomicBool>,
    reply: ModelReply<u32>,
) -> Job {
    let (event_loop, worker_waiter, ran) = (event_loop.clone(), worker_waiter.clone(), ran.clone());
    Box::new(move || {
        ran.store(true, Ordering::SeqCst);
        let (call_slot, call_reply) = reply_slot::<u32>(&worker_waiter, "call dropped");
        event_loop.post(Kind::Call, Box::new(move || call_reply.send(Ok(1))));
        let answer = worker_waiter
            .wait(&call_slot, waiting_for("the loop to answer the call"))
            .expect("the stand-in loop answers every call");
        reply.send(Ok(answer + 1));
    })
}

/// (c) The loop thread drops a worker while another thread posts a request to
/// it. The request either runs (its caller gets `Ok`) or is refused or
/// dropped at close (its caller gets the `Reply`'s `on_drop` error): exactly
/// one outcome, and the caller always wakes. The worker thread is joined
/// exactly once: by the drop if the worker was idle, else by the job it hands
/// the loop once its request is over; the join slot ends empty and exactly
/// one reap job reaches the loop. The request makes an outgoing call through
/// the loop, so a drop that joined a busy worker would deadlock here.
///
/// Why it holds: `post`, `close` and the worker's take-a-job step happen
/// under the Waiter's lock, so a request is queued before the close (and
/// then run, or dropped by `serve` at close) or refused after it; a job is
/// moved, never copied, so its `Reply` delivers once, by `send` or by `Drop`.
/// `close` reports idle only if no request is running, and the worker's
/// serve loop returns without running another once closed, so the drop joins
/// only a thread that is leaving. The handle is `take`n from its slot under a
/// lock by whichever path gets there first; `serve` always returns after
/// `close`, so the reap job is always handed over, exactly once.
#[test]
fn releasing_a_worker_racing_a_request_runs_or_fails_it_and_joins_once() {
    model(|| {
        let event_loop = StandInLoop::new();
        let worker = spawn_worker(&event_loop);
        let join_slot = worker.join_slot();
        let ran = Arc::new(AtomicBool::new(false));

        let poster = {
            let (event_loop, worker_waiter, ran) =
                (event_loop.clone(), worker.waiter().clone(), ran.clone());
            thread::spawn(move || {
                let caller = Waiter::new("caller");
                let (slot, reply) = reply_slot::<u32>(&caller, "worker released");
                let request = calling_request(&event_loop, &worker_waiter, &ran, reply);
                // A refused request comes back here and is dropped, and with
                // it its Reply.
                let accepted = worker_waiter.post(request).is_ok();
                (accepted, caller.wait(&slot, waiting_for("the worker")))
            })
        };

        // A loop turn (which may answer the request's call), then the
        // release, as when the peer drops its `Thread` capability.
        event_loop.run_queued();
        drop(worker);
        let joined_by_release = join_slot.lock().is_none();
        event_loop.run_until_reaped();
        assert!(
            join_slot.lock().is_none(),
            "the worker thread was joined, by the release or by its reap job"
        );
        assert!(
            event_loop.is_empty(),
            "exactly one reap job, and no call after it"
        );

        let (accepted, outcome) = poster.join().expect("poster panicked");
        let ran = ran.load(Ordering::SeqCst);
        match outcome {
            Ok(answer) => {
                assert_eq!(answer, 2);
                assert!(accepted && ran);
            }
            Err(Error::Disconnected(message)) => {
                assert_eq!(message, "worker released");
                assert!(!ran, "a request that ran must reply itself");
            }
            Err(other) => panic!("unexpected error {other}"),
        }
        if !accepted {
            assert!(joined_by_release, "a refused post means close came first");
        }
    });
}

/// (c) The busy case: the loop thread drops a worker while it runs a long
/// request, one that waits for an answer the loop sends only after the drop.
/// The drop must not join (the worker still runs user code that needs the
/// loop); the worker, once the request ends, hands its join to the loop,
/// whose reap job joins it. A request queued behind the long one runs (in
/// the long one's nested wait) or is dropped at close: its caller hears
/// exactly one outcome.
///
/// Why it holds: `close` sees `busy` set (the worker took the request under
/// the Waiter's lock, and the model waits until it has started) and returns
/// false, so `shutdown` leaves the handle in its slot; the worker's `serve`
/// returns after the request because `closed` is set, and the thread then
/// hands `reap` to its reaper. `--cfg loom_broken_worker` joins here anyway
/// and this model deadlocks: the loop blocks in the join, the worker in its
/// wait for the loop.
#[test]
fn a_busy_worker_released_is_joined_by_its_reap_job_not_by_the_release() {
    model(|| {
        let event_loop = StandInLoop::new();
        let worker = spawn_worker(&event_loop);
        let join_slot = worker.join_slot();
        let worker_waiter = worker.waiter().clone();
        let loop_waiter = Waiter::new("loop");

        let (started_slot, started) = reply_slot::<()>(&loop_waiter, "never started");
        let (call_slot, call_reply) = reply_slot::<u32>(&worker_waiter, "call dropped");
        let (done_slot, done) = reply_slot::<u32>(&loop_waiter, "long request dropped");
        let long_request = {
            let worker_waiter = worker_waiter.clone();
            move || {
                started.send(Ok(()));
                let answer = worker_waiter.wait(&call_slot, waiting_for("the loop"));
                done.send(answer);
            }
        };
        assert!(worker.post(Box::new(long_request)).is_ok());
        loop_waiter
            .wait(&started_slot, waiting_for("the long request to start"))
            .expect("the long request starts");

        let (queued_slot, queued_reply) = reply_slot::<()>(&loop_waiter, "worker released");
        assert!(
            worker
                .post(Box::new(move || queued_reply.send(Ok(()))))
                .is_ok()
        );

        drop(worker);
        assert!(
            join_slot.lock().is_some(),
            "the release must not join a worker that runs a request"
        );
        call_reply.send(Ok(5));
        event_loop.run_until_reaped();
        assert!(join_slot.lock().is_none(), "the reap job joined the worker");
        assert!(event_loop.is_empty(), "exactly one reap job");

        assert_eq!(
            loop_waiter
                .wait(&done_slot, waiting_for("the long request"))
                .expect("the long request ran to its end"),
            5
        );
        match loop_waiter.wait(&queued_slot, waiting_for("the queued request")) {
            // It ran inside the long request's wait, before or after close.
            Ok(()) => {}
            Err(Error::Disconnected(message)) => assert_eq!(message, "worker released"),
            Err(other) => panic!("unexpected error {other}"),
        }
    });
}

/// (g) A busy worker runs job1, which makes an outgoing call and waits for
/// its reply on the worker's Waiter; meanwhile another thread posts job2 and
/// then job3 to the worker; the reply to job1's call is sent only once job3
/// has run. job2 and job3 run on the worker thread, in that order, inside
/// job1's wait; job1 then gets its reply and completes; nothing deadlocks.
/// Released afterwards, the worker is joined exactly once.
///
/// Why it holds: `wait` runs the jobs queued on its Waiter while its slot is
/// empty, in FIFO order (they are queued and popped under one lock), and it
/// sleeps only when the queue is empty and `notified` is clear, so a job
/// posted while it sleeps wakes it (`post` notifies after queueing). Job1's
/// reply goes to job1's own slot, so neither job2 nor job3 can take it, and
/// `wait` looks at the slot after every job, so the reply is seen once sent.
#[test]
fn requests_for_a_busy_worker_run_in_order_inside_its_nested_wait() {
    model(|| {
        let event_loop = StandInLoop::new();
        let worker = spawn_worker(&event_loop);
        let join_slot = worker.join_slot();
        let worker_waiter = worker.waiter().clone();
        let loop_waiter = Waiter::new("loop");
        let log: Arc<Mutex<Vec<&'static str>>> = Arc::new(Mutex::new(Vec::new()));
        let in_call = Arc::new(AtomicBool::new(false));
        let worker_thread = Arc::new(Mutex::new(None));

        let (call_slot, call_reply) = reply_slot::<u32>(&worker_waiter, "call dropped");
        let (job1_slot, job1_done) = reply_slot::<u32>(&loop_waiter, "job1 dropped");
        let job1 = {
            let (worker_waiter, log, in_call, worker_thread) = (
                worker_waiter.clone(),
                log.clone(),
                in_call.clone(),
                worker_thread.clone(),
            );
            move || {
                *worker_thread.lock() = Some(thread::current().id());
                log.lock().push("job1 calls");
                in_call.store(true, Ordering::SeqCst);
                let answer = worker_waiter.wait(&call_slot, waiting_for("job1's call"));
                in_call.store(false, Ordering::SeqCst);
                log.lock().push("job1 returns");
                job1_done.send(answer);
            }
        };
        assert!(worker.post(Box::new(job1)).is_ok());

        let (job3_slot, job3_ran) = reply_slot::<()>(&loop_waiter, "job3 dropped");
        let poster = {
            let (worker_waiter, log, in_call, worker_thread) = (
                worker_waiter.clone(),
                log.clone(),
                in_call.clone(),
                worker_thread.clone(),
            );
            thread::spawn(move || {
                let nested = move |name: &'static str| {
                    let (log, in_call, worker_thread) =
                        (log.clone(), in_call.clone(), worker_thread.clone());
                    move || {
                        assert_eq!(
                            Some(thread::current().id()),
                            *worker_thread.lock(),
                            "{name} runs on the worker thread"
                        );
                        assert!(
                            in_call.load(Ordering::SeqCst),
                            "{name} runs inside job1's wait"
                        );
                        log.lock().push(name);
                    }
                };
                let job2 = nested("job2");
                let job3 = nested("job3");
                assert!(worker_waiter.post(Box::new(job2)).is_ok());
                assert!(
                    worker_waiter
                        .post(Box::new(move || {
                            job3();
                            job3_ran.send(Ok(()));
                        }))
                        .is_ok()
                );
            })
        };

        loop_waiter
            .wait(&job3_slot, waiting_for("job3"))
            .expect("job3 ran");
        call_reply.send(Ok(7));
        let answer: Result<u32> = loop_waiter.wait(&job1_slot, waiting_for("job1"));
        assert_eq!(answer.expect("job1 got its reply"), 7);
        poster.join().expect("poster panicked");
        assert_eq!(
            *log.lock(),
            ["job1 calls", "job2", "job3", "job1 returns"],
            "FIFO, nested inside job1's wait"
        );

        drop(worker);
        event_loop.run_until_reaped();
        assert!(join_slot.lock().is_none(), "the worker thread was joined");
        assert!(event_loop.is_empty(), "exactly one reap job");
    });
}

/// The shape of `multiprocess_callbacks::Closure`.
// sync-facade: allow (a `Closure` is std's Arc<dyn Fn>: public API)
type StdClosure = std::sync::Arc<dyn Fn(u32) -> u32 + Send + Sync>;

/// Records, when dropped, whether it was dropped on the stand-in loop thread.
struct DropProbe {
    loop_thread: thread::ThreadId,
    drops: Arc<Mutex<Vec<bool>>>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        let on_loop = thread::current().id() == self.loop_thread;
        self.drops.lock().push(on_loop);
    }
}

/// (f) A callback's last handles dropped on one thread while another thread
/// invokes it: the loop drops the closure server's reference, which hands
/// the closure to the cleanup worker (as `drop_off_loop` does), while the
/// thread running the callback still holds its own reference.
///
/// Property: the invocation sees a live closure, and the closure is dropped
/// exactly once, after the invocation, and never on the loop thread.
///
/// Why it holds: the closure is reference-counted and each holder drops its
/// reference on its own thread; the loop never drops its reference itself but
/// posts it to the cleanup worker, whose `serve` runs (or, once closed,
/// drops) the job on the worker thread. Closing the worker joins it when it
/// is idle and otherwise hands its join to the loop, never dropping the
/// queued job on the closing thread.
#[test]
fn a_callback_dropped_on_one_thread_while_another_invokes_it() {
    model(|| {
        let event_loop = StandInLoop::new();
        let drops = Arc::new(Mutex::new(Vec::new()));
        let probe = DropProbe {
            loop_thread: thread::current().id(),
            drops: drops.clone(),
        };
        // sync-facade: allow (a `Closure` is std's Arc<dyn Fn>: public API)
        let closure: StdClosure = std::sync::Arc::new(move |x| {
            let _ = &probe;
            x + 1
        });
        let invoking = closure.clone();
        let invoker = thread::spawn(move || {
            let answer = invoking(41);
            drop(invoking);
            answer
        });
        // The loop releases the closure server: its reference goes to the
        // cleanup worker.
        let cleanup = Worker::spawn_cleanup(
            "cleanup (model)".into(),
            "mp-cleanup".to_string(),
            event_loop.reaper(),
        )
        .expect("spawning a loom thread cannot fail");
        let server_reference = closure;
        if cleanup
            .post(Box::new(move || drop(server_reference)))
            .is_err()
        {
            panic!("the cleanup worker refused a job while open");
        }
        drop(cleanup);
        assert_eq!(
            invoker.join().expect("invoker"),
            42,
            "the invocation saw a live closure"
        );
        event_loop.run_until_reaped();
        let drops = drops.lock();
        assert_eq!(drops.len(), 1, "dropped exactly once");
        assert!(!drops[0], "dropped on the loop thread");
    });
}

/// A connection closing while a listener registers its close counter, with
/// a thread waiting for one close: the close is counted exactly once,
/// whichever goes first, and the waiter always wakes. (A `count_close_in`
/// that only registers, without looking whether the connection has closed
/// already, leaves the waiter blocked: loom reports the deadlock.)
#[test]
fn a_close_is_counted_once_whether_it_comes_before_or_after_registration() {
    use crate::connection::{CloseCounter, ConnStatus};
    model(|| {
        let status = Arc::new(ConnStatus::new());
        let counter = Arc::new(CloseCounter::default());
        let closing = {
            let status = status.clone();
            thread::spawn(move || status.set(Error::Disconnected("closed".to_string())))
        };
        let waiting = {
            let counter = counter.clone();
            thread::spawn(move || counter.wait_beyond(0, None))
        };
        status.count_close_in(counter.clone());
        closing.join().expect("closing thread");
        assert!(
            waiting.join().expect("waiting thread"),
            "the waiter saw the close"
        );
        assert_eq!(counter.closed(), 1, "counted once");
    });
}
