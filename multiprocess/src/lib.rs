//! Call Rust interfaces across processes as if they were in one process,
//! thread for thread.
//!
//! multiprocess runs Cap'n Proto RPC with the threading model of Bitcoin
//! Core's libmultiprocess, and speaks its wire protocol:
//!
//! - from a `.capnp` file, `multiprocess-proxy-build` generates a plain Rust
//!   trait per interface, a client that implements it and a server for any
//!   implementation ([`include_proxies!`], `docs/guide.md`);
//! - every application thread gets its own **worker thread** in the peer, so
//!   calls from one thread always run on the same remote thread;
//! - a thread blocked in a call keeps serving **callbacks**: a closure passed
//!   to the peer and called back during the call runs on the very thread
//!   that made the call;
//! - processes are spawned on a socketpair as Bitcoin Core does with
//!   `-ipcfd` ([`spawn`], [`serve_parent`]), or find each other by an
//!   [`Address`], as with `-ipcbind` and `-ipcconnect` ([`listen`],
//!   [`connect_to`]).
//!
//! Every fault a peer can cause is an [`Error`]; a method's own failure is
//! [`Error::Failed`], whether its implementation runs here or there.
//!
//! ```ignore
//! multiprocess::include_proxies!(); // from schema/calc.capnp: trait Calc
//!
//! struct Child;
//! impl calc::Calc for Child {
//!     fn add(&self, a: i32, b: i32) -> multiprocess::Result<i32> { Ok(a + b) }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if let Some(parent) = multiprocess::serve_parent::<dyn calc::Calc>(Arc::new(Child))? {
//!         parent.wait_disconnected(Duration::MAX); // the child serves
//!         return Ok(());
//!     }
//!     let (_child, calc) = multiprocess::spawn::<dyn calc::Calc>(&mut Command::new(current_exe()?))?;
//!     println!("{}", calc.add(2, 3)?); // runs in the child
//!     Ok(())
//! }
//! ```
//!
//! The runtime's own pieces (hand-written calls, loop internals) are in
//! [`raw`]; applications need none of them.

pub use multiprocess_event_loop::{EventLoop, Failure, LoopHandle, os_thread_id};
pub use multiprocess_proxy::{
    Carry, Interface, connect, connect_to, connect_to_with, default_loop, listen, listen_with,
    serve, serve_parent, spawn,
};
pub use multiprocess_thread_map::{
    Address, Connection, ConnectionLimits, DEFAULT_FLOW_BUDGET_BYTES, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_WORKERS,
    DEFAULT_MAX_WORKERS_PER_CONNECTION, DEFAULT_NESTING_STACK_MARGIN, Error, IPC_FD_ARG,
    ListenOptions, Listener, MAX_PEER_THREAD_NAME, MAX_THREAD_NAME, Result, max_workers,
    max_workers_per_connection, names, nesting_stack_margin, set_max_workers,
    set_max_workers_per_connection, set_nesting_stack_margin, set_worker_stack_size, spawn_process,
    take_ipc_fd,
};
#[cfg(not(loom))]
pub use multiprocess_thread_map::{live_workers, orphaned_workers};

/// Installs a `tracing` subscriber that writes what `RUST_LOG` selects to
/// stderr, with thread names (and colours only if stderr is a terminal):
/// `RUST_LOG=multiprocess=debug` traces every request and response on both
/// ends (Bitcoin Core's `-debug=ipc`). Does
/// nothing if the program has a subscriber already. A write that fails
/// (stderr closed, as in `program | head`) is dropped: the default would
/// report it with `eprintln!`, which panics, and on a loop thread that
/// would take a connection down.
///
/// Every program of this repository calls it first thing in `main`.
/// Programs that set up `tracing` their own way need not, and can turn off
/// the `subscriber` feature.
#[cfg(feature = "subscriber")]
pub fn install_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_thread_names(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

/// Runtime support for generated proxies (what generated code names).
pub mod proxy {
    pub use multiprocess_proxy::*;
}

/// The runtime's own pieces, for hand-written calls, tests and tools:
/// blocking calls on a capnp client ([`raw::RemoteObject::call`]), serving
/// a request on its worker ([`raw::ServeContext::run`]), the loop's
/// internals. Applications that use generated proxies need none of it.
pub mod raw {
    pub use multiprocess_event_loop::{
        LoopContext, LoopPoster, Waiter, dump_waiters, on_a_loop_thread,
    };
    pub use multiprocess_thread_map::Socket;
    #[cfg(not(loom))]
    pub use multiprocess_thread_map::wait_for_workers;
    pub use multiprocess_thread_map::{
        Adopter, CallContext, DestroyFn, DestroyOnDrop, ObjectSlot, OffLoop, RemoteObject,
        ServeContext, bootstrap_capnp, dial, drop_off_loop, parse_ipc_fd, spawn_process_with,
        take_fd,
    };

    /// How threads wait: spinning before sleeping (`MULTIPROCESS_WAIT_SPIN_US`).
    pub mod spin {
        pub use multiprocess_event_loop::spin::*;
    }

    /// Where threads run: starting near their creator and waking near their
    /// waker (`MULTIPROCESS_START_NEAR`, `MULTIPROCESS_WAKE_NEAR`).
    pub mod placement {
        pub use multiprocess_event_loop::placement::*;
    }

    /// Closures passed across processes by hand (the
    /// `multiprocess-callbacks` crate); generated closure types do this
    /// for you.
    pub mod callbacks {
        pub use multiprocess_callbacks::*;
    }
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

/// Cap'n Proto, as capnpc's generated code uses it.
pub use capnp;
/// capnp-rpc, as capnpc's generated code uses it.
#[doc(hidden)]
pub use capnp_rpc;
/// libmultiprocess's `mp/proxy.capnp` (`ThreadMap`, `Thread`, `Context`), as
/// generated code names it.
#[doc(hidden)]
pub use multiprocess_thread_map::proxy_capnp;
