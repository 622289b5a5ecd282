//! Generated proxies, tested across two processes: the guide's wallet
//! (`schema/wallet.capnp`).

multiprocess::include_proxies!();

/// Installs a `tracing` subscriber for `RUST_LOG` (`multiprocess=debug`
/// traces every request and response), as every program we ship does.
pub fn install_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
}
