//! `threads`: `T` application threads calling `Probe.add` at once, for `T` in [`COUNTS`]; each
//! thread has its own worker in the child, made by its first call, before measuring.
//!
//! # Shape
//!
//! ```text
//!  parent                                     child
//!  app 1 ─┐                                ┌─▶ worker 1
//!  app 2 ─┼─ post ─▶ loop ══ socket ══▶ loop ┼─▶ worker 2
//!  app T ─┘                                └─▶ worker T
//! ```
//!
//! Every thread's call takes [`call`](super::call)'s path, but they share the two loop threads
//! and the socket: the JSON line of each `T` says how latency (median and p99 over every call of
//! every thread) and aggregate throughput (`calls_per_s`: all threads' calls over the wall time)
//! bear the sharing. `calls` is the total over the threads; each round is split evenly between
//! them ([`Team`]).

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use mp_testkit::probe::Probe;

use super::check_reply;
use super::runtime::{self, Parent};
use super::{Call, Client, Scenario, Team};

/// The thread counts `mpbench threads` and `mpbench all` measure, one JSON line each.
pub const COUNTS: [usize; 4] = [1, 2, 8, 32];

/// One variant of the `threads` scenario: `count` threads at once.
#[derive(Clone, Copy, Debug)]
pub struct Threads {
    count: usize,
}

impl Threads {
    /// The variant with `count` application threads (at least 1).
    pub fn new(count: usize) -> Threads {
        Threads {
            count: count.max(1),
        }
    }
}

impl Scenario for Threads {
    fn name(&self) -> &'static str {
        "threads"
    }

    fn threads(&self) -> usize {
        self.count
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-threads-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        let team = Team::spawn("mpbench-threads", self.count, move |index| {
            member_call(probe.clone(), index)
        })?;
        // The members hold the probe; the connection and loop go after them.
        Ok(Client::Threads(team.keeping(parent)))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-threads-child-loop")
    }
}

/// On member thread `index`: one unmeasured call, which makes this thread's worker in the child,
/// then the call to time. Each thread adds in its own range of numbers, so a reply meant for
/// another thread cannot pass the check.
fn member_call(probe: Arc<dyn Probe>, index: usize) -> io::Result<Call> {
    let base = i32::try_from(index)
        .map_err(io::Error::other)?
        .wrapping_mul(1 << 20);
    check_reply(
        base.wrapping_add(1),
        probe.add(base, 1).map_err(runtime::to_io)?,
    )?;
    let mut seq = base;
    Ok(Box::new(move || {
        seq = seq.wrapping_add(1);
        check_reply(
            seq.wrapping_add(1),
            probe.add(seq, 1).map_err(runtime::to_io)?,
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        // The second batch has fewer calls than there are threads.
        let samples = crate::scenarios::run_in_one_process(Threads::new(4), &[30, 3]);
        assert_eq!(samples.len(), 33);
    }
}
