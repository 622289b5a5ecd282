//! The event-loop thread of a multiprocess process.
//!
//! A multiprocess process has one **event-loop thread** that does all Cap'n
//! Proto I/O: it owns the sockets, capnp-rpc's `RpcSystem`s and every capnp
//! object. Other threads reach it through a [`LoopHandle`]: they
//! [`post`](LoopHandle::post) closures to it or [`sync`](LoopHandle::sync)
//! them. A thread that waits for a reply keeps running the work other threads
//! post to it, through its [`Waiter`].
//!
//! ```
//! use multiprocess_event_loop::EventLoop;
//!
//! let event_loop = EventLoop::start("my-loop")?;
//! let name = event_loop.sync(|| std::thread::current().name().unwrap().to_string())?;
//! assert_eq!(name, "my-loop");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces, one module each:
//! - `bounded`: how much of the text a peer sends we keep;
//! - `mailbox`: the queue of posted closures and woken tasks, and the
//!   wake-up protocol that avoids a system call when the loop is awake;
//! - `executor`: the loop's tasks (`!Send` futures);
//! - `io`: mio readiness and the async socket halves capnp-rpc reads and writes;
//! - `socket`: the sockets a connection runs over (Unix or TCP), and the
//!   listening sockets the loop accepts connections on;
//! - `event_loop`: the thread, its handles and its reference count;
//! - `waiter`: how a thread blocks for a reply and runs posted work meanwhile;
//! - `stack`: how deep a thread may nest requests inside its waits;
//! - `spin`: how long a thread with nothing to do yields before it sleeps;
//! - `placement`: where a new thread starts, where a sleeping thread wakes,
//!   and handing the CPU to a thread that spins on it;
//! - `sync`: the concurrency primitives, swapped for loom's under `cfg(loom)`.
//! - `timer`: futures that complete at a deadline, for the loop's tasks;
//! - `timeline`: timestamps at the steps of a call (the `timeline` feature).

pub mod bounded;
pub mod contain;
pub mod error;
mod event_loop;
mod executor;
mod io;
pub mod mailbox;
pub mod placement;
pub mod socket;
pub mod spin;
pub mod stack;
pub mod sync;
pub mod timeline;
mod timer;
pub mod waiter;

pub use error::{Error, Failure, Result};
pub use event_loop::{EventLoop, Expecting, LoopContext, LoopHandle, LoopPoster, on_a_loop_thread};
pub use io::{AsyncStream, ReadHalf, WriteHalf};
pub use socket::{AsyncListener, ListenSocket, Socket};
pub use timer::Sleep;
pub use waiter::{Reply, Slot, Waiter, dump_waiters};

/// The current thread's name, or `thread-<id>` for an unnamed thread.
pub fn thread_name() -> String {
    let current = std::thread::current();
    match current.name() {
        Some(name) => name.to_string(),
        None => format!("thread-{}", os_thread_id()),
    }
}

/// The OS id of the calling thread (`gettid`), asked of the kernel once
/// per thread.
pub fn os_thread_id() -> i64 {
    i64::from(os_tid())
}

/// [`os_thread_id`] in the kernel's own type.
pub(crate) fn os_tid() -> libc::pid_t {
    thread_local! {
        static TID: std::cell::Cell<libc::pid_t> = const { std::cell::Cell::new(0) };
    }
    TID.with(|tid| {
        if tid.get() == 0 {
            // SAFETY: gettid has no preconditions and cannot fail.
            tid.set(unsafe { libc::gettid() });
        }
        tid.get()
    })
}
