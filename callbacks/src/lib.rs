//! Closures passed across processes.
//!
//! A Rust closure passed to another process becomes a capability there: a
//! [`Callback`] handle, `Send + Sync + Clone`, that makes a blocking call
//! back when invoked. Where the call back runs is what makes this runtime
//! worth having:
//!
//! ```text
//!   process A                                   process B
//!   T: probe.call_fn(|x| x + 1, 41) ───────────▶ W (T's worker) runs call_fn
//!   T: blocked, runs posted jobs   ◀── fn(41) ── W: callback.call(41)
//!   T: runs the closure, on T,                    W: blocked, runs posted jobs
//!      with T's stack, thread-locals, locks  ─▶ (a call from the closure
//!                                                  back to B runs on W)
//! ```
//!
//! While B's worker W serves a call from A's thread T, it holds T's
//! `Context.callbackThread`; a call W makes back to A names that thread as
//! `Context.thread`, so it runs on T, which is blocked in its call and runs
//! the jobs posted to it. A call made from inside the closure back to B
//! likewise runs on W. Nesting goes to any depth with no new thread.
//!
//! A callback invoked later by a thread of B that serves no call (a timer, a
//! notification thread) runs instead on a worker B asks A's `ThreadMap` for,
//! one per invoking thread, freed when that thread exits.
//!
//! # Wire shape
//!
//! A closure type is a capnp interface whose method takes
//! `context :Proxy.Context` first, as libmultiprocess declares a
//! `std::function` (`interface IntFn { call @0 (context :Proxy.Context, arg
//! :Int32) -> (result :Int32); }`), so a C++ `std::function` and a Rust
//! closure are interchangeable on the wire. [`CallbackInterface`] ties such
//! an interface to Rust types (generated proxies will implement it).
//!
//! # Lifetimes
//!
//! Dropping the last `Callback` handle releases the capability; the owning
//! process then drops the closure on its cleanup thread, never on its loop
//! thread (a closure's destructor may block or make calls). No round trip is
//! spent on it.

use std::future::Future;
use std::pin::Pin;
// sync-facade: allow (closures are public API: users build them with std's Arc)
use std::sync::Arc;

use multiprocess_thread_map::{CallContext, OffLoop, RemoteObject, Result, ServeContext};

/// The response future [`CallbackInterface::call`] returns (loop thread).
pub type ResultFuture<R> = Pin<Box<dyn Future<Output = capnp::Result<R>> + 'static>>;

/// A closure that can be passed to another process.
pub type Closure<A, R> = Arc<dyn Fn(A) -> R + Send + Sync + 'static>;

/// Ties a capnp closure interface (`call` taking a `Context`) to Rust types.
pub trait CallbackInterface: 'static {
    /// The interface's capnp client.
    type Client: Clone + 'static;
    /// The closure's argument.
    type Arg: Send + 'static;
    /// The closure's result.
    type Ret: Send + 'static;
    /// The method's name, for traces (`"IntFn.call"`).
    const METHOD: &'static str;

    /// On the loop thread: builds and sends the `call` request (filling its
    /// `context` with `cx.set_context`) and returns a future of the result.
    fn call(client: &Self::Client, cx: &CallContext<'_>, arg: Self::Arg)
    -> ResultFuture<Self::Ret>;

    /// On the loop thread: serves `closure` as a capability of this
    /// interface (on the connection `closure` was made for).
    fn serve(closure: ClosureServer<Self::Arg, Self::Ret>) -> Self::Client;
}

/// The server side of a closure passed to a peer: what an interface's
/// server implementation holds. Its `invoke` runs the closure on the thread
/// the request's `Context.thread` names; dropping it moves the closure off
/// the loop thread before dropping it.
pub struct ClosureServer<A: Send + 'static, R: Send + 'static> {
    closure: OffLoop<Closure<A, R>>,
    ctx: ServeContext,
}

impl<A: Send + 'static, R: Send + 'static> ClosureServer<A, R> {
    /// Wraps `closure` for the connection of `ctx`.
    pub fn new(closure: Closure<A, R>, ctx: ServeContext) -> Self {
        Self {
            closure: OffLoop::new(closure),
            ctx,
        }
    }

    /// Runs the closure with `arg` on the thread the request's `context`
    /// names; resolves (on the loop) to its result. `method` names the call
    /// in traces ([`CallbackInterface::METHOD`]).
    pub fn invoke(
        &self,
        context: capnp::Result<multiprocess_thread_map::proxy_capnp::context::Reader<'_>>,
        method: &'static str,
        arg: A,
    ) -> impl Future<Output = capnp::Result<R>> + 'static {
        let closure = Arc::clone(
            self.closure
                .get()
                .expect("only OffLoop::take empties it, and ClosureServer never calls it"),
        );
        self.ctx.run(context, method, move || Ok(closure(arg)))
    }
}

/// Passes `closure` in a request being built: returns the capability to put
/// in the request's parameters. Loop thread only (in `RemoteObject::call`'s
/// build closure).
pub fn export<I: CallbackInterface>(
    cx: &CallContext<'_>,
    closure: Closure<I::Arg, I::Ret>,
) -> I::Client {
    I::serve(ClosureServer::new(closure, cx.serve_context()))
}

/// A closure of another process. `Send + Sync + Clone`; calling it blocks the
/// calling thread until the closure has run in its process.
pub struct Callback<I: CallbackInterface> {
    object: Arc<RemoteObject<I::Client>>,
}

impl<I: CallbackInterface> Clone for Callback<I> {
    fn clone(&self) -> Self {
        Self {
            object: self.object.clone(),
        }
    }
}

impl<I: CallbackInterface> std::fmt::Debug for Callback<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("method", &I::METHOD)
            .finish_non_exhaustive()
    }
}

impl<I: CallbackInterface> Callback<I> {
    /// Receives a closure capability from a request. Loop thread only (in a
    /// server method).
    pub fn adopt(client: I::Client, ctx: &ServeContext) -> Result<Self> {
        Ok(Self {
            object: Arc::new(ctx.adopt(client)?),
        })
    }

    /// Calls the closure in its process and returns its result.
    ///
    /// From a thread serving a call from that process, the closure runs on
    /// the thread waiting for that call; from any other thread, on a worker
    /// the closure's process dedicates to the calling thread.
    pub fn call(&self, arg: I::Arg) -> Result<I::Ret> {
        self.object
            .call(I::METHOD, move |client, cx| I::call(client, cx, arg))
    }
}
