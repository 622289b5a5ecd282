//! Generates the proxies of the demo's schemas.

fn main() {
    multiprocess_proxy_build::Builder::new()
        .file("schema/demo.capnp")
        .file("schema/load.capnp")
        .compile()
        .expect("generating the demo's proxies");
}
