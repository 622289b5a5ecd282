//! The README's first program: spawn ourselves as a child and call into it.

use mp_testkit::{peer::Peer, probe::InitServer};
use multiprocess_thread_map::{Connection, EventLoop, take_ipc_fd};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(stream) = take_ipc_fd()? {
        // we are the child: serve Init
        let event_loop = EventLoop::start("child-loop")?;
        let conn = Connection::serve(&event_loop, stream, InitServer::bootstrap)?;
        conn.wait_disconnected(std::time::Duration::MAX); // until the parent leaves
        return Ok(());
    }
    let peer = Peer::child(&std::env::current_exe()?)?; // spawn ourselves as the child
    let probe = peer.init.make_probe()?; // a capability of the child
    println!("2 + 3 = {} on {}", probe.add(2, 3)?, probe.whoami()?.name);
    Ok(())
}
