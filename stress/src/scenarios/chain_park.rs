//! `chain-park`: [`chain`] with every wait a sleep: its threads sleep at once on their
//! channel's condition variable or in `read`, where `chain`'s first spin, as the runtime's do.
//!
//! Same threads, same hand-offs, same placement as `chain` (a sleeper still wakes near its
//! waker); only the waits differ, as if `MULTIPROCESS_WAIT_SPIN_US` were 0 for this scenario
//! alone. So the gap between the two, in one run, is what spinning buys on plain threads; on
//! an idle virtual machine, most of it is the host waking a halted CPU for a thread woken
//! there.

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
