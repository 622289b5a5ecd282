//! `cargo run -p mp-codegen`: regenerate the committed Rust code of every
//! schema in the workspace. Needs the `capnp` compiler on `PATH`
//! (Debian: `apt-get install capnproto`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let root = mp_codegen::workspace_root();
    let mut failed = false;
    for target in mp_codegen::TARGETS {
        match target.regenerate(&root) {
            Ok(()) => println!("regenerated {}", target.rust_path(&root).display()),
            Err(e) => {
                eprintln!("error: {}: {e}", target.schema);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
