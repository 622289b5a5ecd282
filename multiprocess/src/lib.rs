//! Call Rust interfaces across processes as if they were in one process,
//! thread for thread.
//!
//! multiprocess runs Cap'n Proto RPC with the threading model of Bitcoin
//! Core's libmultiprocess, and speaks its wire protocol:
//!
//! - one **event-loop thread** per process does all socket I/O
//!   ([`EventLoop`], [`LoopHandle`]);
//! - every application thread gets its own **worker thread** in the peer, so
//!   calls from one thread always run on the same remote thread
//!   ([`Connection`], [`RemoteObject::call`], [`ServeContext::run`]);
//! - a thread blocked in a call keeps serving **callbacks**: a closure passed
//!   to the peer and called back during the call runs on the very thread
//!   that made the call ([`callbacks`]);
//! - processes are spawned on a socketpair as Bitcoin Core does with
//!   `-ipcfd` ([`spawn_process`], [`take_ipc_fd`]), or find each other by
//!   an [`Address`], as with `-ipcbind` and `-ipcconnect` ([`listen`],
//!   [`connect_to`], [`Listener`]).
//!
//! This crate re-exports the pieces; each lives in its own crate:
//! `multiprocess-event-loop`, `multiprocess-thread-map`,
//! `multiprocess-callbacks`.
//!
//! ```no_run
//! use multiprocess::{Connection, EventLoop};
//!
//! # fn bootstrap(_: multiprocess::ServeContext) -> multiprocess::capnp::capability::Client {
//! #     multiprocess::capnp_rpc::new_broken_cap(multiprocess::capnp::Error::failed("example".into()))
//! # }
//! # fn main() -> Result<(), multiprocess::Error> {
//! // In a child started with -ipcfd=N: serve the bootstrap interface.
//! if let Some(stream) = multiprocess::take_ipc_fd()? {
//!     let event_loop = EventLoop::start("child-loop")?;
//!     let connection = Connection::serve(&event_loop, stream, bootstrap)?;
//!     connection.wait_disconnected(std::time::Duration::MAX);
//! }
//! # Ok(())
//! # }
//! ```

pub use multiprocess_event_loop::{
    EventLoop, LoopContext, LoopHandle, LoopPoster, Waiter, dump_waiters, on_a_loop_thread,
    os_thread_id,
};
pub use multiprocess_thread_map::{
    Address, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, ListenOptions, Listener, dial,
};
pub use multiprocess_thread_map::{
    Adopter, CallContext, Connection, DEFAULT_MAX_WORKERS_PER_CONNECTION, DestroyFn, DestroyOnDrop,
    Error, Failure, IPC_FD_ARG, ObjectSlot, OffLoop, RemoteObject, Result, ServeContext,
    bootstrap_capnp, drop_off_loop, max_workers_per_connection, names, parse_ipc_fd, proxy_capnp,
    set_max_workers_per_connection, set_worker_stack_size, spawn_process, spawn_process_with,
    take_fd, take_ipc_fd,
};
#[cfg(not(loom))]
pub use multiprocess_thread_map::{live_workers, wait_for_workers};

pub use multiprocess_proxy::{
    Carry, Interface, connect, connect_to, connect_to_with, default_loop, listen, listen_with,
    serve, serve_parent, spawn,
};

/// Runtime support for generated proxies (what generated code names).
pub mod proxy {
    pub use multiprocess_proxy::*;
}

/// Brings in the proxies `multiprocess_proxy_build` generated in `build.rs`:
/// for each schema `NAME.capnp`, the modules `NAME` (traits, clients,
/// servers, structs) and `NAME_capnp` (capnpc's code). Use it at the crate
/// root (or where `Builder::parent_module` says).
#[macro_export]
macro_rules! include_proxies {
    () => {
        include!(concat!(env!("OUT_DIR"), "/multiprocess_proxies.rs"));
    };
}

/// Cap'n Proto, as the generated code and server implementations use it.
pub use capnp;
/// capnp-rpc, for `new_client` and friends.
pub use capnp_rpc;

/// How threads wait: spinning before sleeping (`MULTIPROCESS_WAIT_SPIN_US`).
pub mod spin {
    pub use multiprocess_event_loop::spin::*;
}

/// Where threads run: starting near their creator and waking near their
/// waker (`MULTIPROCESS_START_NEAR`, `MULTIPROCESS_WAKE_NEAR`).
pub mod placement {
    pub use multiprocess_event_loop::placement::*;
}

/// Closures passed across processes (the `multiprocess-callbacks` crate).
pub mod callbacks {
    pub use multiprocess_callbacks::*;
}
