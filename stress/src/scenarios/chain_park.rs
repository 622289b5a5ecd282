//! `chain-park`: [`chain`] with every wait a sleep: its threads block in a
//! crossbeam `recv` (a few rounds of spinning inside crossbeam, then a futex) or in `read` at
//! once, where `chain`'s spin first, as the runtime's do.
//!
//! Same threads, same hand-offs, same placement as `chain`; only the waits differ. So the gap
//! between the two is what spinning buys on plain threads, and `chain-park` beside `call` with
//! `MULTIPROCESS_WAIT_SPIN_US=0` (where `chain` parks too) says how much of a parked call is the
//! wake-ups rather than the runtime.

use std::io;
use std::os::unix::net::UnixStream;

use super::{Client, Scenario, chain};
use crate::wait::Waits;

/// The `chain-park` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainPark;

impl Scenario for ChainPark {
    fn name(&self) -> &'static str {
        "chain-park"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        chain::client(conn, Waits::Park)
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        chain::serve(conn, Waits::Park)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(ChainPark, &[100, 7]);
    }

    #[test]
    fn call_fails_instead_of_hanging_when_the_child_is_gone() {
        let (a, b) = crate::scenarios::bounded_pair();
        drop(b);
        let mut call = ChainPark.client(a).expect("client");
        assert!(call.run(1, &mut Vec::new()).is_err());
    }
}
