//! The foundation's scenarios, each run twice: against a child process
//! (`mp-child`) and against a server on another loop in this process.
//! Every test runs under a watchdog that aborts with a thread dump on a hang.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use mp_testkit::peer::{Peer, Server};
use mp_testkit::watchdog::guard;
use multiprocess_thread_map::{Error, RemoteObject};

mod common;
use common::{child, in_process};

const LIMIT: Duration = Duration::from_secs(60);

/// (a) One application thread makes 1000 calls: all run on one server worker.
/// Each call (`whoami`) reports the thread it ran on.
fn one_thread_one_worker(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let first = probe.whoami().expect("whoami");
    for i in 1..1000 {
        assert_eq!(
            probe.whoami().expect("whoami"),
            first,
            "call {i} ran on another thread"
        );
    }
    assert!(
        first.name.contains("(from "),
        "worker name tells the client thread: {}",
        first.name
    );
}

#[test]
fn one_thread_one_worker_child() {
    guard("one_thread_one_worker_child", LIMIT, || {
        one_thread_one_worker(child())
    });
}

#[test]
fn one_thread_one_worker_in_process() {
    guard("one_thread_one_worker_in_process", LIMIT, || {
        one_thread_one_worker(in_process())
    });
}

/// (b) Four application threads get four distinct workers, and a call that
/// blocks on the server does not delay the other three.
fn four_threads_four_workers(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let gate = "four-threads";
    let blocked = {
        let probe = probe.clone();
        std::thread::Builder::new()
            .name("blocked-app".into())
            .spawn(move || {
                let me = probe.whoami().expect("whoami");
                probe.block(gate).expect("block returns once opened");
                me
            })
            .expect("spawn")
    };
    probe
        .wait_blocked(gate, 1)
        .expect("the call is blocked on the server");
    let others: Vec<_> = (0..3)
        .map(|i| {
            let probe = probe.clone();
            std::thread::Builder::new()
                .name(format!("free-app-{i}"))
                .spawn(move || {
                    let me = probe.whoami().expect("whoami");
                    for n in 0..50 {
                        assert_eq!(probe.add(n, i).expect("add"), n + i);
                    }
                    assert_eq!(probe.whoami().expect("whoami"), me);
                    me
                })
                .expect("spawn")
        })
        .collect();
    // The three free threads finish while the fourth is still blocked.
    let mut workers = BTreeSet::new();
    for thread in others {
        workers.insert(thread.join().expect("free thread").tid);
    }
    assert!(
        !blocked.is_finished(),
        "the blocked call returned before its gate opened"
    );
    probe.open(gate).expect("open");
    workers.insert(blocked.join().expect("blocked thread").tid);
    workers.insert(probe.whoami().expect("whoami").tid);
    assert_eq!(
        workers.len(),
        5,
        "five application threads, five distinct workers"
    );
}

#[test]
fn four_threads_four_workers_child() {
    guard("four_threads_four_workers_child", LIMIT, || {
        four_threads_four_workers(child())
    });
}

#[test]
fn four_threads_four_workers_in_process() {
    guard("four_threads_four_workers_in_process", LIMIT, || {
        four_threads_four_workers(in_process())
    });
}

/// (c) An application thread that exits frees its server worker.
///
/// The worker's own OS thread must be gone from the server process. With a
/// child, the child's worker and thread counts must also be back where they
/// were; in one process other tests start and end threads concurrently, so
/// there only the worker's own thread is checked.
fn exited_thread_frees_worker(peer: Peer) {
    let server_pid = match &peer.server {
        Server::Child(child) => Some(child.id()),
        Server::InProcess { .. } => None,
    };
    let probe = peer.init.make_probe().expect("makeProbe");
    let (workers_before, threads_before) = probe
        .stats()
        .map(|s| (s.workers, s.os_threads))
        .expect("stats");
    let (worker, during) = {
        let probe = probe.clone();
        std::thread::spawn(move || {
            probe.add(1, 2).expect("add");
            (
                probe.whoami().expect("whoami"),
                probe
                    .stats()
                    .map(|s| (s.workers, s.os_threads))
                    .expect("stats"),
            )
        })
        .join()
        .expect("thread")
    };
    let task = format!(
        "/proc/{}/task/{}",
        server_pid.unwrap_or_else(std::process::id),
        worker.tid
    );
    // The exited thread's release reaches the server before this call does.
    let (workers_after, threads_after) = probe
        .stats()
        .map(|s| (s.workers, s.os_threads))
        .expect("stats");
    assert!(
        !Path::new(&task).exists(),
        "the worker's OS thread {} ({task}) is still there",
        worker.name
    );
    if server_pid.is_some() {
        assert_eq!(during.0, workers_before + 1, "the new thread got a worker");
        assert_eq!(workers_after, workers_before, "the worker was freed");
        assert_eq!(threads_after, threads_before, "and its OS thread joined");
    }
}

#[test]
fn exited_thread_frees_worker_child() {
    guard("exited_thread_frees_worker_child", LIMIT, || {
        exited_thread_frees_worker(child())
    });
}

#[test]
fn exited_thread_frees_worker_in_process() {
    guard("exited_thread_frees_worker_in_process", LIMIT, || {
        exited_thread_frees_worker(in_process())
    });
}

/// (e) A server method that panics (or fails) is a remote error for the
/// caller; the worker survives and the next call works on it.
fn failing_method(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let worker = probe.whoami().expect("whoami");
    match probe.fail("deliberate panic", true) {
        Err(Error::Failed(failure)) => {
            assert!(failure.panicked, "{failure:?}");
            assert_eq!(
                failure.message, "deliberate panic",
                "the message once, no prefixes"
            );
            assert_eq!(failure.method.as_deref(), Some("Probe.fail"));
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(probe.whoami().expect("whoami after a panic"), worker);
    match probe.fail("deliberate error", false) {
        Err(Error::Failed(failure)) => {
            assert!(!failure.panicked, "{failure:?}");
            assert_eq!(
                failure.message, "deliberate error",
                "the message once, no prefixes"
            );
            assert_eq!(failure.method.as_deref(), Some("Probe.fail"));
            assert_eq!(
                Error::Failed(failure).to_string(),
                "Probe.fail: deliberate error"
            );
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(probe.add(2, 3).expect("add after an error"), 5);
    // A method that fails with a disconnection or an invalid thread of its
    // own (met on a call it made further on) is still a remote error here:
    // this connection and this thread are fine.
    for (asked, detail) in [
        (
            "disconnected:its own peer went away",
            "its own peer went away",
        ),
        ("invalid-thread:its own bad thread", "its own bad thread"),
    ] {
        match probe.fail(asked, false) {
            Err(Error::Failed(failure)) => {
                assert!(failure.message.contains(detail), "{failure:?}");
                assert_eq!(
                    failure.method.as_deref(),
                    Some("Probe.fail"),
                    "names the method"
                );
            }
            other => panic!("expected a remote error for {asked:?}, got {other:?}"),
        }
        assert!(!peer.connection.is_disconnected(), "still connected");
    }
    assert_eq!(probe.whoami().expect("whoami"), worker);
}

#[test]
fn failing_method_child() {
    guard("failing_method_child", LIMIT, || failing_method(child()));
}

#[test]
fn failing_method_in_process() {
    guard("failing_method_in_process", LIMIT, || {
        failing_method(in_process())
    });
}

/// Large payloads cross intact.
#[test]
fn echo_large_payload() {
    guard("echo_large_payload", LIMIT, || {
        let peer = child();
        let probe = peer.init.make_probe().expect("makeProbe");
        let data: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(probe.echo(&data).expect("echo"), data);
    });
}

/// Calls `Probe.add` with a hand-built `Context` (on `probe`, the bare
/// capability of a generated client: see `Peer::raw`).
fn add_with_context(
    probe: &RemoteObject<mp_testkit::probe_capnp::probe::Client>,
    thread: fn(
        &multiprocess_thread_map::CallContext<'_>,
    ) -> Option<multiprocess_thread_map::proxy_capnp::thread::Client>,
) -> multiprocess_thread_map::Result<i32> {
    probe.call("Probe.add", move |client, cx| {
        let mut request = client.add_request();
        {
            let mut params = request.get();
            let mut context = params.reborrow().init_context();
            if let Some(thread) = thread(cx) {
                context.set_thread(thread);
            }
            context.set_callback_thread(cx.callback_thread());
            params.set_a(1);
            params.set_b(2);
        }
        let response = request.send().promise;
        async move { Ok(response.await?.get()?.get_result()) }
    })
}

/// A `Context.thread` the server did not make, or none (with no pool), is a
/// clear `InvalidThread` error for the caller; the connection carries on.
fn invalid_threads(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let raw = peer.raw(&probe).expect("the Probe's capability");
    // Our own callback thread is not a thread the server made.
    match add_with_context(&raw, |cx| Some(cx.callback_thread())) {
        Err(Error::InvalidThread(message)) => assert!(
            message.contains("not a thread this process made"),
            "{message}"
        ),
        other => panic!("expected InvalidThread, got {other:?}"),
    }
    match add_with_context(&raw, |_| None) {
        Err(Error::InvalidThread(message)) => {
            assert!(message.contains("no thread specified"), "{message}")
        }
        other => panic!("expected InvalidThread, got {other:?}"),
    }
    // The proper thread still works, on the same connection.
    assert_eq!(
        add_with_context(&raw, |cx| Some(cx.remote_thread())).expect("add"),
        3
    );
    assert_eq!(probe.add(2, 2).expect("add"), 4);
}

#[test]
fn invalid_threads_child() {
    guard("invalid_threads_child", LIMIT, || invalid_threads(child()));
}

#[test]
fn invalid_threads_in_process() {
    guard("invalid_threads_in_process", LIMIT, || {
        invalid_threads(in_process())
    });
}

/// A second request for a worker busy with a request from the same client
/// thread waits its turn (FIFO) instead of being rejected.
fn busy_worker_queues_fifo(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let gate = "busy-worker-fifo";
    let opener = {
        let probe = probe.clone();
        std::thread::spawn(move || {
            probe.wait_blocked(gate, 1).expect("first request blocked");
            probe.open(gate).expect("open");
        })
    };
    let first_finished_first = peer
        .raw(&probe)
        .expect("the Probe's capability")
        .call("Probe.block+add", move |client, cx| {
            let mut block = client.block_request();
            cx.set_context(block.get().init_context());
            block.get().set_gate(gate);
            let mut add = client.add_request();
            cx.set_context(add.get().init_context());
            add.get().set_a(40);
            add.get().set_b(2);
            let (block, add) = (block.send().promise, add.send().promise);
            async move {
                match futures::future::select(block, add).await {
                    futures::future::Either::Left((blocked, add)) => {
                        blocked?;
                        assert_eq!(add.await?.get()?.get_result(), 42);
                        Ok(true)
                    }
                    futures::future::Either::Right((added, block)) => {
                        added?;
                        block.await?;
                        Ok(false)
                    }
                }
            }
        })
        .expect("both requests succeed");
    opener.join().expect("opener");
    assert!(
        first_finished_first,
        "the queued request overtook the one running"
    );
}

#[test]
fn busy_worker_queues_fifo_child() {
    guard("busy_worker_queues_fifo_child", LIMIT, || {
        busy_worker_queues_fifo(child())
    });
}

#[test]
fn busy_worker_queues_fifo_in_process() {
    guard("busy_worker_queues_fifo_in_process", LIMIT, || {
        busy_worker_queues_fifo(in_process())
    });
}

/// The CPUs each thread of process `pid` may run on, by thread (name and
/// tid), from `/proc/PID/task/*/status`. A thread that exits meanwhile is
/// left out.
fn allowed_cpus_by_thread(pid: u32) -> Vec<(String, String)> {
    let mut threads = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read the task list");
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|value| value.trim().to_string())
        };
        if let (Some(name), Some(cpus)) = (field("Name:"), field("Cpus_allowed_list:")) {
            threads.push((format!("{name} ({:?})", task.file_name()), cpus));
        }
    }
    threads
}

/// Where threads start and wake is a hint (`placement::start_near` and
/// `WakePlace`), never a pin: with workers and loops started and woken in
/// both processes, every thread of the server may still run on every CPU
/// its process may.
fn no_thread_is_pinned(peer: Peer) {
    let server_pid = match &peer.server {
        Server::Child(child) => child.id(),
        Server::InProcess { .. } => std::process::id(),
    };
    let probe = peer.init.make_probe().expect("makeProbe");
    let gate = "placement";
    // Two workers alive at once: this thread's, and a blocked thread's.
    // Many calls, so that with spinning off every one of them wakes the
    // server's loop and worker from a real sleep.
    for i in 0..200 {
        assert_eq!(probe.add(i, 1).expect("add"), i + 1);
    }
    let blocked = {
        let probe = probe.clone();
        std::thread::spawn(move || probe.block(gate).expect("block returns once opened"))
    };
    probe.wait_blocked(gate, 1).expect("the call is blocked");
    let process_cpus = std::fs::read_to_string(format!("/proc/{server_pid}/status"))
        .expect("read the server's status")
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|value| value.trim().to_string())
        .expect("Cpus_allowed_list");
    let threads = allowed_cpus_by_thread(server_pid);
    let mut pinned: Vec<_> = threads
        .iter()
        .filter(|(_, cpus)| *cpus != process_cpus)
        .cloned()
        .collect();
    // A thread handing work to a sleeping one narrows the sleeper's mask
    // for the moment it takes to wake (`placement::WakePlace`), and another
    // test in this process may be doing so right now: only a thread that
    // stays narrower, read after read, is pinned.
    for _ in 0..1000 {
        if pinned.is_empty() {
            break;
        }
        let now = allowed_cpus_by_thread(server_pid);
        pinned.retain(|(name, _)| {
            now.iter()
                .any(|(again, cpus)| again == name && *cpus != process_cpus)
        });
    }
    probe.open(gate).expect("open");
    blocked.join().expect("blocked thread");
    assert!(
        threads
            .iter()
            .filter(|(name, _)| name.contains("worker"))
            .count()
            >= 2,
        "the two workers were looked at: {threads:?}"
    );
    assert!(
        pinned.is_empty(),
        "threads narrower than their process ({process_cpus}): {pinned:?}"
    );
}

#[test]
fn no_thread_is_pinned_child() {
    guard("no_thread_is_pinned_child", LIMIT, || {
        no_thread_is_pinned(child())
    });
}

/// As above, with a server whose threads never spin and always move near
/// the thread that woke them: every call moves its loop and worker.
#[test]
fn no_thread_is_pinned_when_every_wait_sleeps_child() {
    guard(
        "no_thread_is_pinned_when_every_wait_sleeps_child",
        LIMIT,
        || {
            let peer = Peer::child_with(common::child_exe(), |command| {
                command
                    .env(multiprocess_event_loop::spin::SPIN_ENV, "0")
                    .env(multiprocess_event_loop::placement::WAKE_NEAR_ENV, "1");
            })
            .expect("spawn and connect to mp-child");
            no_thread_is_pinned(peer)
        },
    );
}

#[test]
fn no_thread_is_pinned_in_process() {
    guard("no_thread_is_pinned_in_process", LIMIT, || {
        no_thread_is_pinned(in_process())
    });
}

/// Waiting for a disconnection on a loop thread, which is what closes
/// connections, only looks: it returns at once whatever the timeout, and
/// says the connection is open until it is not.
fn waiting_for_a_disconnection_on_a_loop_thread_only_looks(peer: Peer) {
    let on_loop = {
        let connection = peer.connection.clone();
        move || connection.wait_disconnected(Duration::MAX)
    };
    let looked = peer
        .event_loop
        .sync(on_loop.clone())
        .expect("the loop runs the closure");
    assert!(looked.is_none(), "still connected: {looked:?}");
    // Close it from this side; the waits below see it closed.
    peer.connection.disconnect();
    let reason = peer.connection.wait_disconnected(LIMIT);
    assert!(reason.is_some(), "closed within {LIMIT:?}");
    let looked = peer
        .event_loop
        .sync(on_loop)
        .expect("the loop runs the closure");
    assert!(looked.is_some(), "seen closed from the loop too");
}

#[test]
fn waiting_for_a_disconnection_on_a_loop_thread_only_looks_child() {
    guard(
        "waiting_for_a_disconnection_on_a_loop_thread_only_looks_child",
        LIMIT,
        || waiting_for_a_disconnection_on_a_loop_thread_only_looks(child()),
    );
}

#[test]
fn waiting_for_a_disconnection_on_a_loop_thread_only_looks_in_process() {
    guard(
        "waiting_for_a_disconnection_on_a_loop_thread_only_looks_in_process",
        LIMIT,
        || waiting_for_a_disconnection_on_a_loop_thread_only_looks(in_process()),
    );
}

/// A blocking call made on an event-loop thread fails at once with
/// `WrongThread` instead of hanging: on the connection's own loop it would
/// wait for a reply that only that loop can deliver.
fn blocking_call_on_a_loop_thread_fails(peer: Peer) {
    let probe = peer.init.make_probe().expect("makeProbe");
    let on_loop = probe.clone();
    let outcome = peer
        .event_loop
        .sync(move || on_loop.add(1, 2))
        .expect("the loop runs the closure");
    assert_wrong_thread(outcome, "blocking call");
    // Nothing was left stuck: calls from here still work.
    assert_eq!(probe.add(2, 3).expect("add"), 5);
}

#[test]
fn blocking_call_on_a_loop_thread_fails_child() {
    guard("blocking_call_on_a_loop_thread_fails_child", LIMIT, || {
        blocking_call_on_a_loop_thread_fails(child())
    });
}

#[test]
fn blocking_call_on_a_loop_thread_fails_in_process() {
    guard(
        "blocking_call_on_a_loop_thread_fails_in_process",
        LIMIT,
        || blocking_call_on_a_loop_thread_fails(in_process()),
    );
}

/// A listener in this process (on a loop of its own) with one client
/// connected to it, handshake done (so accepted and listed).
struct Listening {
    _dir: mp_testkit::line_process::TempDir,
    server_loop: multiprocess_thread_map::LoopHandle,
    listener: std::sync::Arc<multiprocess_thread_map::Listener>,
    client: Option<(
        multiprocess_thread_map::Connection,
        std::sync::Arc<dyn mp_testkit::probe::Init>,
    )>,
    _client_loop: multiprocess_thread_map::LoopHandle,
}

impl Listening {
    /// Runs `f` on the listener's loop thread and returns what it returns.
    fn on_loop<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.server_loop.sync(f).expect("the loop runs the closure")
    }

    /// A `Probe` of the connected client's.
    fn probe(&self) -> std::sync::Arc<dyn mp_testkit::probe::Probe> {
        self.client
            .as_ref()
            .map(|(_, init)| init.make_probe())
            .expect("connected")
            .expect("makeProbe")
    }
}

/// Checks that `outcome` is a `WrongThread` error whose message holds
/// `needle` (which says which refusal it was).
fn assert_wrong_thread<T: std::fmt::Debug>(
    outcome: multiprocess_thread_map::Result<T>,
    needle: &str,
) {
    match outcome {
        Err(Error::WrongThread(message)) => {
            assert!(message.contains(needle), "{message}")
        }
        other => panic!("expected WrongThread, got {other:?}"),
    }
}

fn listening(name: &str) -> Listening {
    use multiprocess_thread_map::{Address, EventLoop, ListenOptions, Listener};
    let dir = mp_testkit::line_process::TempDir::new("mp-testkit", name);
    let address = Address::Unix(dir.path().join("listener.sock"));
    let server_loop = EventLoop::start("listener-loop").expect("a loop");
    let listener = std::sync::Arc::new(
        Listener::bind(
            &server_loop,
            &address,
            ListenOptions::new(),
            mp_testkit::probe_server::bootstrap,
        )
        .expect("bind"),
    );
    let client_loop = EventLoop::start("client-loop").expect("a loop");
    let (connection, init) = multiprocess_thread_map::connect_to::<
        mp_testkit::probe_capnp::init::Client,
    >(&client_loop, &address, LIMIT)
    .expect("connect");
    let init = <dyn mp_testkit::probe::Init as multiprocess::Interface>::from_remote(init);
    assert_eq!(listener.connection_count(), 1);
    Listening {
        _dir: dir,
        server_loop,
        listener,
        client: Some((connection, init)),
        _client_loop: client_loop,
    }
}

/// Waiting for fewer of a listener's connections on a loop thread, which is
/// what closes them, only looks: it returns at once, whatever the timeout.
#[test]
fn waiting_for_fewer_connections_on_a_loop_thread_only_looks() {
    guard(
        "waiting_for_fewer_connections_on_a_loop_thread_only_looks",
        LIMIT,
        || {
            let mut l = listening("loop-wait");
            let on_loop = {
                let listener = l.listener.clone();
                move || listener.wait_connections(0, Duration::MAX)
            };
            let looked = l.on_loop(on_loop.clone());
            assert!(!looked, "no connection closed, yet the wait said so");
            // From this thread it waits, and sees the close.
            drop(l.client.take());
            assert!(
                l.listener.wait_connections(0, LIMIT),
                "closed within {LIMIT:?}"
            );
            let looked = l.on_loop(on_loop);
            assert!(looked, "seen closed from the loop too");
        },
    );
}

/// Waiting for a drain on a loop thread only looks too: that loop is what
/// answers the running request and then disconnects everyone.
#[test]
fn waiting_for_a_drain_on_a_loop_thread_only_looks() {
    guard(
        "waiting_for_a_drain_on_a_loop_thread_only_looks",
        LIMIT,
        || {
            let mut l = listening("loop-drain");
            let probe = l.probe();
            let gate = "drain-on-a-loop-thread";
            // Opened however the test ends, so that a failed assertion does not
            // leave the blocked caller (and the unwinding) waiting for good.
            struct OpenOnDrop(&'static str);
            impl Drop for OpenOnDrop {
                fn drop(&mut self) {
                    mp_testkit::probe_server::open_gate(self.0);
                }
            }
            let opener = OpenOnDrop(gate);
            let blocked = {
                let probe = probe.clone();
                std::thread::spawn(move || probe.block(gate))
            };
            probe.wait_blocked(gate, 1).expect("waitBlocked");
            l.listener.begin_drain();
            let on_loop = {
                let listener = l.listener.clone();
                move || listener.wait_drained(Duration::MAX)
            };
            let looked = l.on_loop(on_loop.clone());
            assert!(!looked, "a request runs, yet the wait said drained");
            // The running request completes, with its answer; then the drain ends.
            drop(opener);
            blocked
                .join()
                .expect("the blocked caller")
                .expect("the request running when the drain began is answered");
            drop(probe);
            assert!(l.listener.wait_drained(LIMIT), "drained within {LIMIT:?}");
            let looked = l.on_loop(on_loop);
            assert!(looked, "seen drained from the loop too");
            drop(l.client.take());
        },
    );
}

/// Connecting on an event-loop thread fails with `WrongThread` instead of
/// waiting for a handshake that loop would have to run (or stalling
/// another loop's connections for its round trip).
#[test]
fn connecting_on_a_loop_thread_fails() {
    guard("connecting_on_a_loop_thread_fails", LIMIT, || {
        let l = listening("loop-connect");
        let address = l.listener.address().clone();
        let handle = l.server_loop.clone();
        let outcome = l.on_loop(move || {
            let stream = std::os::unix::net::UnixStream::connect(match &address {
                multiprocess_thread_map::Address::Unix(path) => path,
                other => panic!("a unix address, not {other}"),
            })
            .expect("the socket accepts");
            multiprocess_thread_map::Connection::connect::<mp_testkit::probe_capnp::init::Client>(
                &handle, stream,
            )
            .map(|_| ())
        });
        assert_wrong_thread(outcome, "connect from");
    });
}

/// Connecting to an address on an event-loop thread fails with
/// `WrongThread` before dialing (a dial can block for long, and forever if
/// the listener is on that very loop).
#[test]
fn connecting_to_an_address_on_a_loop_thread_fails_before_dialing() {
    guard(
        "connecting_to_an_address_on_a_loop_thread_fails_before_dialing",
        LIMIT,
        || {
            let l = listening("loop-connect-to");
            let address = l.listener.address().clone();
            let handle = l.server_loop.clone();
            let outcome = l.on_loop(move || {
                multiprocess_thread_map::connect_to::<mp_testkit::probe_capnp::init::Client>(
                    &handle, &address, LIMIT,
                )
                .map(|_| ())
            });
            // Refused before dialing: the message is connect_to's own.
            assert_wrong_thread(outcome, "connecting to unix:");
        },
    );
}

/// Waiting for workers on an event-loop thread only looks: workers end
/// when their connections close, which is the loop's to do.
#[test]
fn waiting_for_workers_on_a_loop_thread_only_looks() {
    guard(
        "waiting_for_workers_on_a_loop_thread_only_looks",
        LIMIT,
        || {
            let l = listening("loop-workers");
            // A call: the server runs it on a worker for this thread, which
            // stays while the connection does.
            let probe = l.probe();
            assert_eq!(probe.add(1, 2).expect("add"), 3);
            let looked = l.on_loop(|| multiprocess_thread_map::wait_for_workers(0, Duration::MAX));
            assert!(!looked, "a worker lives, yet the wait said none did");
        },
    );
}
