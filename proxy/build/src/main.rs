//! `mpgen`: generates Rust proxies from `.capnp` files into a folder, for
//! crates that commit their generated code (as Bitcoin Core-facing crates
//! do). No `capnp` binary is needed.
//!
//! ```text
//! mpgen --out src/generated [--parent generated] [-I DIR]... SCHEMA.capnp...
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut builder = multiprocess_proxy_build::Builder::new();
    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut files = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next(),
            "--parent" => {
                let parent = args.next().unwrap_or_default();
                let parts: Vec<&str> = parent.split("::").filter(|s| !s.is_empty()).collect();
                builder = builder.parent_module(&parts);
            }
            "--runtime" => builder = builder.runtime_crate(&args.next().unwrap_or_default()),
            "-I" => builder = builder.import_path(args.next().unwrap_or_default()),
            "-h" | "--help" => {
                println!(
                    "usage: mpgen --out DIR [--parent MOD::PATH] [--runtime CRATE] [-I DIR]... SCHEMA.capnp..."
                );
                return ExitCode::SUCCESS;
            }
            file => {
                builder = builder.file(file);
                files += 1;
            }
        }
    }
    let Some(out) = out else {
        eprintln!("mpgen: --out DIR is required (see --help)");
        return ExitCode::from(2);
    };
    if files == 0 {
        eprintln!("mpgen: no schema given (see --help)");
        return ExitCode::from(2);
    }
    match builder.out_dir(&out).compile() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpgen: {e}");
            ExitCode::FAILURE
        }
    }
}
