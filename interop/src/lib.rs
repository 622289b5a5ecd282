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
//! - the interfaces, generated from the schemas in `build.rs`: the traits
//!   [`init::InitInterface`], [`calculator::CalculatorInterface`] and
//!   [`printer::PrinterInterface`], with their clients and servers;
//! - implementations: [`printers::LinePrinter`] and [`printers::PrintLog`]
//!   (served, they print on the worker thread the request's `Context`
//!   names), [`calculators::Calculator`] (solves `a+b`, `a-b`, `a*b` and
//!   reports to its printer, so a printer of the caller's process runs the
//!   report on the thread blocked in `solveEquation`) and
//!   [`roles::ExampleInit`] (the bootstrap object);
//! - binaries that stand in for the C++ ones: `mp-interop-printer <fd>`,
//!   `mp-interop-calculator <fd>` (like `mpprinter`/`mpcalculator`) and
//!   `mp-interop-client <calculator-exe> <printer-exe>` (like `mpexample`,
//!   with checks: see [`example`]).
//!
//! Any Rust part can be swapped for its C++ counterpart;
//! `run-against-libmultiprocess.sh` runs the mixed combinations.

multiprocess::include_proxies!();

pub mod calculators;
pub mod equation;
pub mod example;
pub mod printers;
pub mod process;
pub mod roles;
pub mod watchdog;

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
