//! Connections, ThreadMaps and blocking calls with thread affinity.
//!
//! This crate is the core of the multiprocess runtime:
//!
//! - [`proxy_capnp`]: the wire schema, libmultiprocess's `mp/proxy.capnp`
//!   (same file id, types, ordinals and annotations): `ThreadMap`, `Thread`,
//!   `Context`;
//! - [`Connection`]: a capnp-rpc connection over a socket, with the
//!   `construct` handshake that gives each side the other's `ThreadMap`;
//! - [`RemoteObject::call`]: a blocking call from an application thread that
//!   runs on the peer's worker thread dedicated to that application thread;
//! - [`ServeContext::run`]: the server side, which runs a request on the
//!   worker named by its `Context.thread`;
//! - [`spawn_process`] / [`take_ipc_fd`]: a child process on a socketpair
//!   ([`spawn_process_with`] / [`take_fd`] when the fd is passed another way);
//! - [`Address`], [`Listener`] and [`connect_to`]: processes that find each
//!   other by a socket file or a TCP port (`-ipcbind`, `-ipcconnect`), and
//!   draining a server before it stops.
//!
//! See `docs/design.md` in the repository for the threading model.
//!
//! # What may cross threads
//!
//! Handles application threads hold are `Send + Sync`:
//!
//! ```
//! fn shared<T: Send + Sync>() {}
//! shared::<multiprocess_thread_map::Connection>();
//! shared::<multiprocess_thread_map::RemoteObject<multiprocess_thread_map::proxy_capnp::thread::Client>>();
//! shared::<multiprocess_thread_map::LoopHandle>();
//! shared::<multiprocess_thread_map::ServeContext>();
//! shared::<multiprocess_thread_map::Error>();
//! ```
//!
//! capnp objects never leave the loop thread: clients are not `Send`,
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<multiprocess_thread_map::proxy_capnp::thread::Client>();
//! ```
//!
//! nor are requests and responses,
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! use multiprocess_thread_map::proxy_capnp::thread_map;
//! send::<capnp::capability::Request<thread_map::make_thread_params::Owned, thread_map::make_thread_results::Owned>>();
//! ```
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! use multiprocess_thread_map::proxy_capnp::thread_map;
//! send::<capnp::capability::Response<thread_map::make_thread_results::Owned>>();
//! ```
//!
//! nor what the loop thread lends the code that builds a request:
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<multiprocess_thread_map::Adopter>();
//! ```
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<multiprocess_event_loop::LoopContext>();
//! ```

pub mod bootstrap_capnp {
    //! Generated from `schema/mp/bootstrap.capnp`: the shape of `construct`.
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::unwrap_used,
        unused
    )]
    include!("generated/bootstrap_capnp.rs");
}

pub mod proxy_capnp {
    //! Generated from `schema/mp/proxy.capnp` (libmultiprocess's wire schema).
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::unwrap_used,
        unused
    )]
    include!("generated/proxy_capnp.rs");
}

mod address;
mod call;
mod cleanup;
mod client_thread;
mod connection;
mod deadline;
#[cfg(not(loom))]
mod dial;
mod drain;
#[cfg(not(loom))]
mod listener;
mod loop_state;
pub mod names;
mod network;
mod process;
mod sync;
mod thread_server;
mod worker;
mod write_queue;

#[cfg(all(test, loom))]
mod loom_models;

pub use address::Address;
pub use call::{Adopter, CallContext};
pub use cleanup::{ObjectSlot, OffLoop, drop_off_loop};
pub use connection::{Connection, DestroyFn, DestroyOnDrop, RemoteObject, ServeContext};
#[cfg(not(loom))]
pub use dial::{DEFAULT_HANDSHAKE_TIMEOUT, connect_to, dial};
#[cfg(not(loom))]
pub use listener::{DEFAULT_MAX_CONNECTIONS, ListenOptions, Listener};
pub use multiprocess_event_loop::stack::{
    DEFAULT_NESTING_STACK_MARGIN, nesting_stack_margin, set_nesting_stack_margin,
};
pub use multiprocess_event_loop::{Error, EventLoop, Failure, LoopHandle, Result, Socket};
pub use names::{MAX_PEER_THREAD_NAME, MAX_THREAD_NAME};
pub use network::{ConnectionLimits, DEFAULT_FLOW_BUDGET_BYTES, DEFAULT_MAX_MESSAGE_BYTES};
pub use process::{
    IPC_FD_ARG, parse_ipc_fd, spawn_process, spawn_process_with, take_fd, take_ipc_fd,
};
pub use worker::{
    DEFAULT_MAX_WORKERS, DEFAULT_MAX_WORKERS_PER_CONNECTION, max_workers,
    max_workers_per_connection, set_max_workers, set_max_workers_per_connection,
    set_worker_stack_size,
};
#[cfg(not(loom))]
pub use worker::{live_workers, orphaned_workers, wait_for_workers};
