//! An event loop shut down while a call it serves is in flight: the caller's
//! blocked `RemoteObject::call` fails with `Disconnected`, and nothing hangs
//! (neither the shutdown, which joins the loop thread while a worker is
//! still blocked in user code, nor the caller).
//!
//! A loop shuts down when its last `LoopHandle` is dropped; every
//! `Connection` and `RemoteObject` holds one, so the loop of the *calling*
//! side cannot shut down under a call in progress (the caller holds the
//! object it calls). What can is the loop of the *serving* side: its process
//! drops its `Connection` and its last handle while a request is being
//! served. That is what these tests do, in a child process and in this one.
//!
//! The child is this test binary itself, started to run only
//! [`serving_child`] (libtest's own arguments before `--`, `-ipcfd=N`
//! after it as a filter that matches nothing). Run normally, without
//! `-ipcfd`, that test does nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use mp_testkit::peer::{Peer, Server};
use mp_testkit::probe::Probe;
use mp_testkit::watchdog::guard;
use multiprocess_event_loop::LoopContext;
use multiprocess_thread_map::{Error, EventLoop};

mod common;
use common::in_process;

const LIMIT: Duration = Duration::from_secs(60);

/// What the child prints once dropping its last loop handle has returned.
const LOOP_SHUT_DOWN: &str = "serving child: loop shut down";

/// The name of the test the child runs.
const CHILD_TEST: &str = "serving_child";

/// Starts a thread blocked in `probe.block(gate)` and returns once the
/// peer's worker is in the gate.
fn block_a_caller(
    probe: &Arc<dyn Probe>,
    gate: &'static str,
) -> std::thread::JoinHandle<multiprocess_thread_map::Result<()>> {
    let caller = {
        let probe = probe.clone();
        std::thread::spawn(move || probe.block(gate))
    };
    probe.wait_blocked(gate, 1).expect("the call is blocked");
    caller
}

/// After the serving loop is gone: the blocked call has failed with
/// `Disconnected`, and so do later calls; our side sees the connection
/// closed.
fn assert_the_call_failed(
    peer: &Peer,
    probe: &dyn Probe,
    caller: std::thread::JoinHandle<multiprocess_thread_map::Result<()>>,
) {
    let result = caller.join().expect("the caller thread");
    assert!(
        matches!(result, Err(Error::Disconnected(_))),
        "the blocked call fails with Disconnected, got {result:?}"
    );
    let later = probe.add(1, 2);
    assert!(
        matches!(later, Err(Error::Disconnected(_))),
        "a later call fails with Disconnected, got {later:?}"
    );
    assert!(
        peer.connection
            .wait_disconnected(Duration::from_secs(10))
            .is_some(),
        "our side sees the connection closed"
    );
}

#[test]
fn serving_loop_shut_down_mid_call_fails_the_call_in_process() {
    guard(
        "serving_loop_shut_down_mid_call_fails_the_call_in_process",
        LIMIT,
        || {
            const GATE: &str = "loop-shutdown-in-process";
            let mut peer = in_process();
            let probe = peer.init.make_probe().expect("makeProbe");
            let caller = block_a_caller(&probe, GATE);
            let Server::InProcess {
                event_loop,
                connection,
            } = &mut peer.server
            else {
                unreachable!("an in-process peer")
            };
            let server_loop = event_loop.take().expect("the server's loop");
            let server_connection = connection.take().expect("the server's connection");
            // Tells us the serving loop really exited (rather than only
            // closing the connection).
            let (exited_tx, exited) = std::sync::mpsc::channel();
            server_loop
                .sync(move || {
                    LoopContext::with(|cx| {
                        cx.at_exit(move || {
                            let _ = exited_tx.send(());
                        })
                    })
                    .expect("on the loop thread")
                })
                .expect("sync");
            drop(server_connection);
            // The last handle: the loop shuts down, and its thread is joined
            // here, while the worker still runs the request (in the gate).
            drop(server_loop);
            assert!(
                exited.try_recv().is_ok(),
                "the serving loop exited before its last handle's drop returned"
            );
            assert_the_call_failed(&peer, &*probe, caller);
            // The worker is still in user code; released, it ends although
            // its loop is gone. (This file's other tests make no worker in
            // this process.)
            mp_testkit::probe_server::open_gate(GATE);
            assert!(
                multiprocess_thread_map::wait_for_workers(0, Duration::from_secs(10)),
                "the worker ended once released"
            );
        },
    );
}

#[test]
fn serving_loop_shut_down_mid_call_fails_the_call_child() {
    guard(
        "serving_loop_shut_down_mid_call_fails_the_call_child",
        LIMIT,
        || {
            const GATE: &str = "loop-shutdown-child";
            let exe = std::env::current_exe().expect("this test binary");
            let mut peer = Peer::child_with(&exe, |command| {
                command
                    .args([
                        CHILD_TEST,
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                        "--",
                    ])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped());
            })
            .expect("spawn and connect to the serving child");
            let Server::Child(child) = &mut peer.server else {
                unreachable!("a child peer")
            };
            let mut control = child.stdin.take().expect("the child's stdin");
            let mut report = BufReader::new(child.stdout.take().expect("the child's stdout"));
            let probe = peer.init.make_probe().expect("makeProbe");
            let caller = block_a_caller(&probe, GATE);
            // The child shuts its loop down now, while its worker runs the call.
            control.write_all(b"shut down\n").expect("tell the child");
            let mut line = String::new();
            loop {
                line.clear();
                let read = report.read_line(&mut line).expect("the child's stdout");
                assert!(read > 0, "the child ended without shutting its loop down");
                // libtest may have started a line ("test serving_child ... ").
                if line.trim_end().ends_with(LOOP_SHUT_DOWN) {
                    break;
                }
            }
            // The child process is alive until we close its stdin: what
            // failed the call is its loop's shutdown, not its exit.
            assert_the_call_failed(&peer, &*probe, caller);
            drop(control);
            // Whatever else the child prints (libtest's summary) is read to
            // its end, so that no write of the child's fails on a closed pipe.
            let mut rest = Vec::new();
            report.read_to_end(&mut rest).expect("the child's stdout");
            assert!(
                peer.wait_server_exit(Duration::from_secs(10)),
                "the child exits once told"
            );
            let Server::Child(child) = &mut peer.server else {
                unreachable!("a child peer")
            };
            let status = child.try_wait().expect("the child's status");
            assert!(
                status.is_some_and(|s| s.success()),
                "the child's test passed: {status:?}"
            );
        },
    );
}

/// The child's side of [`serving_loop_shut_down_mid_call_fails_the_call_child`]:
/// serves `Init`; when told (a line on stdin), drops its connection and its
/// last loop handle while a worker is still blocked in a request, says so
/// on stdout, and waits for stdin to close. Does nothing unless started with
/// `-ipcfd=N`.
#[test]
fn serving_child() {
    let stream = match multiprocess_thread_map::take_ipc_fd() {
        Ok(Some(stream)) => stream,
        Ok(None) => return,
        Err(e) => panic!("the IPC socket: {e}"),
    };
    let event_loop = EventLoop::start("serving-child-loop").expect("loop");
    let connection = mp_testkit::probe_server::serve(&event_loop, stream).expect("serve");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    // Bounded by the parent: it writes the line, or dies and closes our stdin.
    stdin.read_line(&mut line).expect("read stdin");
    drop(connection);
    // Joins the loop thread: it must return although a worker is blocked.
    drop(event_loop);
    println!("{LOOP_SHUT_DOWN}");
    std::io::stdout().flush().expect("flush stdout");
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    mp_testkit::probe_server::open_gate("loop-shutdown-child");
}
