//! Generated proxies, tested across two processes: the README's first
//! program (`schema/first.capnp`), the guide's wallet
//! (`schema/wallet.capnp`) and libmultiprocess's own type zoo
//! (`schema/foo.capnp`, wire-identical to its `test/mp/test/foo.capnp`).

multiprocess::include_proxies!();

pub mod foo_impl;
pub mod wallet_impl;
