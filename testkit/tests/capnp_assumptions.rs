//! What the runtime assumes of capnp-rpc, pinned so that an upgrade that
//! changes it fails here rather than somewhere subtle.
//!
//! `not_a_thread` (thread-map/src/call.rs) asks a `Context.thread` it did not
//! make for its name only when the capability's hook has brand 0, which in
//! capnp-rpc 0.27 means "not imported from a connection" (a local server or
//! a broken capability): such a request can never wait on a peer. A
//! capability imported from the peer has the connection's non-zero brand.

mod common;

use std::time::Duration;

use mp_testkit::watchdog::guard;

#[test]
fn only_imported_capabilities_have_a_non_zero_brand() {
    guard("brands", Duration::from_secs(60), || {
        let peer = common::in_process();
        let brands = peer
            .raw(&peer.init)
            .expect("the Init's capability")
            .call("brands", |init, cx| {
                let imported_bootstrap = init.client.hook.get_brand();
                let imported_thread_map =
                    cx.peer_thread_map().map(|map| map.client.hook.get_brand());
                let local_thread = cx.callback_thread().client.hook.get_brand();
                let broken = capnp_rpc::new_broken_cap(capnp::Error::failed("broken".into()))
                    .hook
                    .get_brand();
                std::future::ready(Ok((
                    imported_bootstrap,
                    imported_thread_map,
                    local_thread,
                    broken,
                )))
            })
            .expect("call");
        let (bootstrap, thread_map, local, broken) = brands;
        assert_ne!(bootstrap, 0, "the peer's bootstrap capability is imported");
        assert_ne!(
            thread_map.expect("construct ran"),
            0,
            "the peer's ThreadMap is imported"
        );
        assert_eq!(local, 0, "a local server");
        assert_eq!(broken, 0, "a broken capability");
    });
}
