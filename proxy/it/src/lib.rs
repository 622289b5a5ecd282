//! Generated proxies, tested across two processes: the README's first
//! program (`schema/first.capnp`), the guide's wallet
//! (`schema/wallet.capnp`) and libmultiprocess's own type zoo
//! (`schema/foo.capnp`, wire-identical to its `test/mp/test/foo.capnp`).

multiprocess::include_proxies!();

pub mod foo_impl;
pub mod wallet_impl;

/// Installs a `tracing` subscriber for `RUST_LOG` (`multiprocess=debug`
/// traces every request and response), as every program we ship does.
pub fn install_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        // A failed write (stderr closed, say `| head`) is dropped: reporting
        // it with `eprintln!`, the default, panics.
        .log_internal_errors(false)
        .try_init();
}
