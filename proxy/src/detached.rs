//! Methods without a `Context`: run on a pool of this process, never on the
//! loop thread.
//!
//! libmultiprocess runs a method that declares no `context` parameter on its
//! event-loop thread. User code must never run on ours (it may block, and
//! the loop serves every connection), so such a method runs on a thread of
//! a pool this process keeps for them, whether or not the peer asked for a
//! pool with `ThreadMap.makePool`. The pool grows by one thread whenever a
//! request finds every thread busy, up to [`MAX_THREADS`]; past that,
//! requests wait their turn. Its threads live as long as the process.

use multiprocess_event_loop::sync::OnceLock;
use multiprocess_event_loop::sync::channel::{Receiver, Sender, unbounded};
use multiprocess_event_loop::sync::global::{AtomicUsize, Ordering};
use multiprocess_event_loop::{Error, Result};
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// The most threads the pool starts. A contextless method that blocks (an
/// `interrupt` waiting for a lock, say) holds one; 64 of them at once is far
/// past any legitimate use and bounds what a peer can make us start.
pub const MAX_THREADS: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Sender<Job>,
    queue: Receiver<Job>,
    threads: AtomicUsize,
    idle: AtomicUsize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = unbounded();
        Pool {
            jobs,
            queue,
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        }
    })
}

impl Pool {
    fn submit(&'static self, job: Job) {
        if self.idle.load(Ordering::Acquire) == 0 {
            self.grow();
        }
        // The pool holds its own receiver, so the channel never closes.
        let _ = self.jobs.send(job);
    }

    fn grow(&'static self) {
        let started = self.threads.fetch_add(1, Ordering::AcqRel);
        if started >= MAX_THREADS {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let spawned = std::thread::Builder::new()
            .name(format!("mp-detached-{}", started + 1))
            .spawn(move || {
                loop {
                    self.idle.fetch_add(1, Ordering::AcqRel);
                    let job = self.queue.recv();
                    self.idle.fetch_sub(1, Ordering::AcqRel);
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if spawned.is_err() {
            // Out of threads: the jobs queued run on the threads there are.
            self.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Runs `job`, the implementation of `method` (which declares no
/// `Context`), on this process's pool for such methods, and returns a
/// future (for the loop) of its result, mapped as a served method's is: an
/// error or a panic becomes the method's failure for the caller.
pub fn run_detached<T, J>(
    method: &'static str,
    job: J,
) -> impl Future<Output = capnp::Result<T>> + 'static
where
    T: Send + 'static,
    J: FnOnce() -> Result<T> + Send + 'static,
{
    let (sender, receiver) = futures::channel::oneshot::channel();
    tracing::debug!(target: "multiprocess", method, "IPC server recv (no context: pool thread)");
    pool().submit(Box::new(move || {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(job));
        let _ = sender.send(outcome);
    }));
    async move {
        let result = match receiver.await {
            Ok(outcome) => Error::job_reply(method, outcome),
            Err(_) => Err(capnp::Error::failed(format!(
                "{method}: the pool thread ended before answering"
            ))),
        };
        tracing::debug!(target: "multiprocess", method, ok = result.is_ok(), "IPC server send (no context)");
        result
    }
}
