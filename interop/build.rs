//! Generates the proxies of libmultiprocess's example interfaces
//! (`schema/*.capnp`, wire-identical to the C++ example's) with no `capnp`
//! binary.

fn main() {
    multiprocess_proxy_build::Builder::new()
        .file("schema/init.capnp")
        .file("schema/calculator.capnp")
        .file("schema/printer.capnp")
        .compile()
        .expect("generating the example's proxies");
}
