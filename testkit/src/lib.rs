//! Test support for the multiprocess workspace: the `Probe` test interface
//! (its proxies, [`probe`], generated from `schema/probe.capnp` in
//! `build.rs`) and its server ([`probe_server`]), the child process that
//! serves it (`mp-child`), a demo (`mp-demo`), and a watchdog that turns a
//! hang into a failure with a dump of the stuck threads, in this process and
//! in the child processes it spawned (registered in [`children`]), and
//! hand-built capnp-rpc messages for tests that play a raw, possibly
//! hostile, peer ([`wire`]).

multiprocess::include_proxies!();

pub mod child_waits;
pub mod children;
pub mod line_process;
pub mod peer;
pub mod probe_server;
pub mod watchdog;
pub mod wire;

/// Serves `Init` on `stream` until the peer disconnects: the body of the
/// child process (`mp-child`, and `mp-demo` when it runs as its own child).
pub fn serve_child(
    stream: std::os::unix::net::UnixStream,
) -> Result<(), multiprocess_thread_map::Error> {
    let event_loop = multiprocess_thread_map::EventLoop::start("child-loop")?;
    let connection = probe_server::serve(&event_loop, stream)?;
    // With no deadline, this returns only once the connection has closed.
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}

/// Serves the capability `bootstrap` makes on `stream`, on a new event loop
/// named `loop_name`, until the peer disconnects: the body of a child
/// process serving a hand-written bootstrap capability (mpbench's baselines;
/// [`serve_child`] serves the Probe's generated `Init`).
///
/// Call it from an ordinary thread (a child's main thread, say): on an
/// event-loop thread, which must never block, it would not wait.
pub fn serve_child_with<F>(
    loop_name: &str,
    stream: std::os::unix::net::UnixStream,
    bootstrap: F,
) -> Result<(), multiprocess_thread_map::Error>
where
    F: FnOnce(multiprocess_thread_map::ServeContext) -> capnp::capability::Client + Send + 'static,
{
    let event_loop = multiprocess_thread_map::EventLoop::start(loop_name)?;
    let connection = multiprocess_thread_map::Connection::serve(&event_loop, stream, bootstrap)?;
    // With no deadline, this returns only once the connection has closed.
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}
