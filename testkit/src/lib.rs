//! Test support for the multiprocess workspace: the `Probe` test interface
//! and its server, the child process that serves it (`mp-child`), a demo
//! (`mp-demo`), and a watchdog that turns a hang into a failure with a dump
//! of the stuck threads.

pub mod probe_capnp {
    //! Generated from `schema/probe.capnp`.
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::unwrap_used,
        unused
    )]
    include!("generated/probe_capnp.rs");
}

pub mod peer;
pub mod probe;
pub mod watchdog;

/// Installs a tracing subscriber driven by `RUST_LOG` (e.g.
/// `RUST_LOG=multiprocess=debug` shows every IPC request and response).
/// A failed write (stderr closed, say `| head`) is dropped silently: by
/// default the subscriber would report it with `eprintln!`, which panics.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_thread_names(true)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

/// Serves `Init` on `stream` until the peer disconnects: the body of the
/// child process (`mp-child`, and `mp-demo` when it runs as its own child).
pub fn serve_child(
    stream: std::os::unix::net::UnixStream,
) -> Result<(), multiprocess_thread_map::Error> {
    let event_loop = multiprocess_thread_map::EventLoop::start("child-loop")?;
    let connection = multiprocess_thread_map::Connection::serve(
        &event_loop,
        stream,
        probe::InitServer::bootstrap,
    )?;
    while connection
        .wait_disconnected(std::time::Duration::from_secs(3600))
        .is_none()
    {}
    Ok(())
}
