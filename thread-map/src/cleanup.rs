//! Destructors off the loop thread.
//!
//! A closure or object a peer releases is dropped by capnp-rpc on the loop
//! thread. Its destructor may block or make calls of its own, which would
//! stall or deadlock the loop, so the runtime moves such values to the loop's
//! cleanup thread (a worker started on first use) and drops them there.

use multiprocess_event_loop::timeline::{self, Step};

use crate::loop_state;

/// Drops `value` off the loop thread: on the loop's cleanup thread if called
/// on a loop thread, here otherwise.
pub fn drop_off_loop<T: Send + 'static>(value: T) {
    if !multiprocess_event_loop::on_a_loop_thread() {
        drop(value);
        return;
    }
    timeline::mark(Step::DroppedOffLoop);
    loop_state::with(|state| state.on_cleanup_thread(Box::new(move || drop(value))));
}

/// A value that is dropped off the loop thread (see [`drop_off_loop`]).
#[derive(Debug)]
pub struct OffLoop<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffLoop<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// The value, unless it was taken.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }

    /// Takes the value out (to drop it on the calling thread instead).
    pub fn take(&mut self) -> Option<T> {
        self.0.take()
    }
}

impl<T: Send + 'static> Drop for OffLoop<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            drop_off_loop(value);
        }
    }
}

/// The implementation behind a served interface object, shared by its
/// requests, whose destruction the runtime controls: an interface's
/// `destroy` method [`take`](Self::take)s it on the worker thread mapped to
/// the caller, and if the object is released without `destroy` (the
/// connection died, or the interface has none) it is dropped off the loop
/// thread: the slot holds it in an [`OffLoop`], dropped once, by whichever
/// clone of the slot goes last.
pub struct ObjectSlot<T: ?Sized + Send + Sync + 'static>(
    crate::sync::Arc<crate::sync::Mutex<OffLoop<crate::sync::Arc<T>>>>,
);

impl<T: ?Sized + Send + Sync + 'static> Clone for ObjectSlot<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + Sync + 'static> ObjectSlot<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Self {
        Self::from_arc(crate::sync::Arc::new(value))
    }
}

impl<T: ?Sized + Send + Sync + 'static> ObjectSlot<T> {
    /// Holds the shared `value` (a trait object, say).
    pub fn from_arc(value: crate::sync::Arc<T>) -> Self {
        Self(crate::sync::Arc::new(crate::sync::Mutex::new(
            OffLoop::new(value),
        )))
    }

    /// The implementation, unless it was destroyed.
    pub fn get(&self) -> crate::Result<crate::sync::Arc<T>> {
        self.0
            .lock()
            .get()
            .cloned()
            .ok_or_else(|| crate::Error::failed("the object was destroyed"))
    }

    /// Takes the implementation out (to destroy it on the calling thread).
    pub fn take(&self) -> Option<crate::sync::Arc<T>> {
        self.0.lock().take()
    }
}
