//! Interoperability with Bitcoin Core's C++ libmultiprocess, checked on its
//! own example programs.
//!
//! libmultiprocess ships an example: `mpexample` spawns `mpprinter` and
//! `mpcalculator`, asks the printer process for a `Printer`, hands it to the
//! calculator process with `makeCalculator`, and has the calculator solve
//! equations, each of which it reports back through the printer. This crate
//! declares the same interfaces (`schema/*.capnp`, wire-identical to the C++
//! example's) and implements every part of the example in Rust:
//!
//! - servers: [`printer::PrinterServer`] (prints on the worker thread the
//!   request's `Context` names), [`calculator::CalculatorServer`] (solves
//!   `a+b`, `a-b`, `a*b` and reports to its printer through the runtime, so
//!   the report runs on the thread blocked in `solveEquation`) and
//!   [`init::InitServer`] (the bootstrap interface);
//! - blocking clients for application threads: [`init::InitClient`],
//!   [`calculator::CalculatorClient`], [`printer::PrinterClient`];
//! - binaries that stand in for the C++ ones: `mp-interop-printer <fd>`,
//!   `mp-interop-calculator <fd>` (like `mpprinter`/`mpcalculator`) and
//!   `mp-interop-client <calculator-exe> <printer-exe>` (like `mpexample`,
//!   with checks: see [`example`]).
//!
//! Any Rust part can be swapped for its C++ counterpart;
//! `run-against-libmultiprocess.sh` runs the mixed combinations.

pub mod init_capnp {
    //! Generated from `schema/init.capnp`.
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::unwrap_used,
        unused
    )]
    include!("generated/init_capnp.rs");
}

pub mod calculator_capnp {
    //! Generated from `schema/calculator.capnp`.
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::unwrap_used,
        unused
    )]
    include!("generated/calculator_capnp.rs");
}

pub mod printer_capnp {
    //! Generated from `schema/printer.capnp`.
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::unwrap_used,
        unused
    )]
    include!("generated/printer_capnp.rs");
}

/// The [`DestroyFn`](multiprocess_thread_map::DestroyFn) of a generated
/// client whose interface declares `destroy @0 (context :Proxy.Context)`,
/// for [`DestroyOnDrop::new`](multiprocess_thread_map::DestroyOnDrop::new):
/// sends `destroy` with the calling thread's `Context` and resolves once the
/// peer has answered. (The generated clients share no trait for
/// `destroy_request`, hence a macro.)
macro_rules! destroy_fn {
    () => {
        |client, cx| {
            let mut request = client.destroy_request();
            cx.set_context(request.get().init_context());
            let response = request.send().promise;
            Box::pin(async move {
                response.await?;
                Ok(())
            })
        }
    };
}
pub(crate) use destroy_fn;

pub mod calculator;
pub mod equation;
pub mod example;
pub mod init;
pub mod printer;
pub mod process;
pub mod watchdog;

/// Installs the test kit's tracing subscriber (`RUST_LOG`, e.g.
/// `RUST_LOG=multiprocess=debug`, on stderr; a broken stderr is ignored
/// rather than panicking on the event loop thread).
pub use mp_testkit::init_tracing;

/// Writes a line to stderr, ignoring failure (`eprintln!` panics when
/// stderr is broken).
pub fn say_err(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes a line to stdout, ignoring failure (`println!` panics when stdout
/// is broken).
pub fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
