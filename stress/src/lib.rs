//! End-to-end IPC latency between two processes: the library behind `mpbench`.
//!
//! Every measurement crosses a real process boundary. The benchmark process spawns a copy of
//! itself (`mpbench --child SCENARIO --fd N`), hands it one end of a
//! [`UnixStream::pair`](std::os::unix::net::UnixStream::pair) by file-descriptor number (the way
//! Bitcoin Core passes `-ipcfd N`), and then times calls made over the other end.
//!
//! ```no_run
//! use std::path::Path;
//! use stress::{run, scenarios, Options};
//!
//! let mut chosen = vec![scenarios::find("raw").expect("raw is always registered")];
//! let exe = std::env::current_exe()?; // must understand `--child NAME --fd N`
//! let reports = run::run(&exe, &mut chosen, &Options::default())?;
//! for report in &reports {
//!     println!("{}", report.to_json());
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Guided tour
//!
//! - [`scenarios`]: what is measured. A [`Scenario`](scenarios::Scenario) says how the parent makes
//!   one call and how the child serves calls; each scenario is one module.
//! - [`child`]: spawning the child with an inherited socket, and making sure it goes away.
//! - [`cpu`]: user plus system CPU time of a process, from `/proc/PID/stat`.
//! - [`ctxsw`]: context switches of every thread of a process, from `/proc/PID/task/*/status`.
//! - [`stats`]: median and p99 from the per-call samples.
//! - [`wait`]: the runtime's way of waiting (spin, then sleep) for plain threads, as `chain`
//!   waits.
//! - [`run`]: the measurement loop (warm-up, interleaved rounds) and the JSON/table output.
//! - [`bench`](mod@bench) and [`bench_capnp`]: `schema/bench.capnp`, the `capnp` scenario's interface,
//!   compiled in `build.rs` (the scenario serves and calls it by hand, on capnpc's code).

multiprocess::include_proxies!();

pub mod child;
pub mod cpu;
pub mod ctxsw;
pub mod run;
pub mod scenarios;
pub mod stats;
pub mod wait;

pub use run::{Options, Report};
