//! A capability of the peer whose interface declares `destroy @0 (context)`
//! (the example's `Calculator` and `Printer`), owned by this process: it is
//! destroyed, on the peer's worker mapped to the calling thread, by an
//! explicit [`Owned::destroy`] (which reports failure) or when dropped (which
//! cannot; dropped on the loop thread or while panicking, it is only
//! released).

use multiprocess_thread_map::{DestroyFn, Error, RemoteObject, Result};

/// A remote object destroyed with its interface's `destroy` method.
pub struct Owned<C: Clone + 'static> {
    object: Option<RemoteObject<C>>,
    method: &'static str,
    destroy: DestroyFn<C>,
}

impl<C: Clone + 'static> Owned<C> {
    /// Wraps `object`; `destroy` sends its `destroy` request (traced as
    /// `method`).
    pub fn new(object: RemoteObject<C>, method: &'static str, destroy: DestroyFn<C>) -> Self {
        Self {
            object: Some(object),
            method,
            destroy,
        }
    }

    /// The object, to call its methods.
    pub fn object(&self) -> Result<&RemoteObject<C>> {
        self.object
            .as_ref()
            .ok_or_else(|| Error::Remote(format!("{}: already destroyed", self.method)))
    }

    /// Destroys the peer's object now (a blocking call) and releases it.
    pub fn destroy(mut self) -> Result<()> {
        match self.object.take() {
            Some(object) => object.call(self.method, self.destroy),
            None => Ok(()),
        }
    }
}

impl<C: Clone + 'static> std::fmt::Debug for Owned<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owned")
            .field("object", &self.object)
            .field("destroy", &self.method)
            .finish()
    }
}

impl<C: Clone + 'static> Drop for Owned<C> {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        // The loop thread cannot wait for a reply, and a thread unwinding
        // from a panic should not block on the peer: there it is only
        // released.
        if object.connection().event_loop().is_loop_thread() || std::thread::panicking() {
            return;
        }
        if let Err(e) = object.call(self.method, self.destroy) {
            tracing::debug!(target: "multiprocess", method = self.method, "destroy failed, releasing: {e}");
        }
    }
}
