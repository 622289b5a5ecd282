//! `raw`: blocking 8-byte ping-pong over the socket; the floor every other scenario is
//! compared with.
//!
//! Per call: the application thread writes 8 bytes, the child's main thread (blocked in
//! `read`) wakes and echoes them, the application thread (blocked in `read`) wakes. Two thread
//! wake-ups, two writes, two reads, no other threads.

use std::io;
use std::os::unix::net::UnixStream;

use super::{Client, Scenario, read_msg, read_reply, write_msg};

/// The `raw` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl Scenario for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn client(&mut self, mut conn: UnixStream) -> io::Result<Client> {
        let mut seq = 0u64;
        Ok(Client::Each(Box::new(move || {
            seq = seq.wrapping_add(1);
            write_msg(&mut conn, seq)?;
            read_reply(&mut conn, seq)
        })))
    }

    fn serve(&mut self, mut conn: UnixStream) -> io::Result<()> {
        while let Some(value) = read_msg(&mut conn)? {
            write_msg(&mut conn, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(Raw, &[100]);
    }
}
