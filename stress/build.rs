//! Compiles `schema/bench.capnp`, the `capnp` scenario's plain capnp-rpc
//! baseline (its server and client are written by hand on capnpc's code;
//! the generated proxies beside it go unused), with no `capnp` binary.

fn main() {
    multiprocess_proxy_build::compile("schema/bench.capnp").expect("generating bench.capnp");
}
