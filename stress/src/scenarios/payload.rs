//! `payload`: `Probe.echo` of a 1 MiB byte string: the runtime's call carrying a megabyte each
//! way. Beside it, [`raw_1mib`](super::raw_1mib) moves the same megabyte each way on the bare
//! socket, so the two throughputs (MB/s in the table) compare.
//!
//! Per echo the parent copies the bytes into the capnp request on its loop thread; the child
//! reads them into a `Vec` for its worker, which hands them back to be copied into the response;
//! the parent copies the response out. The sample is the echo only; checking the reply happens
//! after the clock, as in `raw-1mib`. The echo borrows the buffer it sends, and the buffer it
//! returns is the next echo's data (the one sent is freed then, after the clock): outside the
//! echo, each call only stamps the data and checks the reply, the work `raw-1mib` does too, so
//! `calls_per_s` and MB/s (from the wall time around the whole batch) compare.
//!
//! `calls` counts echoes. Fewer by default (200): each moves 2 MiB.
//!
//! `payload` goes through the generated proxies; `payload-hand` ([`HandPayload`]) makes the
//! same request with the hand-written client and server of [`hand`].

use std::io;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::hand::{self, HandProbe};
use super::runtime::{self, Parent};
use super::{Client, Plan, Scenario};
use crate::run::Options;

/// The bytes each echo (and each `raw-1mib` exchange) carries each way.
pub const BYTES: usize = 1 << 20;

/// Echoes `payload` and `raw-1mib` make unless `--calls` says otherwise.
pub const DEFAULT_CALLS: usize = 200;

/// The `payload` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Payload;

impl Scenario for Payload {
    fn name(&self) -> &'static str {
        "payload"
    }

    fn plan(&mut self, opts: &Options) -> Plan {
        Plan::with_default(opts, DEFAULT_CALLS)
    }

    fn bytes_per_call(&self) -> Option<u64> {
        Some(2 * BYTES as u64)
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-payload-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        // The probe first: it must drop before the connection it lives on.
        let state = (probe, parent);
        // The generated `echo` borrows the data: the buffer stays with the batch, which drops
        // it after the clock.
        Ok(echoes(move |data| {
            state.0.echo(data).map_err(runtime::to_io)
        }))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-payload-child-loop")
    }
}

/// The `payload-hand` scenario: `payload` with the hand-written client and server.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandPayload;

impl Scenario for HandPayload {
    fn name(&self) -> &'static str {
        "payload-hand"
    }

    fn plan(&mut self, opts: &Options) -> Plan {
        Plan::with_default(opts, DEFAULT_CALLS)
    }

    fn bytes_per_call(&self) -> Option<u64> {
        Some(2 * BYTES as u64)
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let probe = HandProbe::connect(conn, "mpbench-payload-hand-loop")?;
        Ok(echoes(move |data| probe.echo(data)))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        hand::serve(conn, "mpbench-payload-hand-child-loop")
    }
}

/// The batch both variants time: each echo of [`BYTES`] bytes, made by `echo` (which borrows
/// the buffer it sends and returns the reply), is one sample; the reply is checked after the
/// clock stops and becomes the next echo's data, the buffer sent being dropped only then,
/// outside the sample.
fn echoes(mut echo: impl FnMut(&[u8]) -> io::Result<Vec<u8>> + 'static) -> Client {
    // What the next echo must return, and the buffer it sends (the last echo's reply).
    let mut expected = pattern();
    let mut data = expected.clone();
    let mut seq = 0u64;
    Client::Batch(Box::new(move |n, samples| {
        for _ in 0..n {
            seq = seq.wrapping_add(1);
            stamp(&mut expected, seq);
            stamp(&mut data, seq);
            let start = Instant::now();
            let echoed = echo(&data)?;
            samples.push(start.elapsed());
            check(&echoed, &expected)?;
            data = echoed;
        }
        Ok(())
    }))
}

/// [`BYTES`] bytes that are not all alike, so a reply shifted or cut short cannot pass.
pub(crate) fn pattern() -> Vec<u8> {
    (0..BYTES).map(|i| (i % 251) as u8).collect()
}

/// Writes `seq` in the first 8 bytes, so a stale reply cannot pass for the current one.
pub(crate) fn stamp(data: &mut [u8], seq: u64) {
    data[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Checks that the echo is what was sent.
pub(crate) fn check(echoed: &[u8], sent: &[u8]) -> io::Result<()> {
    if echoed == sent {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the echo of {} bytes came back as {} different bytes",
                sent.len(),
                echoed.len()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        // Two batches: the second's echoes reuse the buffers the first left behind.
        crate::scenarios::run_in_one_process(Payload, &[3, 2]);
    }

    #[test]
    fn hand_written_client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(HandPayload, &[3, 2]);
    }

    #[test]
    fn stamps_differ() {
        let (mut a, mut b) = (pattern(), pattern());
        stamp(&mut a, 1);
        stamp(&mut b, 2);
        assert!(check(&a, &b).is_err());
        assert!(check(&a[..BYTES - 1], &a).is_err());
        assert!(check(&a, &a.clone()).is_ok());
    }
}
