//! `newthread`: the first call a fresh application thread makes. Each sample starts a thread
//! that calls `Probe.add` once, timing only that call, and exits; the benchmark joins it before
//! the next.
//!
//! The first call of a thread on a connection pipelines `makeThread` with the call (see
//! `docs/design.md`): the child starts a worker for the thread and runs the call on it, with no
//! extra round trip. So this is [`call`](super::call) plus making (and, once the thread has
//! exited, releasing) a worker; the gap between the two is the cost of a thread's first call.
//! Starting and joining the thread is outside the sample, but in `calls_per_s`.
//!
//! `ctx_switches_per_call` is `null`: the threads this measures exit, and Linux forgets an
//! exited thread's context switches. Fewer calls by default (2 000): each makes two threads.

use std::io;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use mp_testkit::probe::Probe;

use super::check_reply;
use super::runtime::{self, Parent};
use super::{Client, Plan, Scenario};
use crate::run::Options;

/// Calls `newthread` makes unless `--calls` says otherwise.
pub const DEFAULT_CALLS: usize = 2_000;

/// The `newthread` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewThread;

impl Scenario for NewThread {
    fn name(&self) -> &'static str {
        "newthread"
    }

    fn plan(&mut self, opts: &Options) -> Plan {
        Plan::with_default(opts, DEFAULT_CALLS)
    }

    fn counts_switches(&self) -> bool {
        false
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-newthread-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        // The probe first: it must drop before the connection it lives on.
        let state = (probe, parent);
        let mut seq = 0i32;
        Ok(Client::Batch(Box::new(move |n, samples| {
            for _ in 0..n {
                seq = seq.wrapping_add(1);
                samples.push(first_call(&*state.0, seq)?);
            }
            Ok(())
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-newthread-child-loop")
    }
}

/// Starts a thread whose only call is `probe.add(seq, 1)`; returns that call's latency once the
/// thread has exited.
fn first_call(probe: &dyn Probe, seq: i32) -> io::Result<Duration> {
    thread::scope(|scope| {
        let thread = thread::Builder::new()
            .name("mpbench-newthread".into())
            .spawn_scoped(scope, move || {
                let start = Instant::now();
                let sum = probe.add(seq, 1);
                (start.elapsed(), sum)
            })?;
        let (elapsed, sum) = thread
            .join()
            .map_err(|_| io::Error::other("a newthread thread panicked"))?;
        check_reply(seq.wrapping_add(1), sum.map_err(runtime::to_io)?)?;
        Ok(elapsed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(NewThread, &[20]);
    }
}
