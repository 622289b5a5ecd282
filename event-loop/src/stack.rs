//! How deep a thread may nest requests inside its waits.
//!
//! # Why there is a limit
//!
//! A thread blocked in [`Waiter::wait`](crate::Waiter::wait) runs the jobs
//! posted to it meanwhile: that is how a callback runs on the thread that
//! waits for the call that made it, to any depth. Each job that itself makes
//! a call and waits nests one more wait on the same stack. A peer decides
//! how many requests it queues on a thread, so without a bound it decides
//! how deep the stack grows: pipelining a few thousand requests whose
//! callbacks it never answers overflows the stack, and a stack overflow
//! aborts the whole process.
//!
//! # What is measured, and why
//!
//! Before a request starts nested inside a wait, [`check_nesting`] measures
//! the stack the thread has left (the address of a local against the low
//! end of the thread's stack, which `pthread_getattr_np` reports once per
//! thread) and refuses the request if less than the margin
//! ([`set_nesting_stack_margin`], [`DEFAULT_NESTING_STACK_MARGIN`]) is left.
//! Measuring, rather than counting levels against a depth derived from the
//! stack size, is what holds whatever the frames cost: a level takes a few
//! kilobytes in a release build and several times that in a debug build,
//! a method may put large values on its stack, and an application thread
//! (which serves callbacks while it waits, like a worker) has whatever
//! stack its creator gave it, which the runtime does not know. The margin
//! only has to cover one level: the refused request's own glue, and the
//! method that runs at the deepest level the check allows.
//!
//! Where the stack cannot be measured (no `pthread_getattr_np`), the check
//! falls back to counting: at most [`FALLBACK_MAX_NESTING`] levels.
//!
//! A refused request fails with [`Error::NestingLimit`] for its caller; the
//! thread, the requests it is already running and the process carry on.
//! Only nested requests are checked: a request a worker runs from its idle
//! loop starts on an almost empty stack.

use std::cell::Cell;

use crate::error::{Error, Result};
use crate::sync::global::{AtomicUsize, Ordering};

/// The stack a thread must have left for a request to start nested inside
/// one of its waits, unless [`set_nesting_stack_margin`] says otherwise:
/// 256 KiB, several levels' worth in a debug build. A default worker
/// (2 MiB of stack) then runs about 1,900 levels in a release build and
/// about 650 in a debug one (measured by `testkit/tests/nesting_limits.rs`).
pub const DEFAULT_NESTING_STACK_MARGIN: usize = 256 * 1024;

/// How many requests may nest on a thread whose stack cannot be measured.
pub const FALLBACK_MAX_NESTING: usize = 64;

static MARGIN: AtomicUsize = AtomicUsize::new(DEFAULT_NESTING_STACK_MARGIN);

/// Sets the stack a thread must have left for a request to start nested
/// inside one of its waits (see [`check_nesting`]). To let threads nest
/// deeper, give them more stack (`set_worker_stack_size` for workers), or,
/// if the methods they run use little stack, lower the margin.
pub fn set_nesting_stack_margin(bytes: usize) {
    MARGIN.store(bytes, Ordering::Relaxed);
}

/// The margin [`set_nesting_stack_margin`] set.
pub fn nesting_stack_margin() -> usize {
    MARGIN.load(Ordering::Relaxed)
}

thread_local! {
    /// Jobs this thread is running inside its waits, outermost first.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The low end of this thread's stack: 0 until asked for, `usize::MAX`
    /// if it cannot be known.
    static LOW: Cell<usize> = const { Cell::new(0) };
}

/// How many jobs the calling thread is running nested inside its waits
/// (0 while it runs none, or runs a request from a worker's idle loop).
pub fn nesting_depth() -> usize {
    DEPTH.with(Cell::get)
}

/// Counts a job as running inside a wait until dropped (`Waiter::wait`).
pub(crate) struct Nested(());

impl Nested {
    pub(crate) fn enter() -> Self {
        DEPTH.with(|depth| depth.set(depth.get() + 1));
        Self(())
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// The bytes of stack the calling thread has left below this call, or
/// `None` if its stack's bounds cannot be known.
pub fn remaining_stack() -> Option<usize> {
    let low = LOW.with(|low| {
        if low.get() == 0 {
            low.set(stack_low().unwrap_or(usize::MAX));
        }
        low.get()
    });
    if low == usize::MAX {
        return None;
    }
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    Some(here.saturating_sub(low))
}

/// The lowest address of the calling thread's stack (above its guard page).
#[cfg(all(target_os = "linux", not(loom)))]
fn stack_low() -> Option<usize> {
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read
    // and destroyed exactly once; the out-pointers point to locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (got == 0 && !addr.is_null()).then_some(addr as usize)
    }
}

/// Under loom (threads are not OS threads) or off Linux: unknown, so the
/// depth is counted instead.
#[cfg(any(not(target_os = "linux"), loom))]
fn stack_low() -> Option<usize> {
    None
}

/// Whether the calling thread may start `what` (a request) now: always at
/// the top level; nested inside one of its waits, only while it has at
/// least [`nesting_stack_margin`] of stack left. Otherwise an
/// [`Error::NestingLimit`] that says how deep the thread is and how to let
/// it go deeper, for the request's caller.
pub fn check_nesting(what: &str) -> Result<()> {
    check_nesting_with(what, nesting_stack_margin())
}

fn check_nesting_with(what: &str, margin: usize) -> Result<()> {
    let depth = nesting_depth();
    if depth == 0 {
        return Ok(());
    }
    match remaining_stack() {
        Some(left) if left >= margin => Ok(()),
        Some(left) => Err(Error::NestingLimit(format!(
            "{what} refused: it would run nested {depth} deep in {} with {} KiB of stack left (at least {} KiB needed; give the thread more stack)",
            crate::Waiter::current().name(),
            left / 1024,
            margin / 1024,
        ))),
        None if depth < FALLBACK_MAX_NESTING => Ok(()),
        None => Err(Error::NestingLimit(format!(
            "{what} refused: it would run nested {depth} deep in {} (at most {FALLBACK_MAX_NESTING} where the stack cannot be measured)",
            crate::Waiter::current().name(),
        ))),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_stack_shrinks_as_the_stack_grows() {
        fn deeper(levels: usize) -> usize {
            let pad = std::hint::black_box([0u8; 4096]);
            let left = if levels == 0 {
                remaining_stack().expect("measurable on Linux")
            } else {
                deeper(levels - 1)
            };
            left + usize::from(pad[0])
        }
        let top = remaining_stack().expect("measurable on Linux");
        let deep = deeper(8);
        assert!(
            top - deep >= 8 * 4096,
            "8 frames of 4 KiB used {} bytes",
            top - deep
        );
    }

    #[test]
    fn a_thread_is_refused_only_when_nested_and_short_of_stack() {
        let stack = 512 * 1024;
        let refused = std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                // glibc may hand the thread a cached stack bigger than
                // asked for: compare with what is left, not with `stack`.
                let left = remaining_stack().expect("measurable on Linux");
                assert!(
                    check_nesting_with("top level", usize::MAX).is_ok(),
                    "not nested: never refused"
                );
                let _nested = Nested::enter();
                assert_eq!(nesting_depth(), 1);
                // Ample room: a margin far below what is left.
                let ok = check_nesting_with("roomy", left / 4);
                // Too little room: a margin above what is left (the check
                // runs deeper than `left` was measured).
                let refused = check_nesting_with("cramped", left + 1);
                (ok, refused)
            })
            .expect("spawn")
            .join()
            .expect("join");
        assert!(refused.0.is_ok(), "{:?}", refused.0);
        match refused.1 {
            Err(Error::NestingLimit(message)) => {
                assert!(message.contains("nested 1 deep"), "{message}")
            }
            other => panic!("expected a nesting limit, got {other:?}"),
        }
    }
}
