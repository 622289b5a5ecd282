//! A minimal executor for the `!Send` futures that live on the loop thread
//! (capnp-rpc's `RpcSystem`s, in-flight calls, served requests).
//!
//! Tasks sit in a slab owned by the loop thread. A task's waker may be used
//! from any thread: waking it puts the task's id in the [`Mailbox`] (once per
//! wake-up, thanks to the `scheduled` flag), which wakes the loop if it is
//! asleep in epoll. `futures`' `LocalPool` cannot serve here: it parks the
//! thread with `thread::park` and would never see socket readiness.
//!
//! [`Mailbox`]: crate::mailbox::Mailbox

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
// sync-facade: allow (std::task::Wake is only implemented for std's Arc)
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake as TaskWake, Waker};

use slab::Slab;

use crate::sync::{AtomicBool, Ordering};

/// A scheduler shared by every task waker.
pub(crate) type SchedulerArc = StdArc<dyn Schedule>;

/// Puts a task id on the loop's ready list (implemented by the mailbox).
pub(crate) trait Schedule: Send + Sync {
    fn schedule(&self, id: usize);
}

impl<W: crate::mailbox::Wake> Schedule for crate::mailbox::Mailbox<W> {
    fn schedule(&self, id: usize) {
        crate::mailbox::Mailbox::schedule(self, id);
    }
}

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

struct TaskWaker {
    id: usize,
    scheduled: AtomicBool,
    scheduler: StdArc<dyn Schedule>,
}

impl TaskWake for TaskWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.scheduler.schedule(self.id);
        }
    }
}

struct Task {
    future: Option<LocalFuture>,
    waker: StdArc<TaskWaker>,
}

/// The loop thread's tasks.
pub(crate) struct Executor {
    tasks: RefCell<Slab<Task>>,
    scheduler: StdArc<dyn Schedule>,
}

impl Executor {
    pub(crate) fn new(scheduler: StdArc<dyn Schedule>) -> Self {
        Self {
            tasks: RefCell::new(Slab::new()),
            scheduler,
        }
    }

    /// Adds a task and schedules its first poll.
    pub(crate) fn spawn(&self, future: LocalFuture) {
        let id = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let id = entry.key();
            let waker = StdArc::new(TaskWaker {
                id,
                scheduled: AtomicBool::new(true),
                scheduler: self.scheduler.clone(),
            });
            entry.insert(Task {
                future: Some(future),
                waker,
            });
            id
        };
        self.scheduler.schedule(id);
    }

    /// Polls task `id` once if it still exists. The future is taken out of
    /// the slab while it runs, so that it may spawn other tasks.
    pub(crate) fn poll(&self, id: usize) {
        let (mut future, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(task) = tasks.get_mut(id) else {
                return;
            };
            let Some(future) = task.future.take() else {
                return;
            };
            task.waker.scheduled.store(false, Ordering::Release);
            (future, task.waker.clone())
        };
        let std_waker = Waker::from(waker);
        let mut cx = Context::from_waker(&std_waker);
        // A task that panics (capnp-rpc has unwraps on paths a peer could
        // reach) is dropped alone: its connection closes, the loop and every
        // other connection carry on.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        match polled {
            Ok(Poll::Pending) => {
                if let Some(task) = self.tasks.borrow_mut().get_mut(id) {
                    task.future = Some(future);
                }
            }
            Ok(Poll::Ready(())) => {
                self.tasks.borrow_mut().try_remove(id);
                drop(future);
            }
            Err(payload) => {
                crate::contain::discard_panic(payload);
                report("a task on the event loop panicked; it was dropped");
                self.tasks.borrow_mut().try_remove(id);
                if !crate::contain::caught(move || drop(future)) {
                    report("dropping a panicked task panicked too");
                }
            }
        }
    }

    /// Number of live tasks.
    pub(crate) fn len(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Drops every task (at loop exit). Dropping a task may spawn or drop
    /// others, so this repeats until none is left.
    pub(crate) fn drop_all(&self) {
        loop {
            let drained: Vec<Task> = self.tasks.borrow_mut().drain().collect();
            if drained.is_empty() {
                return;
            }
            drop(drained);
        }
    }
}

/// Logs an error after a caught panic. The panic may have come from the
/// logging itself (a subscriber whose output is gone may panic on every
/// event), so a panic here is swallowed: it must not take the loop down.
pub(crate) fn report(message: &str) {
    crate::contain::caught(|| {
        tracing::error!(target: "multiprocess", "{message}");
    });
}
