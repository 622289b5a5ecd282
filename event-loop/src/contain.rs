//! Containing panics on the threads that must survive them (a loop thread,
//! a worker): user code, a task or a tracing subscriber may panic, and the
//! thread carries on.
//!
//! Catching the panic is not enough: its payload is an arbitrary value that
//! is dropped afterwards, and a payload whose own `Drop` panics would raise
//! a second panic outside the `catch_unwind`. Every payload caught here is
//! therefore dropped under a second guard, and leaked if that drop panics
//! too.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`; returns `false` if it panicked (the panic, payload included, is
/// contained).
pub fn caught(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            discard_panic(payload);
            false
        }
    }
}

/// Drops a caught panic's payload without letting a panic in its `Drop`
/// escape: such a payload's remains are leaked instead.
pub fn discard_panic(payload: Box<dyn Any + Send>) {
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(second);
    }
}

/// The text of a caught panic: its `&str` or `String` payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A panic payload whose drop panics.
    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("deliberate: the payload's drop panics");
        }
    }

    #[test]
    fn a_payload_that_panics_as_it_drops_is_contained() {
        assert!(caught(|| {}));
        assert!(!caught(|| std::panic::panic_any(PanicsOnDrop)));
        let payload = catch_unwind(|| std::panic::panic_any(PanicsOnDrop)).expect_err("panics");
        discard_panic(payload);
    }
}
