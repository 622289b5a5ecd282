//! Bad input from a peer: garbage bytes, truncated frames, oversized segment
//! tables, capabilities it was never given, and `Context.thread`s that name
//! something other than a thread this connection made.
//!
//! Each time, the bad connection is closed (the server sends an `Abort` and
//! then EOF) or the bad call fails with a clear error; the server's event
//! loop and its other connections carry on. In process, one server loop
//! serves a well-behaved client (`Connection::connect`, `ProbeClient`) and
//! raw sockets this test writes hand-built Cap'n Proto messages to; against
//! `mp-child` (which serves one connection), the child closes the bad
//! connection and exits cleanly instead of crashing.
//!
//! No wait is unbounded: sockets have read and write timeouts, and every
//! test runs under the watchdog.

use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use capnp::message::{Builder, HeapAllocator};
use std::sync::Arc;

use mp_testkit::probe::{Init, Probe};
use mp_testkit::probe_capnp::{init, probe};
use mp_testkit::probe_server::serve;
use mp_testkit::watchdog::guard;
use mp_testkit::wire::{
    Answer, Cap, GateMethod, Raw, add, bootstrap, bytes, construct, construct_with, finish,
    gate_call, make_pool, make_probe, make_probe_with, make_thread, pool_call, resolve_to_error,
};
use multiprocess::Interface;
use multiprocess_thread_map::{Connection, Error, EventLoop, LoopHandle};

mod common;
use common::child_exe;

const LIMIT: Duration = Duration::from_secs(60);
/// The bound on every socket read and write, and on every wait for a
/// connection to close.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The in-process server: one loop, a good client and raw connections.
// ---------------------------------------------------------------------------

struct Server {
    // Fields drop in order: the good client's handles, then the loops.
    probe: Arc<dyn Probe>,
    _init: Arc<dyn Init>,
    good: Connection,
    good_served: Connection,
    client_loop: LoopHandle,
    server_loop: LoopHandle,
}

impl Server {
    fn start() -> Self {
        let server_loop = EventLoop::start("bad-input-server").expect("server loop");
        let client_loop = EventLoop::start("bad-input-client").expect("client loop");
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let good_served = serve(&server_loop, theirs).expect("serve");
        let (good, init) =
            Connection::connect::<init::Client>(&client_loop, ours).expect("connect");
        let init = <dyn Init as Interface>::from_remote(init);
        let probe = init.make_probe().expect("makeProbe");
        assert_eq!(probe.add(1, 2).expect("add"), 3);
        Self {
            probe,
            _init: init,
            good,
            good_served,
            client_loop,
            server_loop,
        }
    }

    /// A new connection served on the server loop, whose other end we write
    /// raw bytes to.
    fn raw(&self) -> (Raw, Connection) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let served = serve(&self.server_loop, theirs).expect("serve");
        (Raw::new(ours, IO_TIMEOUT), served)
    }

    /// The server loop runs, the good connection is up, and its calls
    /// still work (on the same worker as before).
    fn assert_alive(&self) {
        assert_eq!(self.server_loop.sync(|| 6 * 7).expect("server loop"), 42);
        assert!(!self.good.is_disconnected(), "the good connection closed");
        assert!(
            !self.good_served.is_disconnected(),
            "the server closed the good connection"
        );
        let before = self.probe.whoami().expect("whoami");
        assert_eq!(self.probe.add(20, 22).expect("add"), 42);
        assert_eq!(self.probe.echo(b"still here").expect("echo"), b"still here");
        assert_eq!(self.probe.whoami().expect("whoami"), before);
        // And a new well-behaved client can still connect.
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let served = serve(&self.server_loop, theirs).expect("serve");
        let (connection, init) =
            Connection::connect::<init::Client>(&self.client_loop, ours).expect("connect");
        let probe = <dyn Init as Interface>::from_remote(init)
            .make_probe()
            .expect("makeProbe");
        assert_eq!(probe.add(2, 3).expect("add"), 5);
        drop(probe);
        connection.disconnect();
        assert!(
            served.wait_disconnected(IO_TIMEOUT).is_some(),
            "the server did not see a clean disconnect"
        );
    }
}

/// Closes our raw end and waits (bounded) until the server's end of that
/// connection reports the disconnect.
fn hang_up(raw: Raw, served: &Connection) {
    drop(raw);
    assert!(
        served.wait_disconnected(IO_TIMEOUT).is_some(),
        "the server did not see the raw connection close"
    );
}

/// The server closed the raw connection: EOF on our side, and its own end
/// reports the disconnect. Returns the reason of the `Abort` the server
/// sent before closing, if any, and the server's reason.
fn assert_closed(raw: Raw, served: &Connection) -> (Option<String>, Error) {
    let abort = raw.expect_closed();
    let reason = served
        .wait_disconnected(IO_TIMEOUT)
        .expect("the server's end of the bad connection did not close");
    match &reason {
        Error::Disconnected(why) => assert!(!why.trim().is_empty(), "a blank disconnect reason"),
        other => panic!("unexpected disconnect reason: {other:?}"),
    }
    (abort, reason)
}

/// Sends `data` on a new raw connection (then, if `eof`, shuts down our
/// write side) and checks the server closes it and stays healthy. Returns
/// the `Abort` reason the server sent.
fn closes_connection(server: &Server, data: &[u8], eof: bool) -> String {
    let (mut raw, served) = server.raw();
    raw.write(data);
    if eof {
        raw.stream.shutdown(Shutdown::Write).expect("shutdown");
    }
    let (abort, reason) = assert_closed(raw, &served);
    server.assert_alive();
    let abort = abort.unwrap_or_default();
    eprintln!("closed: abort {abort:?}, server side {reason}");
    abort
}

// ---------------------------------------------------------------------------
// Byte-level inputs.
// ---------------------------------------------------------------------------

/// A segment table: `count` segments (the first word holds count - 1), with
/// the given lengths in words.
fn segment_table(count_minus_one: u32, lengths: &[u32]) -> Vec<u8> {
    let mut out = count_minus_one.to_le_bytes().to_vec();
    for len in lengths {
        out.extend_from_slice(&len.to_le_bytes());
    }
    // Padded to a whole word.
    out.resize(out.len().next_multiple_of(8), 0);
    out
}

#[test]
fn garbage_bytes_close_the_connection() {
    guard("garbage_bytes_close_the_connection", LIMIT, || {
        let server = Server::start();
        // Text: its first word claims 0x20544547 + 1 segments.
        let abort = closes_connection(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert!(abort.contains("segments"), "{abort}");
        // All ones: the segment count wraps to 0.
        let abort = closes_connection(&server, &[0xff; 64], false);
        assert!(abort.contains("segments"), "{abort}");
        // A valid one-segment frame whose content is not an RPC message (its
        // root pointer is garbage).
        let mut frame = segment_table(0, &[2]);
        frame.extend_from_slice(&[0xab; 16]);
        closes_connection(&server, &frame, false);
        // A valid frame with an unknown message type (union tag 0xffff).
        let mut frame = segment_table(0, &[2]);
        frame.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]); // struct: 1 data word
        frame.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0, 0, 0]);
        let (mut raw, served) = server.raw();
        raw.write(&frame);
        // capnp-rpc answers an unknown message with `Unimplemented` and
        // keeps the connection; closing our side must then close it.
        raw.stream.shutdown(Shutdown::Write).expect("shutdown");
        assert_closed(raw, &served);
        server.assert_alive();
        // Noise after a valid bootstrap.
        let mut data = bytes(&bootstrap(0));
        data.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        closes_connection(&server, &data, false);
    });
}

#[test]
fn truncated_frames_close_the_connection() {
    guard("truncated_frames_close_the_connection", LIMIT, || {
        let server = Server::start();
        let whole = bytes(&bootstrap(0));
        // Cut inside the segment table, right after it, and inside the
        // segment.
        for cut in [2, 8, whole.len() / 2, whole.len() - 1] {
            let abort = closes_connection(&server, &whole[..cut], true);
            assert!(
                abort.to_lowercase().contains("end of file") || abort.is_empty(),
                "cut at {cut}: {abort}"
            );
        }
        // A whole message then a truncated one: the first is answered.
        let (mut raw, served) = server.raw();
        let mut data = whole.clone();
        data.extend_from_slice(&bytes(&bootstrap(1))[..12]);
        raw.write(&data);
        raw.stream.shutdown(Shutdown::Write).expect("shutdown");
        assert_eq!(raw.results(0).len(), 1, "the bootstrap is answered");
        assert_closed(raw, &served);
        server.assert_alive();
    });
}

#[test]
fn oversized_segment_tables_close_the_connection() {
    guard(
        "oversized_segment_tables_close_the_connection",
        LIMIT,
        || {
            let server = Server::start();
            // The peer never sends the segments nor closes: the server must
            // reject the header alone, without waiting for (or allocating) the
            // announced size. So no EOF from us here.
            // 2^31 segments.
            let abort = closes_connection(&server, &segment_table((1 << 31) - 1, &[1]), false);
            assert!(abort.contains("Too many segments"), "{abort}");
            // 2^32 - 1 segments.
            let abort = closes_connection(&server, &segment_table(u32::MAX - 1, &[1]), false);
            assert!(abort.contains("Too many segments"), "{abort}");
            // One segment of 2^30 words (8 GiB).
            let abort = closes_connection(&server, &segment_table(0, &[1 << 30]), false);
            assert!(abort.contains("too large"), "{abort}");
            // One segment of 2^32 - 1 words.
            let abort = closes_connection(&server, &segment_table(0, &[u32::MAX]), false);
            assert!(abort.contains("too large"), "{abort}");
            // 511 segments of 2^24 words each: every length fits alone, the sum
            // does not.
            let lengths = vec![1 << 24; 511];
            let abort = closes_connection(&server, &segment_table(510, &lengths), false);
            assert!(abort.contains("too large"), "{abort}");
        },
    );
}

#[test]
fn unknown_capability_ids_fail_cleanly() {
    guard("unknown_capability_ids_fail_cleanly", LIMIT, || {
        let server = Server::start();
        // A call to import 12345, never exported: capnp-rpc treats this as a
        // protocol violation and aborts the connection.
        let (mut raw, served) = server.raw();
        raw.send(&make_probe_with(0, 12345, None));
        let (abort, reason) = assert_closed(raw, &served);
        let abort = abort.expect("an Abort before closing");
        assert!(abort.contains("not a current export ID"), "{abort}");
        eprintln!("unknown import: abort {abort:?}, server side {reason}");
        server.assert_alive();

        // The same after a proper handshake, on a connection that holds
        // real capabilities and a worker.
        let (mut raw, served) = server.raw();
        let (init, map) = raw.handshake();
        raw.send(&make_thread(2, map, "raw-thread"));
        let worker = raw.results(2)[0];
        raw.send(&make_probe(3, init, worker));
        let probe_id = raw.results(3)[0];
        raw.send(&add(4, probe_id, worker, 40, 2));
        assert!(matches!(raw.answer(4), Answer::Results(_)));
        raw.send(&add(5, 12345, worker, 1, 1));
        let (abort, _) = assert_closed(raw, &served);
        assert!(abort.is_some_and(|a| a.contains("not a current export ID")));
        server.assert_alive();

        // A capability id the server never exported, passed back as if it
        // had (`receiverHosted`), as a call parameter that is not the
        // thread: construct's ThreadMap.
        let (mut raw, served) = server.raw();
        raw.send(&bootstrap(0));
        let init = raw.results(0)[0];
        raw.send(&construct_with(1, init, Cap::ReceiverHosted(12345)));
        // construct keeps the (broken) ThreadMap and answers; the
        // connection stays up and working.
        let _ = raw.answer(1);
        raw.send(&make_probe_with(2, init, None));
        let reason = raw.exception(2);
        assert!(reason.contains("no thread specified"), "{reason}");
        assert!(!served.is_disconnected());
        hang_up(raw, &served);
        server.assert_alive();
    });
}

#[test]
fn foreign_context_threads_fail_the_call() {
    guard("foreign_context_threads_fail_the_call", LIMIT, || {
        let server = Server::start();
        // Connection A makes a worker: a Thread valid on A only.
        let (mut a, a_served) = server.raw();
        let (a_init, a_map) = a.handshake();
        a.send(&make_thread(2, a_map, "thread-of-a"));
        let a_thread = a.results(2)[0];
        a.send(&make_probe(3, a_init, a_thread));
        a.results(3);

        // Connection B names things that are not its threads.
        let (mut b, b_served) = server.raw();
        let (b_init, b_map) = b.handshake();
        let mut question = 2;
        let mut expect_invalid = |b: &mut Raw, thread: Cap, what: &str| {
            b.send(&make_probe_with(question, b_init, Some(thread)));
            let reason = b.exception(question);
            question += 1;
            assert!(
                reason.contains("invalid thread")
                    && reason.contains("not a thread this process made"),
                "{what} ({thread:?}): {reason}"
            );
            eprintln!("{what}: {reason}");
        };
        // A's thread id: on B it names nothing (or something else).
        expect_invalid(&mut b, Cap::ReceiverHosted(a_thread), "A's thread id on B");
        // An id the server never exported on any connection.
        expect_invalid(&mut b, Cap::ReceiverHosted(12345), "never exported");
        // B's own ThreadMap: a capability of the server, not a Thread.
        expect_invalid(&mut b, Cap::ReceiverHosted(b_map), "B's ThreadMap");
        // B's Init.
        expect_invalid(&mut b, Cap::ReceiverHosted(b_init), "B's Init");
        // A capability we host, pretending to be a thread.
        expect_invalid(&mut b, Cap::SenderHosted(7), "a capability of the client");

        // A promise we host: the server waits for it to resolve, without
        // blocking the connection; resolved to an error, the call fails.
        b.send(&make_probe_with(20, b_init, Some(Cap::SenderPromise(8))));
        b.send(&make_thread(21, b_map, "thread-of-b"));
        let b_thread = b.results(21)[0];
        b.send(&make_probe(22, b_init, b_thread));
        let b_probe = b.results(22)[0];
        b.send(&resolve_to_error(8, "no such thread"));
        let reason = b.exception(20);
        assert!(reason.contains("invalid thread"), "{reason}");

        // B's own thread works, and A's still works on A.
        b.send(&add(23, b_probe, b_thread, 2, 3));
        assert!(matches!(b.answer(23), Answer::Results(_)));
        a.send(&make_probe(4, a_init, a_thread));
        a.results(4);
        assert!(!a_served.is_disconnected() && !b_served.is_disconnected());
        server.assert_alive();

        // B's thread named on A fails on A.
        a.send(&make_probe(5, a_init, b_thread));
        match a.answer(5) {
            // The same id may be a thread of A's own (ids are per
            // connection): then it runs, on A's thread.
            Answer::Results(_) => assert_eq!(b_thread, a_thread),
            Answer::Exception(reason) => assert!(reason.contains("invalid thread"), "{reason}"),
        }

        // Closing the raw connections ends their workers; the server stays.
        hang_up(a, &a_served);
        hang_up(b, &b_served);
        server.assert_alive();
    });
}

/// A pool size from the peer is bounded: `makePool(4294967295)` fails at
/// once instead of having the server's loop start threads until the OS
/// refuses; a sensible pool still works.
#[test]
fn huge_pools_are_refused() {
    guard("huge_pools_are_refused", LIMIT, || {
        let server = Server::start();
        let (mut raw, served) = server.raw();
        let (init, map) = raw.handshake();
        let workers_before = multiprocess_thread_map::live_workers();
        raw.send(&make_pool(2, map, u32::MAX));
        let reason = raw.exception(2);
        assert!(reason.contains("makePool(4294967295) refused"), "{reason}");
        assert!(
            multiprocess_thread_map::live_workers() < workers_before + 256,
            "the refused pool started workers"
        );
        server.assert_alive();
        // The connection is still usable: a small pool serves calls that
        // name no thread.
        raw.send(&make_pool(3, map, 2));
        raw.results(3);
        raw.send(&make_probe_with(4, init, None));
        raw.results(4);
        hang_up(raw, &served);
        server.assert_alive();
    });
}

/// A peer that cancels a call (`Finish` before the `Return`) while its job
/// still runs on a pool worker: the request keeps counting in that worker's
/// load until the job has run, so pool dispatch sends new calls elsewhere
/// meanwhile and back to it afterwards; and the request's
/// `Context.callbackThread` is released once the job is done.
#[test]
fn a_cancelled_call_is_accounted_until_its_job_ends() {
    guard(
        "a_cancelled_call_is_accounted_until_its_job_ends",
        LIMIT,
        || {
            let server = Server::start();
            let (mut raw, served) = server.raw();
            let (init, map) = raw.handshake();
            raw.send(&make_pool(2, map, 2));
            raw.results(2);
            raw.send(&make_probe_with(3, init, None));
            let probe_id = raw.results(3)[0];
            let mut question = 4;
            let mut whoami = |raw: &mut Raw, callback: u32| {
                raw.send(&pool_call(question, probe_id, callback, None));
                let tid = raw
                    .returned(question, |content| {
                        content
                            .get_as::<probe::whoami_results::Reader<'_>>()
                            .and_then(|results| results.get_result())
                            .map(|info| info.get_tid())
                            .expect("whoami's results")
                    })
                    .expect("whoami succeeds");
                question += 1;
                tid.1
            };
            // Both pool workers idle: dispatch picks the first, every time.
            let first = whoami(&mut raw, 100);
            assert_eq!(whoami(&mut raw, 100), first);

            // Block it (with callback thread 50), then cancel the call.
            let gate = format!("cancelled-{}", std::process::id());
            raw.send(&pool_call(1000, probe_id, 50, Some(&gate)));
            server
                .probe
                .wait_blocked(&gate, 1)
                .expect("the call blocks");
            raw.send(&finish(1000));
            // The job still runs on `first`: new calls go to the other worker,
            // and are answered at once rather than queued behind the job.
            let second = whoami(&mut raw, 100);
            assert_ne!(second, first, "a call was queued behind the cancelled job");
            assert_eq!(whoami(&mut raw, 100), second);

            mp_testkit::probe_server::open_gate(&gate);
            // Once the job has run, `first` is idle again and gets the calls. A
            // request whose count was never undone would keep it away forever.
            let deadline = std::time::Instant::now() + IO_TIMEOUT;
            while whoami(&mut raw, 101) != first {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the cancelled request still counts in its worker's load"
                );
            }
            // Callback thread 50 is released: the request let go of it, and the
            // worker, which keeps the last callback thread it saw, has seen 101
            // since.
            while !raw.released.contains(&50) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "callback thread 50 was never released (released: {:?})",
                    raw.released
                );
                whoami(&mut raw, 101);
            }
            hang_up(raw, &served);
            server.assert_alive();
        },
    );
}

/// A bad connection closed while good clients' calls are in flight on
/// the same server loop: those calls complete.
#[test]
fn good_client_survives_a_bad_neighbour_mid_call() {
    guard(
        "good_client_survives_a_bad_neighbour_mid_call",
        LIMIT,
        || {
            let server = Server::start();
            // The good client blocks a worker; meanwhile a bad connection sends
            // garbage and is closed; the blocked call then completes.
            let gate = format!("bad-input-{}", std::process::id());
            let (done_tx, done_rx) = mpsc::channel();
            std::thread::scope(|s| {
                let probe = &server.probe;
                let gate2 = gate.clone();
                s.spawn(move || {
                    let _ = done_tx.send(probe.block(&gate2));
                });
                // A second client thread, with a worker of its own.
                let (ours, theirs) = UnixStream::pair().expect("socketpair");
                let _served = serve(&server.server_loop, theirs).expect("serve");
                let (_conn, init) = Connection::connect::<init::Client>(&server.client_loop, ours)
                    .expect("connect");
                let other = <dyn Init as Interface>::from_remote(init)
                    .make_probe()
                    .expect("makeProbe");
                other.wait_blocked(&gate, 1).expect("waitBlocked");
                closes_connection_without_checks(&server, &[0x55; 100]);
                other.open(&gate).expect("open");
                let blocked = done_rx.recv_timeout(IO_TIMEOUT).expect("block returned");
                blocked.expect("the blocked call completed");
            });
            server.assert_alive();
        },
    );
}

fn closes_connection_without_checks(server: &Server, data: &[u8]) {
    let (mut raw, served) = server.raw();
    raw.write(data);
    assert_closed(raw, &served);
}

// ---------------------------------------------------------------------------
// Against the child process.
// ---------------------------------------------------------------------------

/// `mp-child` spoken to over a raw socket, its exit waited for on another
/// thread so that every wait for it is bounded; registered in
/// `mp_testkit::children` until reaped, for the watchdog's dump.
struct RawChild {
    raw: Raw,
    pid: u32,
    exited: mpsc::Receiver<std::io::Result<std::process::Output>>,
    waiter: std::thread::JoinHandle<()>,
}

impl RawChild {
    /// Spawns `mp-child` (after `configure` adjusts its command), with its
    /// stderr captured.
    fn spawn(configure: impl FnOnce(&mut Command)) -> Self {
        let mut command = Command::new(child_exe());
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_BACKTRACE");
        configure(&mut command);
        let (child, stream) = multiprocess_thread_map::spawn_process(&mut command).expect("spawn");
        let pid = child.id();
        let registration = mp_testkit::children::register(pid, "mp-child (raw socket)");
        let (exited_tx, exited) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let output = child.wait_with_output();
            // Reaped: the pid may name another process from now on.
            drop(registration);
            let _ = exited_tx.send(output);
        });
        Self {
            raw: Raw::new(stream, IO_TIMEOUT),
            pid,
            exited,
            waiter,
        }
    }

    /// Reads until the child closes the connection, then checks that it
    /// exits, with success and no panic, within [`IO_TIMEOUT`]. Returns the
    /// reason of the `Abort` the child sent before closing, if any.
    fn expect_clean_exit(self, what: &str) -> Option<String> {
        let abort = self.raw.expect_closed();
        let output = match self.exited.recv_timeout(IO_TIMEOUT) {
            Ok(output) => output.expect("wait for mp-child"),
            Err(_) => {
                // SAFETY: kill(2) on the pid of our own child, not yet reaped
                // (its waiter thread has not returned).
                unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
                panic!("{what}: mp-child did not exit within {IO_TIMEOUT:?} of closing");
            }
        };
        let _ = self.waiter.join();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{what}: mp-child exited with {}; stderr:\n{stderr}",
            output.status
        );
        assert!(
            !stderr.contains("panicked"),
            "{what}: mp-child panicked:\n{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{what}: mp-child wrote to its stdout:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        abort
    }
}

/// Spawns `mp-child`, sends `data` (then, if `eof`, shuts down our write
/// side), and checks that the child closes the connection and exits with
/// success and no panic.
fn child_survives(what: &str, data: &[u8], eof: bool) {
    let mut child = RawChild::spawn(|_| {});
    child.raw.write(data);
    if eof {
        child
            .raw
            .stream
            .shutdown(Shutdown::Write)
            .expect("shutdown");
    }
    let abort = child.expect_clean_exit(what);
    eprintln!("{what}: child closed (abort {abort:?}) and exited cleanly");
}

#[test]
fn child_closes_bad_connections_and_exits_cleanly() {
    guard(
        "child_closes_bad_connections_and_exits_cleanly",
        LIMIT,
        || {
            child_survives("garbage", b"\x00\x01garbage that is no capnp frame", false);
            child_survives("all ones", &[0xff; 32], false);
            child_survives(
                "truncated",
                &bytes(&bootstrap(0))[..10],
                true, // EOF mid-frame
            );
            child_survives("2^31 segments", &segment_table((1 << 31) - 1, &[1]), false);
            child_survives("2^30 words", &segment_table(0, &[1 << 30]), false);
            child_survives(
                "unknown import",
                &bytes(&make_probe_with(0, 12345, None)),
                false,
            );
            // Not bad input, a control: a bootstrap then EOF closes cleanly too.
            child_survives("bootstrap then EOF", &bytes(&bootstrap(0)), true);
        },
    );
}

/// A bad `Context.thread` against the child: the call fails, the child's
/// connection stays up and serves the next call; closing it lets the child
/// exit cleanly.
#[test]
fn child_rejects_foreign_context_threads() {
    guard("child_rejects_foreign_context_threads", LIMIT, || {
        let mut child = RawChild::spawn(|_| {});
        let raw = &mut child.raw;
        let (init, map) = raw.handshake();
        raw.send(&make_probe(2, init, map));
        let reason = raw.exception(2);
        assert!(
            reason.contains("not a thread this process made"),
            "{reason}"
        );
        raw.send(&make_probe(3, init, 54321));
        let reason = raw.exception(3);
        assert!(
            reason.contains("not a thread this process made"),
            "{reason}"
        );
        raw.send(&make_thread(4, map, "raw"));
        let thread = raw.results(4)[0];
        raw.send(&make_probe(5, init, thread));
        let probe = raw.results(5)[0];
        raw.send(&add(6, probe, thread, 4, 5));
        assert!(matches!(raw.answer(6), Answer::Results(_)));
        raw.stream.shutdown(Shutdown::Write).expect("shutdown");
        child.expect_clean_exit("child_rejects_foreign_context_threads");
    });
}

/// Releasing a worker does not free its place while its thread still runs:
/// a peer that cancels a blocked call and drops the worker's `Thread` (so
/// the server has no object left for it) still has that thread counted
/// against its limit (3 in this child) until the thread ends. Otherwise a
/// peer could pile up stuck threads without bound, three at a time.
#[test]
fn a_released_worker_counts_until_its_thread_ends() {
    guard(
        "a_released_worker_counts_until_its_thread_ends",
        LIMIT,
        || {
            let mut child = RawChild::spawn(|command| {
                command.env("MP_CHILD_MAX_WORKERS", "3");
            });
            let raw = &mut child.raw;
            let (init, map) = raw.handshake();
            raw.send(&make_thread(2, map, "held"));
            let held = raw.results(2)[0];
            raw.send(&make_thread(3, map, "watcher"));
            let watcher = raw.results(3)[0];
            raw.send(&make_probe(4, init, watcher));
            let probe_id = raw.results(4)[0];
            // Block `held`'s thread, and wait (on `watcher`) until it is blocked.
            let gate = format!("released-worker-{}", std::process::id());
            raw.send(&gate_call(5, probe_id, held, GateMethod::Block, &gate));
            raw.send(&gate_call(
                6,
                probe_id,
                watcher,
                GateMethod::WaitBlocked,
                &gate,
            ));
            raw.results(6);
            // Cancel the blocked call, and drop `held` (finishing the question
            // that returned it releases its capabilities).
            raw.send(&finish(5));
            raw.send(&finish(2));
            // `held`'s thread still runs: one more worker fits, a second does not.
            raw.send(&make_thread(7, map, "third"));
            raw.results(7);
            raw.send(&make_thread(8, map, "fourth"));
            let reason = raw.exception(8);
            assert!(
                reason.contains("refused") && reason.contains("at most 3"),
                "{reason}"
            );
            // Once `held`'s thread has run out of its job and ended, its place is
            // free again.
            raw.send(&gate_call(9, probe_id, watcher, GateMethod::Open, &gate));
            raw.results(9);
            let deadline = std::time::Instant::now() + IO_TIMEOUT;
            let mut question = 10;
            loop {
                raw.send(&make_thread(question, map, "after"));
                match raw.answer(question) {
                    Answer::Results(_) => break,
                    Answer::Exception(reason) => assert!(
                        std::time::Instant::now() < deadline,
                        "the ended thread's place was never freed: {reason}"
                    ),
                }
                question += 1;
            }
            raw.stream.shutdown(Shutdown::Write).expect("shutdown");
            child.expect_clean_exit("a_released_worker_counts_until_its_thread_ends");
        },
    );
}

// ---------------------------------------------------------------------------
// The fuzzer's seeds.
// ---------------------------------------------------------------------------

/// Writes the seed corpus of the `connection` fuzz target
/// (`fuzz/seeds/connection/`): well-formed conversations, cut after each
/// message, with the capability ids a live server hands out, and a few of
/// the bad inputs above. Run with
/// `cargo test -p mp-testkit --test bad_input -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/connection: run it with --ignored"]
fn write_fuzz_seeds() {
    guard("write_fuzz_seeds", LIMIT, || {
        let server = Server::start();
        let (mut raw, _served) = server.raw();
        let (init, map) = raw.handshake();
        raw.send(&make_thread(2, map, "seed"));
        let thread = raw.results(2)[0];
        raw.send(&make_probe(3, init, thread));
        let probe = raw.results(3)[0];

        let conversation = [
            bootstrap(0),
            construct(1, init, 0),
            make_thread(2, map, "seed"),
            make_probe(3, init, thread),
            add(4, probe, thread, 1, 2),
        ]
        .map(|m| bytes(&m));
        let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
        for n in 1..=conversation.len() {
            seeds.push((format!("conversation-{n}"), conversation[..n].concat()));
        }
        let handshake = conversation[..2].concat();
        let with = |extra: &[Builder<HeapAllocator>]| {
            let mut data = handshake.clone();
            for m in extra {
                data.extend(bytes(m));
            }
            data
        };
        seeds.push((
            "promise-thread".into(),
            with(&[
                make_probe_with(2, init, Some(Cap::SenderPromise(8))),
                resolve_to_error(8, "no"),
            ]),
        ));
        seeds.push(("no-thread".into(), with(&[make_probe_with(2, init, None)])));
        seeds.push((
            "pool".into(),
            with(&[make_pool(2, map, 2), make_probe_with(3, init, None)]),
        ));
        seeds.push(("map-as-thread".into(), with(&[make_probe(2, init, map)])));
        seeds.push((
            "unknown-import".into(),
            bytes(&make_probe_with(0, 12345, None)),
        ));
        seeds.push(("many-segments".into(), segment_table((1 << 31) - 1, &[1])));
        seeds.push(("huge-segment".into(), segment_table(0, &[1 << 30])));

        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/connection");
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        for (name, data) in seeds {
            std::fs::write(dir.join(name), data).expect("write a seed");
        }
    });
}

/// A peer cannot make the server start threads without bound: past the
/// per-connection limit (3 in this child), `makeThread` is refused, the call
/// that needed the thread fails with an invalid-thread error that says why, nothing else breaks, and
/// once threads exit their places are free again, also for the refused
/// thread, whose next call asks anew.
#[test]
fn thread_floods_are_refused() {
    use mp_testkit::peer::Peer;
    guard("thread_floods_are_refused", LIMIT, || {
        let peer = Peer::child_with(child_exe(), |command| {
            command.env("MP_CHILD_MAX_WORKERS", "3");
        })
        .expect("spawn the child");
        let probe = peer.init.make_probe().expect("makeProbe");
        assert_eq!(probe.add(1, 1).expect("main thread's call"), 2);
        std::thread::scope(|s| {
            // Two more threads take the child's other two places and keep
            // them until told to leave.
            let mut leave = Vec::new();
            let mut holders = Vec::new();
            for i in 0..2 {
                let (ready_tx, ready_rx) = mpsc::channel();
                let (leave_tx, leave_rx) = mpsc::channel::<()>();
                leave.push(leave_tx);
                let probe = &probe;
                holders.push(s.spawn(move || {
                    let _ = ready_tx.send(probe.add(i, 1));
                    let _ = leave_rx.recv_timeout(LIMIT);
                }));
                let sum = ready_rx.recv_timeout(IO_TIMEOUT).expect("holder called");
                assert_eq!(sum.expect("a holder's call"), i + 1);
            }
            // A fourth thread is refused, and stays usable.
            let (ask_tx, ask_rx) = mpsc::channel::<()>();
            let (answer_tx, answer_rx) = mpsc::channel();
            let probe_ref = &probe;
            let refused = s.spawn(move || {
                while ask_rx.recv_timeout(LIMIT).is_ok() {
                    if answer_tx.send(probe_ref.add(20, 1)).is_err() {
                        break;
                    }
                }
            });
            ask_tx.send(()).expect("ask");
            let first = answer_rx.recv_timeout(IO_TIMEOUT).expect("an answer");
            match first {
                Err(Error::InvalidThread(reason)) => {
                    assert!(
                        reason.contains("makeThread") && reason.contains("refused"),
                        "{reason}"
                    );
                    assert!(reason.contains("at most 3"), "{reason}");
                }
                other => panic!("expected a refused makeThread, got {other:?}"),
            }
            // The threads that have workers go on working meanwhile.
            assert_eq!(probe.add(2, 2).expect("main thread after the refusal"), 4);
            // The holders exit; their workers end; the refused thread's next
            // call gets a worker.
            drop(leave);
            for holder in holders {
                holder.join().expect("holder thread");
            }
            ask_tx.send(()).expect("ask again");
            let second = answer_rx.recv_timeout(IO_TIMEOUT).expect("an answer");
            assert_eq!(
                second.expect("the refused thread's call after the holders left"),
                21
            );
            drop(ask_tx);
            refused.join().expect("refused thread");
        });
    });
}
