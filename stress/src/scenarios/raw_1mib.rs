//! `raw-1mib`: the bare socket moving what [`payload`] moves: the parent writes
//! 1 MiB, the child reads all of it and writes it back, the parent reads it. The floor for
//! `payload`'s throughput (MB/s in the table).
//!
//! The socket's buffer holds less than a megabyte, so each direction takes several wake-ups of
//! the reader; neither side waits for the other's full message before the other has sent it,
//! so nothing deadlocks. The sample is the exchange only; the check of the reply is after the
//! clock, as in `payload`. `calls` counts exchanges; 200 by default.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::payload::{self, BYTES, check, pattern, stamp};
use super::{Client, Plan, Scenario, read_full};
use crate::run::Options;

/// The `raw-1mib` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawMib;

impl Scenario for RawMib {
    fn name(&self) -> &'static str {
        "raw-1mib"
    }

    fn plan(&mut self, opts: &Options) -> Plan {
        Plan::with_default(opts, payload::DEFAULT_CALLS)
    }

    fn bytes_per_call(&self) -> Option<u64> {
        Some(2 * BYTES as u64)
    }

    fn client(&mut self, mut conn: UnixStream) -> io::Result<Client> {
        let mut data = pattern();
        let mut reply = vec![0u8; BYTES];
        let mut seq = 0u64;
        Ok(Client::Batch(Box::new(move |n, samples| {
            for _ in 0..n {
                seq = seq.wrapping_add(1);
                stamp(&mut data, seq);
                let start = Instant::now();
                conn.write_all(&data)?;
                if !read_full(&mut conn, &mut reply)? {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the child closed the connection",
                    ));
                }
                samples.push(start.elapsed());
                check(&reply, &data)?;
            }
            Ok(())
        })))
    }

    fn serve(&mut self, mut conn: UnixStream) -> io::Result<()> {
        let mut buf = vec![0u8; BYTES];
        while read_full(&mut conn, &mut buf)? {
            conn.write_all(&buf)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(RawMib, &[5]);
    }

    #[test]
    fn eof_inside_a_message_is_an_error() {
        let mut r: &[u8] = &[1, 2, 3];
        let mut buf = [0u8; 8];
        assert!(read_full(&mut r, &mut buf).is_err());
        let mut empty: &[u8] = &[];
        assert!(!read_full(&mut empty, &mut buf).expect("clean EOF"));
    }
}
