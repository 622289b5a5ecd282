//! `nested`: a recursion 8 levels deep across the process boundary:
//! `Probe.recurse(f, 8)`; the child's worker calls `f(8)` on the parent's
//! calling thread, which calls `recurse(f, 7)` back on the same worker, and
//! so on down to 0, with no new thread. A tree is [`LEVELS`] levels, each
//! one `recurse` call and the callback it makes (`recurse(f, 8)` down to
//! `recurse(f, 0)`: nine of each). Each sample is one whole tree divided by
//! its levels: `median_us` is per level, comparable with one `callback`,
//! while `calls` and `ctx_switches_per_call` count whole trees.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Instant;

use mp_testkit::probe::{IntFn, Probe};

use super::runtime::{self, Parent};
use super::{Client, Scenario};

/// The depth of a tree's top call: `recurse(f, DEPTH)`.
pub const DEPTH: i32 = 8;

/// Levels per measured tree: `recurse` calls (and callbacks) from depth
/// [`DEPTH`] down to 0.
pub const LEVELS: u32 = DEPTH as u32 + 1;

/// The `nested` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nested;

/// `f(n)`: recurse once more through the child, or stop at 0.
fn level(probe: Arc<dyn Probe>) -> IntFn {
    Arc::new(move |n| {
        if n == 0 {
            return Ok(0);
        }
        match probe.recurse(level(probe.clone()), n - 1) {
            Ok(out) => Ok(out.result.wrapping_add(1)),
            Err(_) => Ok(i32::MIN),
        }
    })
}

impl Scenario for Nested {
    fn name(&self) -> &'static str {
        "nested"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-nested-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        Ok(Client::Batch(Box::new(move |n, samples| {
            let _ = &parent;
            for _ in 0..n {
                let top = level(probe.clone());
                let start = Instant::now();
                let result = probe.recurse(top, DEPTH).map_err(runtime::to_io)?.result;
                samples.push(start.elapsed() / LEVELS);
                super::check_reply(DEPTH, result)?;
            }
            Ok(())
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-nested-child-loop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(Nested, &[20]);
    }
}
