//! Runtime support for the proxies generated from annotated `.capnp` files.
//!
//! `multiprocess-proxy-build` reads a schema written for libmultiprocess and
//! generates, per interface, a plain Rust trait, a blocking client that
//! implements it and a server adapter that serves any implementation. This
//! crate holds what that code calls: the [`Interface`] trait that ties a
//! trait object (`dyn Wallet`) to its wire form, the [`Carry`] hook for
//! types of your own, the pool that runs methods without a `Context`, and
//! the functions that start a connection on an interface ([`spawn`],
//! [`serve_parent`], [`connect`], [`serve`]), or on an address
//! ([`listen`], [`connect_to`]).
//!
//! Users depend on the `multiprocess` facade, which re-exports all of it.

mod carry;
mod closures;
mod detached;
mod interface;
mod listen;

pub use carry::Carry;
pub use detached::{MAX_THREADS as MAX_DETACHED_THREADS, run_detached};
pub use interface::{Interface, connect, default_loop, serve, serve_parent, spawn};
pub use listen::{connect_to, connect_to_with, listen, listen_with};
pub use multiprocess_event_loop::{Error, Failure, Result};

/// What generated code names, kept out of the user's way.
#[doc(hidden)]
pub mod __private {
    pub use crate::closures::{PeerClosureKey, peer_closure};
    pub use capnp;
    /// What `ServeContext::run_lending` keeps alive: a request's parameters.
    pub use capnp::private::capability::ParamsHook;
    pub use capnp_rpc;
    pub use multiprocess_event_loop::Error;
    pub use multiprocess_thread_map::{
        CallContext, DestroyOnDrop, ObjectSlot, RemoteObject, ServeContext, proxy_capnp,
    };

    /// A generated struct's conversion to and from its capnp form.
    pub trait Wire: Sized {
        /// capnpc's type for the struct.
        type Capnp: capnp::traits::Owned;
        /// Writes `self` into `builder`; `ctx` is the connection the
        /// message goes to (to serve the capabilities a struct holds).
        fn write(
            &self,
            builder: <Self::Capnp as capnp::traits::Owned>::Builder<'_>,
            ctx: &ServeContext,
        ) -> capnp::Result<()>;
        /// Reads a value from `reader`, which came from the connection of
        /// `ctx`.
        fn read(
            reader: <Self::Capnp as capnp::traits::Owned>::Reader<'_>,
            ctx: &ServeContext,
        ) -> capnp::Result<Self>;
    }

    /// A parameter of a request (`&[u8]`, `&str`) lent to the job that
    /// serves it, read in place rather than copied: the server adapter
    /// makes one over the request's own bytes and hands the request to
    /// `ServeContext::run_lending`, which keeps it alive until the job has
    /// run or been dropped.
    pub struct Lent<T: ?Sized>(*const T);

    // SAFETY: a `Lent` only points at a request's parameters, which nothing
    // writes while it is lent, and which `run_lending` keeps alive until
    // the job holding it is gone; reading them from another thread is then
    // as sound as reading any `&T` with `T: Sync`.
    unsafe impl<T: ?Sized + Sync> Send for Lent<T> {}

    impl<T: ?Sized> Lent<T> {
        /// Lends `value`.
        ///
        /// # Safety
        ///
        /// `value` must stay alive and unchanged until the `Lent` and every
        /// reference [`get`](Self::get) returned are gone.
        pub unsafe fn new(value: &T) -> Self {
            Self(value)
        }

        /// The value lent.
        ///
        /// # Safety
        ///
        /// As for [`new`](Self::new): the value is still alive.
        pub unsafe fn get(&self) -> &T {
            // SAFETY: the caller vouches that the value is still alive (as
            // `new`'s caller did for the whole loan).
            unsafe { &*self.0 }
        }
    }

    /// What a `hasX` field is set to when `x` is there: `true`, or `1` for
    /// the schemas that declare `hasX` as a number (libmultiprocess reads
    /// any non-zero value as present).
    pub fn present<T: From<bool>>() -> T {
        T::from(true)
    }

    /// Whether a `hasX` field says `x` is there: `true`, or any non-zero
    /// number.
    pub fn is_present<T: Default + PartialEq>(flag: T) -> bool {
        flag != T::default()
    }

    /// Runs `build` (what builds and sends a request, with `?` inside):
    /// its error, if any, becomes the call's.
    pub fn attempt<T>(build: impl FnOnce() -> capnp::Result<T>) -> capnp::Result<T> {
        build()
    }

    /// Reads a list's length as capnp wants it, failing (rather than
    /// truncating) for a list longer than a message can hold.
    pub fn list_len(len: usize) -> capnp::Result<u32> {
        u32::try_from(len)
            .map_err(|_| capnp::Error::failed(format!("a list of {len} elements is too long")))
    }

    /// The error for a value the peer sent that its Rust type cannot hold,
    /// naming where it was (`"result.hash"`).
    pub fn bad_value(field: &str, why: impl std::fmt::Display) -> capnp::Error {
        capnp::Error::failed(format!("{field}: {why}"))
    }
}
