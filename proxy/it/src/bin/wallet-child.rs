//! Serves the guide's `Init` and `Wallet` to the parent that spawned it.

use std::sync::Arc;

use multiprocess_proxy_tests::wallet::Init;
use multiprocess_proxy_tests::wallet_impl::{Style, TestInit};

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    multiprocess::install_tracing();
    let init: Arc<dyn Init> = Arc::new(TestInit::new(Style::CHILD));
    let Some(connection) = multiprocess::serve_parent::<dyn Init>(init)? else {
        return Err("start me from a parent, with -ipcfd".into());
    };
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}
