//! Connect / disconnect cycles against one listening server (issue 15,
//! item 6): none leaves a descriptor or a thread behind, in the server or
//! in the client. Alone in its test binary, so that this process's own
//! figures are the cycles' only.
//!
//! 1000 cycles by default; `MP_CONNECT_CYCLES=N` runs N.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mp_testkit::watchdog::guard;
use multiprocess::Address;
use multiprocess_demo::ProcessStats;
use multiprocess_demo::load::Load;

const BOUND: Duration = Duration::from_secs(120);

fn cycles() -> usize {
    std::env::var("MP_CONNECT_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// One cycle: connect, one call, and let go of everything.
fn cycle(address: &Address, n: usize) {
    let (connection, load): (_, Arc<dyn Load>) =
        multiprocess::connect_to::<dyn Load>(address).expect("connect");
    let out = load.echo("cycle", n as u32).expect("a call");
    assert_eq!(out.answer, format!("cycle#{n}"));
    drop(load);
    connection.disconnect();
    assert!(connection.wait_disconnected(BOUND).is_some());
}

#[test]
fn connect_disconnect_cycles_leak_nothing() {
    guard("connect_disconnect_cycles_leak_nothing", BOUND, || {
        let dir = std::env::temp_dir().join(format!("mp-cycles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create the test's directory");
        let address = Address::Unix(dir.join("load.sock"));
        let mut server = Command::new(env!("CARGO_BIN_EXE_load-server"))
            .arg(address.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn load-server");
        let _registration = mp_testkit::children::register(server.id(), "load-server");
        let mut stdin = server.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(server.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let mut read = |line: &mut String| {
            line.clear();
            stdout.read_line(line).expect("read the server");
            line.trim_end().to_string()
        };
        assert!(read(&mut line).starts_with("listening "));
        let mut settle = |line: &mut String| {
            writeln!(stdin, "settle 0 60000").expect("write");
            stdin.flush().expect("flush");
            let said = read(line);
            assert!(said.starts_with("settled true"), "{said}");
        };

        // What one cycle starts once and keeps belongs in the baseline.
        cycle(&address, 0);
        settle(&mut line);
        let loop_sync = || {
            multiprocess::default_loop()
                .expect("loop")
                .sync(|| ())
                .expect("sync");
        };
        loop_sync();
        let server_before = ProcessStats::read(Some(server.id())).expect("server /proc");
        let names_before = multiprocess_demo::thread_names(server.id());
        let ours_before = ProcessStats::read(None).expect("our /proc");

        let count = cycles();
        for n in 1..=count {
            cycle(&address, n);
        }
        settle(&mut line);
        loop_sync();
        let server_after = ProcessStats::read(Some(server.id())).expect("server /proc");
        let ours_after = ProcessStats::read(None).expect("our /proc");
        eprintln!(
            "{count} cycles: server {server_before} -> {server_after}; client {ours_before} -> {ours_after}"
        );
        let names_after = multiprocess_demo::thread_names(server.id());
        assert_eq!(
            multiprocess_demo::threads_beyond(&names_before, &names_after),
            Vec::<String>::new(),
            "server threads: {names_before:?} -> {names_after:?}"
        );
        assert_eq!(server_after.fds, server_before.fds, "server descriptors");
        assert_eq!(ours_after.threads, ours_before.threads, "our threads");
        assert_eq!(ours_after.fds, ours_before.fds, "our descriptors");
        drop(stdin);
        assert!(server.wait().expect("wait for the server").success());
        let _ = std::fs::remove_dir_all(&dir);
    });
}
