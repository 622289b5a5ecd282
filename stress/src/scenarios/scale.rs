//! `scale`: many short-lived application threads. `calls / 10` threads (1 000 by default) start,
//! wait at a gate until all are started, each make [`CALLS_PER_THREAD`] calls of `Probe.add`
//! and exit: the child makes a worker for each on its first call and must release it when the
//! thread exits.
//!
//! The JSON line is the usual one: `threads` is the number of threads, `calls` all their calls,
//! the median and p99 over every call (first calls, which make the workers, included), and
//! `calls_per_s` the calls over the wall time of the whole run, from starting the first thread
//! to joining the last. The run is never split into rounds: the point is that all the threads
//! live at once. The warm-up is one small run (10 threads), so that code and memory the child
//! touches for its first workers are in the "before" of the resources. `ctx_switches_per_call` is `null`: the threads exit, and Linux
//! forgets an exited thread's context switches.
//!
//! The benchmark also records the child's threads and memory around the run
//! ([`Resources`](crate::run::Resources), the `scale-resources` JSON line): the thread count
//! must come back to where it was once the workers are released, and the resident memory close
//! to it. `mpbench --worker-stack-kib N` sets the child's worker stack size.

use std::io;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use mp_testkit::probe::Probe;

use super::check_reply;
use super::runtime::{self, Parent};
use super::{Client, Plan, Scenario};
use crate::run::Options;

/// Calls each thread makes before it exits.
pub const CALLS_PER_THREAD: usize = 10;

/// Calls `scale` makes unless `--calls` says otherwise: 1 000 threads.
pub const DEFAULT_CALLS: usize = 10_000;

/// Warm-up calls unless `--warmup` says otherwise: one small run, 10 threads.
pub const DEFAULT_WARMUP: usize = 100;

/// The `scale` scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// The calls of the run, from [`plan`](Scenario::plan).
    calls: usize,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            calls: DEFAULT_CALLS,
        }
    }
}

impl Scenario for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }

    fn threads(&self) -> usize {
        self.calls.div_ceil(CALLS_PER_THREAD)
    }

    fn plan(&mut self, opts: &Options) -> Plan {
        self.calls = opts.calls.unwrap_or(DEFAULT_CALLS);
        Plan {
            calls: self.calls,
            warmup: opts.warmup.unwrap_or(DEFAULT_WARMUP).min(self.calls),
            split: false,
        }
    }

    fn watch_resources(&self) -> bool {
        true
    }

    fn counts_switches(&self) -> bool {
        false
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-scale-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        // The probe first: it must drop before the connection it lives on.
        let state = (probe, parent);
        Ok(Client::Batch(Box::new(move |n, samples| {
            run_threads(&*state.0, n, samples)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-scale-child-loop")
    }
}

/// Makes `n` calls from `n / 10` (rounded up) threads that start calling together, and appends
/// every latency to `samples` once all the threads have exited.
fn run_threads(probe: &dyn Probe, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
    let count = n.div_ceil(CALLS_PER_THREAD);
    // Nobody ever sends on the gate: dropping the sender opens it for every thread at once.
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    thread::scope(|scope| {
        let mut threads = Vec::with_capacity(count);
        let mut failure = None;
        for index in 0..count {
            let calls = CALLS_PER_THREAD.min(n - index * CALLS_PER_THREAD);
            let gate = gate_rx.clone();
            let spawned = thread::Builder::new()
                .name(format!("mpbench-scale-{index}"))
                .spawn_scoped(scope, move || {
                    let _ = gate.recv();
                    calls_of_one_thread(probe, index, calls)
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // Too many threads for this machine: the ones started still run, then fail
                    // the batch.
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(gate_tx);
        for thread in threads {
            match thread.join() {
                Ok(Ok(latencies)) => samples.extend(latencies),
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    failure.get_or_insert_with(|| io::Error::other("a scale thread panicked"));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    })
}

/// Thread `index`'s `calls` calls, each timed, in its own range of numbers.
fn calls_of_one_thread(probe: &dyn Probe, index: usize, calls: usize) -> io::Result<Vec<Duration>> {
    let base = i32::try_from(index)
        .map_err(io::Error::other)?
        .wrapping_mul(1 << 10);
    let mut latencies = Vec::with_capacity(calls);
    for i in 0..calls {
        let seq = base.wrapping_add(i32::try_from(i).map_err(io::Error::other)?);
        let start = Instant::now();
        let sum = probe.add(seq, 1).map_err(runtime::to_io)?;
        latencies.push(start.elapsed());
        check_reply(seq.wrapping_add(1), sum)?;
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        let mut scale = Scale::default();
        let plan = scale.plan(&Options {
            calls: Some(95),
            ..Options::default()
        });
        assert_eq!((plan.calls, plan.warmup, plan.split), (95, 95, false));
        assert_eq!(scale.threads(), 10);
        crate::scenarios::run_in_one_process(scale, &[95]);
    }
}
