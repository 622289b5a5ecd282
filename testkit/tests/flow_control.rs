//! Memory per connection is bounded, and a slow reader slows only itself
//! (`thread-map/src/network.rs`): a peer that pipelines requests and never
//! reads the replies, or queues them behind a busy worker, is stopped being
//! read once its connection's budget is used, rather than buffered without
//! limit; a message's memory is committed as its data arrives; a message
//! over the connection's size limit closes that connection.
//!
//! Every test runs against a child process (see `limits_common`), which must
//! survive and keep serving other connections, at their usual latency.

use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use std::sync::Arc;

use mp_testkit::probe::Probe;
use mp_testkit::watchdog::guard;

mod limits_common;
use limits_common::LimitsChild;
use mp_testkit::wire::{self, Answer, GateMethod, bootstrap, echo, gate_call, make_thread};

const LIMIT: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;
/// The budget of the child's connections in these tests.
const BUDGET: usize = 16 * MIB;
/// How long the child must not read from a peer for it to count as
/// stopped. Only concludes a wait that has already shown what it must: a
/// child without flow control reads everything, and the write completes.
const QUIET: Duration = Duration::from_secs(3);

/// The child process of this file's tests (see `limits_common`).
#[test]
#[ignore = "the child process of this file's tests, which start it"]
fn limits_child() {
    limits_common::child_main();
}

/// Writes `data` until all is written, or the reader has taken nothing for
/// [`QUIET`]; returns how much was written.
fn write_until_stalled(stream: &UnixStream, data: &[u8]) -> usize {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut written = 0;
    while written < data.len() {
        match (&*stream).write(&data[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut pollfd = libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                let ready = unsafe { libc::poll(&mut pollfd, 1, QUIET.as_millis() as i32) };
                if ready == 0 {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("writing to the child: {e}"),
        }
    }
    stream.set_nonblocking(false).expect("blocking");
    written
}

/// Median and 99th percentile of `count` calls of `add` on `probe`.
fn latency(probe: &Arc<dyn Probe>, count: usize) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..count)
        .map(|i| {
            let start = Instant::now();
            assert_eq!(probe.add(i as i32, 1).expect("add"), i as i32 + 1);
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[count / 2], times[count * 99 / 100])
}

/// The child's memory may grow by the budget (what counts against it),
/// the copies the methods make of what they receive (an echo copies its
/// data, which the budget does not count), and a constant: buffers and the
/// one message read past the budget.
fn assert_bounded(what: &str, grown_kib: u64, bound: usize) {
    eprintln!(
        "{what}: the child grew by {} MiB (bound {} MiB)",
        grown_kib / 1024,
        bound / MIB
    );
    assert!(
        (grown_kib as usize) * 1024 < bound,
        "{what}: the child grew by {} MiB, more than {} MiB",
        grown_kib / 1024,
        bound / MIB
    );
}

fn budget_env() -> Vec<(&'static str, String)> {
    vec![("MP_LIMITS_FLOW_BUDGET", BUDGET.to_string())]
}

/// A peer pipelines 300 echoes of 1 MiB and never reads the replies: the
/// child stops reading it once a budget's worth of replies is queued, its
/// memory stays under the budget plus a constant, and another connection's
/// calls keep their latency. (Without flow control the child read all
/// 300 MiB and queued every reply.)
#[test]
fn a_peer_that_never_reads_its_replies_is_paused() {
    guard(
        "a_peer_that_never_reads_its_replies_is_paused",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&budget_env());
            let good = child.assert_serving("before");
            let (baseline, baseline_p99) = latency(&good, 200);
            let mut raw = child.raw();
            let (_init, _map, thread, probe) = raw.probe("slow-reader");
            let before = child.rss_kib();
            let payload = vec![0x5a; MIB];
            let mut requests = Vec::new();
            for i in 0..300 {
                requests.extend(wire::bytes(&echo(10 + i, probe, thread, &payload)));
            }
            let written = write_until_stalled(&raw.stream, &requests);
            assert!(
                written < requests.len(),
                "the child read all {} MiB from a peer that reads nothing",
                requests.len() / MIB
            );
            let grown = child.rss_kib().saturating_sub(before);
            let (during, during_p99) = latency(&good, 200);
            eprintln!(
                "slow reader: {} MiB written before the child stopped reading; another connection's add: median {baseline:?} (p99 {baseline_p99:?}) before, {during:?} (p99 {during_p99:?}) during",
                written / MIB
            );
            assert_bounded("slow reader", grown, BUDGET + 48 * MIB);
            assert!(
                during < baseline * 10 + Duration::from_millis(1),
                "another connection slowed from {baseline:?} to {during:?}"
            );
            // Hanging up frees it all; the child carries on.
            raw.stream
                .shutdown(std::net::Shutdown::Both)
                .expect("shutdown");
            drop(raw);
            child.assert_serving("after the slow reader");
            drop(good);
            child.finish("slow reader");
        },
    );
}

/// A peer queues 200 echoes of 1 MiB behind a worker blocked in a method:
/// the child stops reading it once a budget's worth of requests is held.
/// The peer hangs up while paused: the child notices all the same (the
/// blocked worker shows as orphaned), and once the worker is released it
/// ends and the child carries on. (Without flow control the child held all
/// 200 MiB, and a copy of each.)
#[test]
fn requests_queued_behind_a_busy_worker_are_bounded() {
    guard(
        "requests_queued_behind_a_busy_worker_are_bounded",
        LIMIT,
        || {
            let mut child = LimitsChild::spawn(&budget_env());
            let good = child.assert_serving("before");
            let (baseline, _) = latency(&good, 200);
            let mut raw = child.raw();
            let (_init, map, thread, probe) = raw.probe("queuer");
            raw.send(&make_thread(4, map, "watcher"));
            let watcher = raw.results(4)[0];
            let gate = format!("queued-{}", std::process::id());
            raw.send(&gate_call(5, probe, thread, GateMethod::Block, &gate));
            raw.send(&gate_call(
                6,
                probe,
                watcher,
                GateMethod::WaitBlocked,
                &gate,
            ));
            assert!(matches!(raw.answer(6), Answer::Results(_)));
            let before = child.rss_kib();
            let payload = vec![0xa5; MIB];
            let mut requests = Vec::new();
            for i in 0..200 {
                requests.extend(wire::bytes(&echo(10 + i, probe, thread, &payload)));
            }
            let written = write_until_stalled(&raw.stream, &requests);
            assert!(
                written < requests.len(),
                "the child read all {} MiB of requests queued behind a busy worker",
                requests.len() / MIB
            );
            let grown = child.rss_kib().saturating_sub(before);
            let (during, _) = latency(&good, 200);
            eprintln!(
                "queued requests: {} MiB written before the child stopped reading; another connection's add: median {baseline:?} before, {during:?} during",
                written / MIB
            );
            // Each held request's data is copied once more by echo.
            assert_bounded("queued requests", grown, 2 * BUDGET + 48 * MIB);
            assert!(
                during < baseline * 10 + Duration::from_millis(1),
                "another connection slowed from {baseline:?} to {during:?}"
            );
            // The peer leaves while its connection is paused: the child
            // closes it (orphaning the blocked worker), without reading on.
            let (live, _) = child.counts();
            raw.stream
                .shutdown(std::net::Shutdown::Both)
                .expect("shutdown");
            drop(raw);
            child.wait_counts("the paused peer hung up", |(_, orphaned)| orphaned == 1);
            good.open(&gate).expect("open the gate");
            // The orphan and the watcher end; the good connection's worker
            // stays.
            child.wait_counts("the gate opened", |c| c == (live - 2, 0));
            child.assert_serving("after the queued requests");
            drop(good);
            child.finish("queued requests");
        },
    );
}

/// Segment tables that announce 63 MiB, and only a little data after them:
/// the child commits memory for what arrived, not for what was announced.
/// (Without this, each such header had the child map 63 MiB at once.)
#[test]
fn an_announced_size_is_not_committed_before_the_data_arrives() {
    guard(
        "an_announced_size_is_not_committed_before_the_data_arrives",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let large = (32 * MIB) as u64;
            let before = child.large_writable_mappings(large);
            let mut raws = Vec::new();
            for _ in 0..4 {
                let mut raw = child.raw();
                // A bootstrap, then the header and a little data in the
                // same write: the child reads on to the header as soon as
                // it has handled the bootstrap, before its answer goes out.
                let mut data = wire::bytes(&bootstrap(0));
                data.extend_from_slice(&[0u8; 4]);
                data.extend_from_slice(&((63 * MIB / 8) as u32).to_le_bytes());
                data.extend_from_slice(&[0u8; 4096]);
                raw.write(&data);
                raw.results(0);
                raws.push(raw);
            }
            let after = child.large_writable_mappings(large);
            eprintln!(
                "four 63 MiB announcements: {before} writable mappings of 32 MiB or more before, {after} after"
            );
            assert_eq!(after, before, "the child mapped memory for announced sizes");
            child.assert_serving("with four announcements pending");
            drop(raws);
            child.assert_serving("after the announcements");
            child.finish("announcements");
        },
    );
}

/// With a message limit of 1 MiB for the child's connections, a 2 MiB echo
/// closes that connection with a reason; a 512 KiB one is answered; the
/// child serves other connections.
#[test]
fn a_message_over_the_connections_limit_closes_it() {
    guard(
        "a_message_over_the_connections_limit_closes_it",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[("MP_LIMITS_MAX_MESSAGE", MIB.to_string())]);
            let mut raw = child.raw();
            let (_init, _map, thread, probe) = raw.probe("big");
            raw.send(&echo(10, probe, thread, &vec![1; MIB / 2]));
            assert!(matches!(raw.answer(10), Answer::Results(_)));
            raw.send(&echo(11, probe, thread, &vec![2; 2 * MIB]));
            let abort = raw.expect_closed().unwrap_or_default();
            eprintln!("a 2 MiB message: {abort}");
            assert!(
                abort.contains("too large") && abort.contains("limit of 1048576 bytes"),
                "{abort}"
            );
            child.assert_serving("after an oversized message");
            child.finish("message limit");
        },
    );
}

/// Writes the seeds of the `connection` fuzz target that reach the limits
/// (`fuzz/seeds/connection/limit-*`): pipelined nested `callFn`s, pipelined
/// echoes past a small flow budget, and a segment table announcing more
/// than arrives, each after a handshake, each short enough for
/// `-max_len=4096`. Every message after the bootstrap names the server's
/// capabilities by the questions that return them (promised answers), so a
/// seed works whatever order the server answers in; each is replayed
/// against a child first, which must answer it as expected. Run with
/// `cargo test -p mp-testkit --test flow_control -- --ignored write_limit_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/connection: run it with --ignored"]
fn write_limit_fuzz_seeds() {
    use mp_testkit::wire::{Incoming, Ref, call_fn, construct, make_probe};
    guard("write_limit_fuzz_seeds", LIMIT, || {
        // The bootstrap capability is answered at once, as export 0; the
        // rest by the questions that make them.
        let (init, map, thread, probe) = (0, Ref::Answer(1), Ref::Answer(2), Ref::Answer(3));
        let handshake = [
            bootstrap(0),
            construct(1, init, 0),
            make_thread(2, map, "seed"),
            make_probe(3, init, thread),
        ]
        .iter()
        .flat_map(wire::bytes)
        .collect::<Vec<u8>>();
        let mut nested = handshake.clone();
        for i in 0..12 {
            nested.extend(wire::bytes(&call_fn(10 + i, probe, thread, 2, 1, i as i32)));
        }
        let mut echoes = handshake.clone();
        for i in 0..3 {
            echoes.extend(wire::bytes(&echo(10 + i, probe, thread, &[7; 900])));
        }
        let mut announced = handshake;
        announced.extend_from_slice(&[0, 0, 0, 0]);
        // 12 KiB: under the fuzz target's message limit, so it is read.
        announced.extend_from_slice(&(12u32 * 1024 / 8).to_le_bytes());
        announced.extend_from_slice(&[0; 512]);

        // Replayed: the nested calls each call us back (a 2 MiB worker
        // nests 12 deep), the echoes are answered.
        let child = LimitsChild::spawn(&[]);
        let mut raw = child.raw();
        raw.write(&nested);
        let mut callbacks = 0;
        while callbacks < 12 {
            match raw.next() {
                Some(Incoming::Call(..)) => callbacks += 1,
                Some(Incoming::Return(id, Answer::Exception(why))) => {
                    panic!("question {id} of the nested seed failed: {why}")
                }
                Some(_) => {}
                None => panic!("the child closed the nested seed's connection"),
            }
        }
        let mut raw = child.raw();
        raw.write(&echoes);
        // In any order: each echo's answer goes out when its job is done.
        let mut echoed = Vec::new();
        while echoed.len() < 3 {
            match raw.next() {
                Some(Incoming::Return(id, Answer::Results(_))) if id >= 10 => echoed.push(id),
                Some(Incoming::Return(id, answer)) if id >= 10 => {
                    panic!("echo {id} of the seed failed: {answer:?}")
                }
                Some(_) => {}
                None => panic!("the child closed the echo seed's connection"),
            }
        }
        drop(raw);
        child.finish("fuzz seeds");

        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/connection");
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        for (name, data) in [
            ("limit-nested-callfn", nested),
            ("limit-pipelined-echo", echoes),
            ("limit-announced-size", announced),
        ] {
            std::fs::write(dir.join(name), data).expect("write a seed");
        }
    });
}

/// A 488-byte `Call` whose cap table claims 4 million (zero-sized)
/// descriptors, found by the fuzzer: with capnp's fixed traversal limit the
/// child's loop walked them all (0.6 s in a debug build, every connection
/// on the loop stalled meanwhile, and as often as a peer sends one). A
/// message may now be read only a few times over its own size: the
/// connection is closed at once ("Read limit exceeded"), and the child
/// serves its other connections.
#[test]
fn a_few_bytes_cannot_stand_for_millions_of_elements() {
    guard(
        "a_few_bytes_cannot_stand_for_millions_of_elements",
        LIMIT,
        || {
            let child = LimitsChild::spawn(&[]);
            let good = child.assert_serving("before");
            // Bootstrap, construct, makeThread, then makeProbe with the
            // amplified cap table (the fuzzer's find, cut after it).
            let data = include_bytes!("../../fuzz/seeds/connection/amplified-cap-table");
            let mut raw = child.raw();
            let start = Instant::now();
            raw.write(data);
            let abort = raw.expect_closed().unwrap_or_default();
            eprintln!(
                "amplified cap table: closed after {:?}: {abort}",
                start.elapsed()
            );
            assert!(abort.contains("Read limit exceeded"), "{abort:?}");
            assert_eq!(good.add(2, 3).expect("the other connection"), 5);
            child.assert_serving("after the amplified message");
            drop(good);
            child.finish("amplified message");
        },
    );
}
