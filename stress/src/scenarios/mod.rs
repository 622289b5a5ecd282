//! What is measured: one module per scenario.
//!
//! A [`Scenario`] has two halves. In the parent, [`client`](Scenario::client) turns the
//! connection into a [`Client`]: usually a [`Call`], which the benchmark times once per call, or,
//! for calls that are made on a thread the benchmark does not run on, a [`Batch`] that makes and
//! times many calls itself. In the child, [`serve`](Scenario::serve) answers calls until the
//! parent closes the connection.
//!
//! To add a scenario (the runtime ones still missing, `callback` and `nested`, go here): write
//! `scenarios/NAME.rs` with a type implementing [`Scenario`], and add it to [`all`]. `mpbench`,
//! the child subcommand and `mpbench all` pick it up from there.
//!
//! The scenarios so far:
//! - [`raw`]: blocking 8-byte ping-pong on the socket, the floor;
//! - [`chain`]: the runtime's four thread hand-offs per call, with plain threads and channels;
//! - [`capnp`]: a plain capnp-rpc call on the runtime's connection, made on the parent's
//!   event-loop thread and answered on the child's: no `Context`, no worker, no hand-off;
//! - [`call`]: the runtime's blocking call with a `Context`, from the application thread to the
//!   child's worker thread dedicated to it.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

pub mod call;
pub mod callback;
pub mod capnp;
pub mod chain;
pub mod nested;
pub mod raw;
mod runtime;

/// One timed call, made on the thread that calls it (the "application" thread).
///
/// Dropping it releases whatever the client set up (threads, sockets), in bounded time.
pub type Call = Box<dyn FnMut() -> io::Result<()>>;

/// `n` calls, each timed by the scenario itself: pushes one latency per call onto the vector.
///
/// For calls the application thread cannot time one by one, because they are made on another
/// thread (the `capnp` scenario's run on the event-loop thread). Dropping it releases whatever
/// the client set up, in bounded time.
pub type Batch = Box<dyn FnMut(usize, &mut Vec<Duration>) -> io::Result<()>>;

/// What a scenario's [`client`](Scenario::client) hands the benchmark.
pub enum Client {
    /// The benchmark times each call around it.
    Each(Call),
    /// The scenario makes and times a batch of calls.
    Batch(Batch),
}

impl Client {
    /// Makes `n` calls and appends their `n` latencies to `samples`.
    ///
    /// # Errors
    ///
    /// The first call that fails; `InvalidData` if a [`Batch`] recorded a wrong number of
    /// samples.
    pub fn run(&mut self, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
        match self {
            Client::Each(call) => {
                for _ in 0..n {
                    let t = Instant::now();
                    call()?;
                    samples.push(t.elapsed());
                }
                Ok(())
            }
            Client::Batch(batch) => {
                let before = samples.len();
                batch(n, samples)?;
                let recorded = samples.len() - before;
                if recorded == n {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a batch of {n} calls recorded {recorded} samples"),
                    ))
                }
            }
        }
    }
}

/// A way of making calls from one process to another.
pub trait Scenario {
    /// The name on the command line and in the JSON output.
    fn name(&self) -> &'static str;

    /// How many application threads make calls at once (`threads` in the JSON output).
    fn threads(&self) -> usize {
        1
    }

    /// In the parent: sets up over `conn` and returns the calls to time.
    ///
    /// Every blocking wait in the returned client, and in its drop, must end once the connection
    /// is shut down or the child dies: the benchmark relies on it to never hang on a dead child.
    ///
    /// # Errors
    ///
    /// Whatever set-up fails with; the call itself reports errors per call.
    fn client(&mut self, conn: UnixStream) -> io::Result<Client>;

    /// In the child: answers calls on `conn` until the parent closes it (EOF), then returns.
    ///
    /// # Errors
    ///
    /// I/O errors, or a protocol violation by the parent.
    fn serve(&mut self, conn: UnixStream) -> io::Result<()>;
}

/// Every scenario, in the order `mpbench all` runs and prints them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(raw::Raw),
        Box::new(chain::Chain),
        Box::new(capnp::Capnp),
        Box::new(call::ContextCall),
        Box::new(callback::Callback),
        Box::new(nested::Nested),
    ]
}

/// The scenario called `name`, if there is one.
///
/// # Examples
///
/// ```
/// assert_eq!(stress::scenarios::find("raw").map(|s| s.name()), Some("raw"));
/// assert!(stress::scenarios::find("nope").is_none());
/// ```
pub fn find(name: &str) -> Option<Box<dyn Scenario>> {
    all().into_iter().find(|s| s.name() == name)
}

/// The names of every scenario, in [`all`] order.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name()).collect()
}

// The wire format shared by the scenarios that need no runtime: one little-endian u64 per
// message, in both directions.

/// Writes one 8-byte message.
pub(crate) fn write_msg(w: &mut impl Write, value: u64) -> io::Result<()> {
    w.write_all(&value.to_le_bytes())
}

/// Reads one 8-byte message; `None` on EOF at a message boundary (the peer closed).
pub(crate) fn read_msg(r: &mut impl Read) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a message",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The peer died with data in flight: as good as EOF for the child.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && filled == 0 => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(u64::from_le_bytes(buf)))
}

/// Reads the reply to `sent`, which must be `expected`.
pub(crate) fn read_reply(r: &mut impl Read, expected: u64) -> io::Result<()> {
    match read_msg(r)? {
        Some(got) => check_reply(expected, got),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the child closed the connection",
        )),
    }
}

/// Checks that a reply is the expected one, so a benchmark cannot pass on garbage.
pub(crate) fn check_reply(expected: u64, got: u64) -> io::Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected reply {expected}, got {got}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names = names();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(
            !names.contains(&"all"),
            "`all` is the command, not a scenario"
        );
    }

    #[test]
    fn message_round_trip_and_eof() {
        let mut wire = Vec::new();
        write_msg(&mut wire, 7).expect("write to vec");
        write_msg(&mut wire, u64::MAX).expect("write to vec");
        let mut r = wire.as_slice();
        assert_eq!(read_msg(&mut r).expect("read"), Some(7));
        assert_eq!(read_msg(&mut r).expect("read"), Some(u64::MAX));
        assert_eq!(read_msg(&mut r).expect("read"), None);
    }

    #[test]
    fn eof_inside_a_message_is_an_error() {
        let mut r: &[u8] = &[1, 2, 3];
        let e = read_msg(&mut r).expect_err("truncated");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn wrong_reply_is_an_error() {
        let mut wire = Vec::new();
        write_msg(&mut wire, 5).expect("write to vec");
        let e = read_reply(&mut wire.as_slice(), 6).expect_err("mismatch");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
