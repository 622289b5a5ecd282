//! `paced-1ms` and `paced-10ms`: `call`, one call per period instead of back to back: the
//! application thread sleeps 1 ms (or 10 ms) between calls, untimed, as a GUI polling its node
//! or a miner asking for templates does, and every thread of both processes has run out of
//! work and settled by the next call.
//!
//! What it shows is what a spinning policy costs and buys when calls do not keep coming:
//! `cpu_us_per_call` counts the whole period, so a thread that spins after each call for
//! nothing shows there, and `median_us` shows what a call costs when the threads it goes
//! through may have gone to sleep (the back-to-back scenarios never let them).

use std::io;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::run::Options;

use super::call::CallClient;
use super::runtime;
use super::{Client, Plan, Scenario};

/// The `paced-*` scenarios: `call` with a pause of `gap` before each call.
#[derive(Clone, Copy, Debug)]
pub struct Paced {
    name: &'static str,
    gap: Duration,
}

impl Paced {
    /// One call per millisecond.
    pub const ONE_MS: Paced = Paced {
        name: "paced-1ms",
        gap: Duration::from_millis(1),
    };
    /// One call per 10 milliseconds.
    pub const TEN_MS: Paced = Paced {
        name: "paced-10ms",
        gap: Duration::from_millis(10),
    };
}

impl Paced {
    /// The calls measured unless `--calls` says otherwise: about 2 s of them.
    pub fn default_calls(&self) -> usize {
        let calls = Duration::from_secs(2).as_micros() / self.gap.as_micros().max(1);
        usize::try_from(calls).unwrap_or(usize::MAX).max(10)
    }
}

impl Scenario for Paced {
    fn name(&self) -> &'static str {
        self.name
    }

    fn plan(&mut self, opts: &Options) -> Plan {
        Plan::with_default(opts, self.default_calls())
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let mut client = CallClient::connect(conn, "mpbench-paced-loop")?;
        let gap = self.gap;
        Ok(Client::Batch(Box::new(move |n, samples| {
            for _ in 0..n {
                std::thread::sleep(gap);
                let start = Instant::now();
                let answered = client.call();
                samples.push(start.elapsed());
                answered?;
            }
            Ok(())
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-paced-child-loop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(Paced::ONE_MS, &[20]);
    }

    #[test]
    fn names_and_plans() {
        let opts = Options::default();
        assert_eq!(Paced::ONE_MS.name(), "paced-1ms");
        assert_eq!(Paced::TEN_MS.name(), "paced-10ms");
        let (mut one, mut ten) = (Paced::ONE_MS, Paced::TEN_MS);
        assert_eq!(one.plan(&opts).calls, 2000);
        assert_eq!(ten.plan(&opts).calls, 200);
    }
}
