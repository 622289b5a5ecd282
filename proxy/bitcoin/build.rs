//! Generates the proxies of Bitcoin Core's schemas (`schema/`), which
//! import each other, in one compilation.

fn main() {
    multiprocess_proxy_build::Builder::new()
        .file("schema/common.capnp")
        .file("schema/echo.capnp")
        .file("schema/rpc.capnp")
        .file("schema/mining.capnp")
        .file("schema/init.capnp")
        .compile()
        .expect("generating the proxies of Bitcoin Core's schemas");
}
