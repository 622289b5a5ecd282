//! What is measured: one module per scenario.
//!
//! A [`Scenario`] has two halves. In the parent, [`client`](Scenario::client) turns the
//! connection into a [`Client`]: usually a [`Call`], which the benchmark times once per call; for
//! calls that are made on a thread the benchmark does not run on, a [`Batch`] that makes and
//! times many calls itself; or a [`Team`] of application threads that make calls at once. In the
//! child, [`serve`](Scenario::serve) answers calls until the parent closes the connection.
//!
//! To add a scenario: write `scenarios/NAME.rs` with a type implementing [`Scenario`], and add it
//! to [`all`]. `mpbench`, the child subcommand and `mpbench all` pick it up from there. A
//! scenario may have several *variants* (`threads` has one per thread count): they share a name,
//! each is its own entry in [`all`] with its own child process, and each prints its own JSON line.
//!
//! The scenarios so far:
//! - [`raw`]: 8-byte ping-pong on the socket, the floor, its two ends waiting as the runtime's
//!   loops do (spin, then sleep);
//! - [`raw_1cpu`]: the same with both ends pinned to one CPU and blocking in `read`: the price of
//!   a same-CPU hand-off;
//! - [`chain`]: the runtime's four thread hand-offs per call, with plain threads and channels,
//!   each thread waiting as the runtime's do (spin, then sleep): the floor of `call`'s shape;
//!   [`chain_park`] (`chain-park`), the same with waits that sleep at once;
//! - [`capnp`]: a plain capnp-rpc call on the runtime's connection, made on the parent's
//!   event-loop thread and answered on the child's: no `Context`, no worker, no hand-off;
//!   [`capnp_callback`] (`capnp-callback`, `capnp-callback-saved`), the same with a call back
//!   to a function the parent passes with each call (or once): the floors of `callback` and
//!   `callback-saved`;
//! - [`call`]: the runtime's blocking call with a `Context`, from the application thread to the
//!   child's worker thread dedicated to it, through the generated proxies; `call-hand`, the
//!   same call through the hand-written client and server of [`hand`], their baseline;
//! - [`listen`]: `call` over a connection made through a listening unix socket (`listen`) or
//!   TCP on loopback (`listen-tcp`) instead of a socketpair;
//! - [`callback`] and [`nested`]: calls back into the caller's thread, once or 8 levels deep
//!   (and `callback-hand`, `callback` written by hand; `callback-saved`, the closure passed
//!   once and called back with each call: `callback` less passing a capability per call);
//! - [`paced`]: `call` once per millisecond (`paced-1ms`) or per 10 ms (`paced-10ms`), so
//!   the threads settle between calls: what spinning costs and buys when calls do not keep
//!   coming;
//! - [`threads`]: 1, 2, 8 and 32 application threads calling at once, each on its own worker;
//! - [`newthread`]: the first call of a fresh thread, which also makes its worker;
//! - [`payload`] and [`raw_1mib`]: 1 MiB each way, through the runtime and on the bare socket
//!   (and `payload-hand`, `payload` written by hand);
//! - [`scale`]: 1000 short-lived application threads, and what they leave behind in the child.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::run::{DEFAULT_CALLS, Options};

pub mod call;
pub mod callback;
pub mod capnp;
pub mod capnp_callback;
pub mod chain;
pub mod chain_park;
pub mod hand;
pub mod listen;
pub mod nested;
pub mod newthread;
pub mod paced;
pub mod payload;
pub mod raw;
pub mod raw_1cpu;
pub mod raw_1mib;
mod runtime;
pub mod scale;
pub mod team;
pub mod threads;

pub use team::Team;

/// One timed call, made on the thread that calls it (the "application" thread).
///
/// Dropping it releases whatever the client set up (threads, sockets), in bounded time.
pub type Call = Box<dyn FnMut() -> io::Result<()>>;

/// `n` calls, each timed by the scenario itself: pushes one latency per call onto the vector.
///
/// For calls the application thread cannot time one by one, because they are made on another
/// thread (the `capnp` scenario's run on the event-loop thread), or whose work per call besides
/// the call must stay out of the sample (`payload` checks its megabyte after the clock stops).
/// Dropping it releases whatever the client set up, in bounded time.
pub type Batch = Box<dyn FnMut(usize, &mut Vec<Duration>) -> io::Result<()>>;

/// What a scenario's [`client`](Scenario::client) hands the benchmark.
pub enum Client {
    /// The benchmark times each call around it.
    Each(Call),
    /// The scenario makes and times a batch of calls.
    Batch(Batch),
    /// Several application threads split each batch of calls between them and make them at
    /// once, each timing its own.
    Threads(Team),
}

impl Client {
    /// Makes `n` calls and appends their `n` latencies to `samples`.
    ///
    /// # Errors
    ///
    /// The first call that fails; `InvalidData` if a [`Batch`] recorded a wrong number of
    /// samples.
    pub fn run(&mut self, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
        let before = samples.len();
        match self {
            Client::Each(call) => return time_each(call, n, samples),
            Client::Batch(batch) => batch(n, samples)?,
            Client::Threads(team) => team.run(n, samples)?,
        }
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

/// Makes `n` calls of `call`, timing each around it.
fn time_each(call: &mut Call, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
    for _ in 0..n {
        let t = Instant::now();
        call()?;
        samples.push(t.elapsed());
    }
    Ok(())
}

/// How many calls a scenario makes in one run, from the [`Options`] asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Measured calls.
    pub calls: usize,
    /// Unmeasured calls before measuring.
    pub warmup: usize,
    /// Whether the calls may be split into interleaved rounds; `false`: one round makes them all
    /// (`scale`, whose point is that all its threads are alive at once).
    pub split: bool,
}

impl Plan {
    /// `--calls` and `--warmup` if given, else `default_calls` and a tenth of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use stress::Options;
    /// use stress::scenarios::Plan;
    ///
    /// let plan = Plan::with_default(&Options::default(), 200);
    /// assert_eq!((plan.calls, plan.warmup), (200, 20));
    /// let asked = Options { calls: Some(7), ..Options::default() };
    /// assert_eq!(Plan::with_default(&asked, 200).calls, 7);
    /// ```
    pub fn with_default(opts: &Options, default_calls: usize) -> Plan {
        Plan {
            calls: opts.calls.unwrap_or(default_calls),
            warmup: opts.warmup.unwrap_or(default_calls / 10),
            split: true,
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

    /// How many calls to make, given the options; called once, before [`client`](Self::client).
    ///
    /// The default is `--calls`/`--warmup`, or [`DEFAULT_CALLS`] and a tenth of it: scenarios
    /// whose calls cost much more make fewer by default.
    fn plan(&mut self, opts: &Options) -> Plan {
        Plan::with_default(opts, DEFAULT_CALLS)
    }

    /// Bytes moved per call, both ways together, for scenarios that move a payload: the table
    /// shows their throughput in MB/s.
    fn bytes_per_call(&self) -> Option<u64> {
        None
    }

    /// Whether the benchmark records the child's threads and memory around the measured calls
    /// ([`Resources`](crate::run::Resources)).
    fn watch_resources(&self) -> bool {
        false
    }

    /// Whether `ctx_switches_per_call` means anything: not when threads exit during the
    /// measured calls, since Linux drops an exited thread's counts from `/proc` (the JSON
    /// then says `null`).
    fn counts_switches(&self) -> bool {
        true
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

/// Every scenario and variant, in the order `mpbench all` runs and prints them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    let mut all: Vec<Box<dyn Scenario>> = vec![
        Box::new(raw::Raw),
        Box::new(raw_1cpu::RawOneCpu),
        Box::new(chain::Chain),
        Box::new(chain_park::ChainPark),
        Box::new(capnp::Capnp),
        Box::new(call::ContextCall),
        Box::new(call::HandCall),
        Box::new(listen::Listen { tcp: false }),
        Box::new(listen::Listen { tcp: true }),
        Box::new(callback::Callback),
        Box::new(callback::HandCallback),
        Box::new(callback::SavedCallback),
        Box::new(capnp_callback::CapnpCallback { saved: false }),
        Box::new(capnp_callback::CapnpCallback { saved: true }),
        Box::new(nested::Nested),
        Box::new(paced::Paced::ONE_MS),
        Box::new(paced::Paced::TEN_MS),
    ];
    for count in threads::COUNTS {
        all.push(Box::new(threads::Threads::new(count)));
    }
    all.push(Box::new(newthread::NewThread));
    all.push(Box::new(payload::Payload));
    all.push(Box::new(payload::HandPayload));
    all.push(Box::new(raw_1mib::RawMib));
    all.push(Box::new(scale::Scale::default()));
    all
}

/// The scenario called `name` (its first variant), if there is one: what a child serves.
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

/// Every variant of the scenario called `name`, of each scenario in a comma-separated list
/// (`raw,chain,call`: run interleaved, in [`all`] order), or every scenario for `all`; empty if
/// a name is not a scenario.
///
/// # Examples
///
/// ```
/// use stress::scenarios::select;
///
/// let threads: Vec<usize> = select("threads").iter().map(|s| s.threads()).collect();
/// assert_eq!(threads, [1, 2, 8, 32]);
/// assert_eq!(select("raw").len(), 1);
/// assert_eq!(select("all").len(), stress::scenarios::all().len());
/// assert!(select("nope").is_empty());
/// let floors: Vec<&str> = select("call,raw").iter().map(|s| s.name()).collect();
/// assert_eq!(floors, ["raw", "call"]);
/// assert!(select("raw,nope").is_empty());
/// ```
pub fn select(name: &str) -> Vec<Box<dyn Scenario>> {
    let all = all();
    if name == "all" {
        return all;
    }
    let wanted: Vec<&str> = name.split(',').collect();
    if !wanted.iter().all(|w| all.iter().any(|s| s.name() == *w)) {
        return Vec::new();
    }
    all.into_iter()
        .filter(|s| wanted.contains(&s.name()))
        .collect()
}

/// The names of every scenario, in [`all`] order, each once.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for scenario in all() {
        if !names.contains(&scenario.name()) {
            names.push(scenario.name());
        }
    }
    names
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
    Ok(read_full(r, &mut buf)?.then(|| u64::from_le_bytes(buf)))
}

/// Fills `buf` from `r`; `false` on EOF before the first byte (the peer closed between
/// messages), an error on EOF inside one.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a message",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The peer died with data in flight: as good as EOF between messages.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && filled == 0 => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
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
pub(crate) fn check_reply<T: PartialEq + std::fmt::Display>(expected: T, got: T) -> io::Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected reply {expected}, got {got}"),
        ))
    }
}

/// Socketpair ends whose reads and writes give up after a minute, so a
/// broken protocol fails a test instead of hanging it.
#[cfg(test)]
pub(crate) fn bounded_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    for end in [&a, &b] {
        end.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        end.set_write_timeout(Some(Duration::from_secs(60)))
            .expect("write timeout");
    }
    (a, b)
}

/// How long [`run_in_one_process`] may take before its watchdog aborts the test binary with a
/// dump of the stuck threads.
#[cfg(test)]
pub(crate) const ONE_PROCESS_LIMIT: Duration = Duration::from_secs(60);

/// Runs `scenario` with its server on a thread of this process instead of a child (checks the
/// protocol, not the timing): one [`Client::run`] per entry of `batches`, of that many calls,
/// each of which must record that many samples; then closes the connection and checks the
/// server returned cleanly. Returns every sample, in order.
///
/// The whole of it runs under [`mp_testkit::watchdog::guard`]: a hang aborts the test binary
/// with a dump of the stuck threads after [`ONE_PROCESS_LIMIT`].
#[cfg(test)]
pub(crate) fn run_in_one_process<S: Scenario + Clone + Send + 'static>(
    scenario: S,
    batches: &[usize],
) -> Vec<Duration> {
    let label = format!("{}::client_and_server_in_one_process", scenario.name());
    mp_testkit::watchdog::guard(&label, ONE_PROCESS_LIMIT, || {
        let (a, b) = bounded_pair();
        let mut server_side = scenario.clone();
        let server = std::thread::spawn(move || server_side.serve(b));
        let mut client_side = scenario;
        let mut client = client_side.client(a).expect("client");
        let mut samples = Vec::new();
        for &calls in batches {
            let before = samples.len();
            client.run(calls, &mut samples).expect("calls");
            assert_eq!(samples.len() - before, calls);
        }
        // Dropping the client closes the socket: the server sees EOF and returns.
        drop(client);
        server.join().expect("server thread").expect("serve");
        samples
    })
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
    fn variants_are_adjacent_and_differ_in_threads() {
        let all: Vec<(&str, usize)> = all().iter().map(|s| (s.name(), s.threads())).collect();
        for (i, (name, threads)) in all.iter().enumerate() {
            let same: Vec<usize> = (0..all.len()).filter(|&j| all[j].0 == *name).collect();
            assert_eq!(
                same,
                (same[0]..same[0] + same.len()).collect::<Vec<_>>(),
                "variants of {name} are listed together"
            );
            assert!(
                !all[..i].contains(&(*name, *threads)),
                "{name} has two variants with {threads} threads"
            );
        }
    }

    #[test]
    fn plans_follow_the_options() {
        let asked = Options {
            calls: Some(50),
            warmup: Some(5),
            ..Options::default()
        };
        for mut scenario in all() {
            let plan = scenario.plan(&asked);
            assert_eq!(plan.calls, 50, "{}", scenario.name());
            assert!(plan.warmup <= 5, "{}", scenario.name());
        }
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
