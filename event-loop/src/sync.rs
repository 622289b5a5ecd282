//! The one place the runtime gets its concurrency primitives from.
//!
//! Under `cfg(loom)` these are loom's model-checked versions; otherwise they
//! are parking_lot's locks and std's atomics and threads, adapted to one
//! std-shaped API: `lock()` never fails (no poisoning) and `Condvar::wait`
//! takes and returns the guard by value. Every other file in the runtime
//! imports from here, never from `std::sync`, `parking_lot` or
//! `crossbeam_channel` directly (`.ci/check-sync-facade` enforces it), so the
//! loom models exercise exactly the code that ships.

#[cfg(not(loom))]
mod imp {
    pub use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub use std::sync::{Arc, OnceLock, Weak};
    pub use std::thread;

    /// A mutual-exclusion lock (parking_lot's, without poisoning).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(parking_lot::Mutex<T>);

    /// The guard of a locked [`Mutex`].
    pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value`.
        pub const fn new(value: T) -> Self {
            Self(parking_lot::const_mutex(value))
        }

        /// Locks, blocking until the lock is free.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub const fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        /// Unlocks, waits for a notification, and locks again.
        pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Like [`wait`](Self::wait), but gives up after `timeout`.
        pub fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: std::time::Duration,
        ) -> MutexGuard<'a, T> {
            let _ = self.0.wait_for(&mut guard, timeout);
            guard
        }

        /// Wakes one waiting thread.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wakes every waiting thread.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// Multi-producer channels (crossbeam's).
    pub mod channel {
        pub use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, unbounded};
    }
}

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub use loom::thread;
    // std's `Arc` even under loom: loom's cannot be a method receiver
    // (`self: &Arc<Self>` in `waiter.rs`) on stable Rust and has no `Weak`.
    // Reference counts are not what the models check; the locks, condition
    // variables and threads they hand off through are all loom's.
    pub use std::sync::{Arc, Weak};

    /// A mutual-exclusion lock (loom's, without poisoning).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of a locked [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value`.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        /// Locks, blocking until the lock is free.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            match self.0.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        }
    }

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        /// Unlocks, waits for a notification, and locks again.
        pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            match self.0.wait(guard) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        }

        /// Like [`wait`](Self::wait), but gives up after `timeout`.
        pub fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: std::time::Duration,
        ) -> MutexGuard<'a, T> {
            match self.0.wait_timeout(guard, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            }
        }

        /// Wakes one waiting thread.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wakes every waiting thread.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// A lazily initialised value (a lock-based stand-in for std's `OnceLock`).
    #[derive(Debug, Default)]
    pub struct OnceLock<T>(loom::sync::Mutex<Option<T>>);

    impl<T: Clone> OnceLock<T> {
        /// An empty cell.
        pub fn new() -> Self {
            Self(loom::sync::Mutex::new(None))
        }
    }

    /// Multi-producer channels (loom's mpsc: crossbeam has no loom model).
    pub mod channel {
        pub use loom::sync::mpsc::{Receiver, Sender, channel as unbounded};
    }
}

pub use imp::*;

impl Condvar {
    /// Waits for a notification until `deadline` (`None`: for as long as it
    /// takes). `Err` gives the guard back without waiting once the deadline
    /// has passed; a caller loops on its condition around this.
    pub fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<std::time::Instant>,
    ) -> Result<MutexGuard<'a, T>, MutexGuard<'a, T>> {
        match deadline {
            None => Ok(self.wait(guard)),
            Some(deadline) => match deadline.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Ok(self.wait_timeout(guard, left)),
                _ => Err(guard),
            },
        }
    }
}

/// Atomics that take part in no hand-off a model checks, always std's:
/// process-wide statics (ids, counters, configuration: loom's atomics cannot
/// initialise a `static`), and per-object hints that no correctness argument
/// rests on (the CPU a thread spins on, a worker's load for pool dispatch:
/// a stale value costs speed, never a lost wake-up or a wrong answer).
pub mod global {
    pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
}
