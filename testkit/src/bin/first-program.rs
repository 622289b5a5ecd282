//! The README's first program: spawn ourselves as a child and call into it.
//! `cargo run -p mp-testkit --bin first-program`

use mp_testkit::probe::{InitClient, InitServer}; // an example interface
use multiprocess::{Connection, EventLoop, spawn_process, take_ipc_fd};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let event_loop = EventLoop::start("loop")?; // does all the socket I/O
    if let Some(stream) = take_ipc_fd()? {
        // We are the child: serve Init until the parent leaves.
        let conn = Connection::serve(&event_loop, stream, InitServer::bootstrap)?;
        conn.wait_disconnected(std::time::Duration::MAX);
        return Ok(());
    }
    let mut child = std::process::Command::new(std::env::current_exe()?);
    let (_child, stream) = spawn_process(&mut child)?; // passes -ipcfd=N
    let (_conn, init) = Connection::connect(&event_loop, stream)?; // construct handshake
    let probe = InitClient(init).make_probe()?; // a capability of the child
    println!("2 + 3 = {} on {}", probe.add(2, 3)?, probe.whoami()?.name);
    Ok(())
}
