//! `raw`: 8-byte ping-pong over the socket; the floor every other scenario is compared with.
//!
//! Per call: the application thread writes 8 bytes, the child's main thread (waiting in `read`)
//! wakes and echoes them, the application thread (waiting in `read`) wakes. Two thread
//! wake-ups, two writes, two reads, no other threads.
//!
//! Both ends wait for the socket the way the runtime's loops do ([`crate::wait`]): non-blocking
//! reads and yields for up to `MULTIPROCESS_WAIT_SPIN_US`, then a blocking `read`. With reads
//! that block at once, a ping-pong whose two ends the kernel has put on different CPUs pays, on
//! an idle virtual machine, the host's wake-up of an idle CPU twice per call (about 60 µs
//! against 4 on the project's two-CPU VM, the one or the other from one round to the next), and
//! the floor would be higher than the runtime's calls it bounds.

use std::io;
use std::os::unix::net::UnixStream;

use super::{Client, Scenario, read_msg, read_reply, write_msg};
use crate::wait::{History, Role, SocketReader, Waits};

/// The `raw` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl Scenario for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let mut seq = 0u64;
        // It waits for the reply to what it sent: something expected soon.
        let expecting = History::new();
        Ok(Client::Each(Box::new(move || {
            seq = seq.wrapping_add(1);
            write_msg(&mut &conn, seq)?;
            let mut reader = SocketReader::new(&conn, Waits::Spin, Role::Loop, &expecting);
            read_reply(&mut reader, seq)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        // It waits for the next request: nothing expected.
        let idle = History::new();
        let mut reader = SocketReader::new(&conn, Waits::Spin, Role::Loop, &idle);
        while let Some(value) = read_msg(&mut reader)? {
            write_msg(&mut &conn, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(Raw, &[100, 7]);
    }
}
