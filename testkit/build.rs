//! Generates the `Probe` test interface's proxies (traits, clients, servers)
//! from `schema/probe.capnp`, with no `capnp` binary.

fn main() {
    multiprocess_proxy_build::compile("schema/probe.capnp")
        .expect("generating probe.capnp's proxies");
}
