//! `mp-interop-client <calculator-exe> <printer-exe>`: the Rust stand-in
//! for libmultiprocess's `mpexample`, with checks (see
//! `mp_interop::example`). Prints each step, then `OK`, on stdout; on any
//! failure prints `FAILED: <why>` on stderr and exits 1. A watchdog (`MP_INTEROP_TIMEOUT_SECS`,
//! default 60) kills the children and exits 3 if the run hangs.
//!
//! `RUST_LOG=multiprocess=debug` traces every request and response.

use std::process::ExitCode;
use std::time::Duration;

use mp_interop::example::{Config, run};
use mp_interop::watchdog::Watchdog;
use mp_interop::{say, say_err};

const NAME: &str = "mp-interop-client";

fn main() -> ExitCode {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [calculator, printer] = args.as_slice() else {
        say_err(&format!(
            "Usage: {NAME} <path-to-calculator-exe> <path-to-printer-exe>"
        ));
        return ExitCode::FAILURE;
    };
    let timeout = std::env::var("MP_INTEROP_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    let watchdog = match Watchdog::start(NAME, timeout) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            say_err(&format!("{NAME}: FAILED: cannot start the watchdog: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let config = Config::new(calculator, printer);
    let result = run(&config, Some(&watchdog), &|step| {
        say(&format!("{NAME}: {step}"))
    });
    drop(watchdog);
    match result {
        Ok(outcome) => {
            say(&format!(
                "{NAME}: OK ({} equations solved, every report checked)",
                outcome.reports.len()
            ));
            ExitCode::SUCCESS
        }
        Err(why) => {
            say_err(&format!("{NAME}: FAILED: {why}"));
            ExitCode::FAILURE
        }
    }
}
