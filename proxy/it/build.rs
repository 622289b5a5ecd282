//! Generates the proxies of the test schemas.
fn main() {
    multiprocess_proxy_build::compile("schema/wallet.capnp").expect("wallet.capnp");
}
