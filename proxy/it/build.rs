//! Generates the proxies of the test schemas.

fn main() {
    multiprocess_proxy_build::Builder::new()
        .file("schema/first.capnp")
        .file("schema/wallet.capnp")
        .file("schema/foo.capnp")
        .file("schema/foo_init.capnp")
        // Ids are hashes: [u8; 32] in Rust, Data on the wire.
        .carry("Tx.txid", "[u8; 32]")
        .carry("wallet.capnp:Wallet.lookup.txid", "[u8; 32]")
        // libmultiprocess's std::map fields and parameters.
        .map("FooStruct.mapStringInt")
        .map("FooInterface.mapSize.map")
        .compile()
        .expect("generating the test schemas' proxies");
}
