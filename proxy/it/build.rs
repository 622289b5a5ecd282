//! Generates the proxies of the test schemas.

fn main() {
    multiprocess_proxy_build::Builder::new()
        .file("schema/first.capnp")
        .file("schema/wallet.capnp")
        .file("schema/foo.capnp")
        .file("schema/foo_init.capnp")
        .compile()
        .expect("generating the test schemas' proxies");
}
