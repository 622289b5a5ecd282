//! The README's first program: `cargo run -p multiprocess-proxy-tests --bin
//! first-program`. The schema is `proxy/it/schema/first.capnp`.
use multiprocess_proxy_tests::first::Calc; // generated from first.capnp
use std::{process::Command, sync::Arc, time::Duration};

struct Child;
impl Calc for Child {
    fn add(&self, a: i32, b: i32) -> multiprocess::Result<i32> {
        Ok(a + b)
    }
    fn where_am_i(&self) -> multiprocess::Result<String> {
        Ok(multiprocess::names::current_thread_name())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocess::install_tracing(); // RUST_LOG=multiprocess=debug traces every call
    if let Some(parent) = multiprocess::serve_parent::<dyn Calc>(Arc::new(Child))? {
        parent.wait_disconnected(Duration::MAX); // we are the child: serve until the parent leaves
        return Ok(());
    }
    let (_child, calc) =
        multiprocess::spawn::<dyn Calc>(&mut Command::new(std::env::current_exe()?))?;
    println!("2 + 3 = {} on {}", calc.add(2, 3)?, calc.where_am_i()?);
    Ok(())
}
