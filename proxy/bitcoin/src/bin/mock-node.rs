//! `mock-node`: serves a [`MockNode`] as `Init` to the process that spawned
//! it (with `-ipcfd=N`, as `bitcoin-node` is spawned), until that process
//! hangs up.
//!
//! ```text
//! mock-node [-empty] -ipcfd=N
//! ```
//!
//! `-empty` starts with no chain (no tip, in initial block download) until
//! a first block is submitted; otherwise the chain holds a genesis block.

use std::sync::Arc;

use multiprocess_proxy_bitcoin::init::Init;
use multiprocess_proxy_bitcoin::mock::MockNode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocess::install_tracing();
    let node = if std::env::args().any(|arg| arg == "-empty") {
        MockNode::empty()
    } else {
        MockNode::new()
    };
    let Some(connection) = multiprocess::serve_parent::<dyn Init>(Arc::new(node))? else {
        return Err("start me from a parent, with -ipcfd=N".into());
    };
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}
