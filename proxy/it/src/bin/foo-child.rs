//! Serves libmultiprocess's test interface (`FooInterface`, through
//! `FooInit`) to the parent that spawned it.

use std::sync::Arc;

use multiprocess_proxy_tests::foo_impl::FooInitImpl;
use multiprocess_proxy_tests::foo_init::FooInit;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocess::install_tracing();
    let Some(connection) = multiprocess::serve_parent::<dyn FooInit>(Arc::new(FooInitImpl))? else {
        return Err("start me from a parent, with -ipcfd".into());
    };
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}
