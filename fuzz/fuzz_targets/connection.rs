//! Arbitrary bytes from a peer on a served connection.
//!
//! One server event loop is started on first use and serves `Init` (the
//! test child's bootstrap, `mp_testkit::probe_server::serve`) on a new socketpair per
//! input. The input is written to the other end, whose write side is then
//! shut down; the server must close the connection (EOF on our side, and
//! its own end reports the disconnect) within `TIMEOUT`. A crash, a panic on
//! the loop thread, or a connection that stays open (a hang) is a finding:
//! the target aborts with a message saying which.
//!
//! The server is configured so that a short input reaches the runtime's
//! limits (`docs/design.md`, "Limits"): workers get a small stack, so a few
//! dozen pipelined `callFn`s nest into the nesting limit; each connection a
//! small flow budget and message limit, so a few requests pause the reading
//! and a segment table can announce more than is allowed.
//!
//! The one panic that is not a finding is the deliberate one of `Probe.fail`
//! with `panic = true`, on a worker thread (`mp-worker-N`): the runtime
//! catches it and answers the call with an error, by design. Any other
//! panic, on a worker thread or not, aborts.

#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::panic::Location;
use std::path::Path;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use multiprocess_thread_map::{Connection, ConnectionLimits, EventLoop, LoopHandle};

/// How long the server may take to close a connection whose peer has sent
/// everything and shut down its write side.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server must stay silent, after the input is written, before
/// we shut down our write side. Without the wait, the server would read our
/// EOF with the input and close at once, before pipelined requests had run:
/// no nested callback would ever wait, and no reply queue fill.
const QUIET: Duration = Duration::from_millis(3);

/// Each worker's stack: the nesting margin plus 16 KiB, about a dozen
/// levels of nesting (fewer with AddressSanitizer's larger frames).
const WORKER_STACK: usize = multiprocess_thread_map::DEFAULT_NESTING_STACK_MARGIN + 16 * 1024;

/// Small enough for an input of a few KiB to reach them.
const LIMITS: ConnectionLimits = ConnectionLimits {
    max_message_bytes: 16 * 1024,
    flow_budget_bytes: 4 * 1024,
};

fn server_loop() -> &'static LoopHandle {
    static LOOP: OnceLock<LoopHandle> = OnceLock::new();
    LOOP.get_or_init(|| {
        multiprocess_thread_map::set_worker_stack_size(WORKER_STACK);
        EventLoop::start("fuzz-server").expect("start the server loop")
    })
}

/// The source of `Probe.fail`, whose `panic = true` panics on purpose.
const PROBE_RS: &str = include_str!("../../testkit/src/probe_server.rs");
/// The path `Location::file` ends with for a panic in [`PROBE_RS`].
const PROBE_RS_PATH: &str = "testkit/src/probe_server.rs";
/// The deliberate panic in [`PROBE_RS`] (the only one there).
const DELIBERATE_PANIC: &str = "panic!(\"{message}\")";

/// The line of [`DELIBERATE_PANIC`] in [`PROBE_RS`], read from the source
/// the fuzzer was built with, so the filter follows edits to that file.
/// Aborts unless that line is unique: the filter would be wrong.
fn deliberate_panic_line() -> u32 {
    let mut lines = PROBE_RS
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains(DELIBERATE_PANIC))
        .map(|(index, _)| u32::try_from(index + 1));
    match (lines.next(), lines.next()) {
        (Some(Ok(line)), None) => line,
        _ => {
            eprintln!(
                "{PROBE_RS_PATH} does not have exactly one `{DELIBERATE_PANIC}`: update the fuzz target's panic filter"
            );
            std::process::abort();
        }
    }
}

/// libfuzzer-sys aborts on every panic, even one caught later. The runtime
/// catches panics of the methods it runs on worker threads and turns them
/// into errors for the caller, and `Probe.fail` panics on purpose when asked
/// to: that panic, on a worker thread, is not a finding. Any other panic
/// (elsewhere on a worker, on the loop thread, on this thread) still aborts.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let deliberate_line = deliberate_panic_line();
        let is_deliberate = move |location: &Location<'_>| {
            location.line() == deliberate_line
                && Path::new(location.file()).ends_with(PROBE_RS_PATH)
        };
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_worker = std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("mp-worker-"));
            if !(on_worker && info.location().is_some_and(is_deliberate)) {
                fuzzer_hook(info);
            }
        }));
    });
}

fn hang(what: &str) -> ! {
    eprintln!("HANG: {what} within {TIMEOUT:?}");
    std::process::abort();
}

fuzz_target!(|data: &[u8]| {
    install_panic_hook();
    let event_loop = server_loop();
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let served = Connection::serve_with_limits(
        event_loop,
        theirs,
        mp_testkit::probe_server::bootstrap,
        LIMITS,
    )
    .expect("serve");
    ours.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    ours.set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");

    // The server may close before reading everything.
    match ours.write_all(data) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            hang("the server did not read the input")
        }
        Err(e) => panic!("write: {e}"),
    }
    // Let the server run what it read: read (and discard) its answers
    // until it has been silent for QUIET, or has closed.
    let mut buf = [0u8; 16 * 1024];
    ours.set_read_timeout(Some(QUIET)).expect("read timeout");
    let mut closed = false;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if std::time::Instant::now() >= deadline {
            hang("the server did not fall silent after the input");
        }
        match ours.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    ours.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let _ = ours.shutdown(Shutdown::Write);

    // Read (and discard) the server's answers until it closes.
    while !closed {
        match ours.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                hang("the server did not close the connection")
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    if served.wait_disconnected(TIMEOUT).is_none() {
        hang("the server's end did not report the disconnect");
    }
    // The loop is still serving.
    if event_loop.sync(|| ()).is_err() {
        eprintln!("the server loop died");
        std::process::abort();
    }
});
