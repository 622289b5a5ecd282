//! Every request and response is traced at `debug` under the `multiprocess`
//! target, with the method, the request number and the thread names on both
//! ends: `RUST_LOG=multiprocess=debug` is the equivalent of Bitcoin Core's
//! `-debug=ipc`. A client's line and the server's line for one request carry
//! the same `req`, and each names the thread at the other end, so the two
//! processes' logs can be matched line for line. (Alone in this file: it
//! installs the global subscriber.)

mod common;

use std::fs::File;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock}; // sync-facade: allow (test log capture, not runtime code)
use std::time::Duration;

use mp_testkit::peer::Peer;
use mp_testkit::probe::IntFn;
use mp_testkit::watchdog::guard;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &self.0.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// This process's log, captured from the first test that asks for it on.
fn our_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("multiprocess=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// Removes terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One request or response line: its event and fields.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    event: &'static str,
    req: String,
    method: String,
    thread: String,
    /// The thread at the other end (`server` on a client line, `client` on a
    /// server line).
    other: String,
}

/// Parses the `event` lines of `log` whose fields are, in order, `req`,
/// `method`, `thread`, `other_key` (names may contain spaces, so each field
/// ends where the next key starts).
fn lines(log: &str, event: &'static str, other_key: &str) -> Vec<Line> {
    let field = |rest: &str, key: &str, next: &str| -> Option<String> {
        let start = rest.find(&format!("{key}="))? + key.len() + 1;
        let rest = &rest[start..];
        let end = rest.find(&format!(" {next}=")).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    };
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&format!("{event} req="))? + event.len()..];
            Some(Line {
                event,
                req: field(rest, "req", "method")?,
                method: field(rest, "method", "thread")?
                    .trim_matches('"')
                    .to_string(),
                thread: field(rest, "thread", other_key)?,
                other: field(rest, other_key, "connection")?,
            })
        })
        .collect()
}

/// Checks that every request `client_log` shows a thread of `threads`
/// sending is received in `server_log` with the same `req` and method, by
/// the thread the client named, which names the client in turn; and the same
/// for the responses.
fn requests_match(client_log: &str, server_log: &str, threads: &[&str]) -> usize {
    let sent = lines(client_log, "IPC client send", "server");
    let received = lines(server_log, "IPC server recv", "client");
    let answered = lines(server_log, "IPC server send", "client");
    let got = lines(client_log, "IPC client recv", "server");
    let mut matched = 0;
    for send in sent.iter().filter(|l| threads.contains(&l.thread.as_str())) {
        let recv = received
            .iter()
            .find(|r| r.req == send.req && r.method == send.method && r.other == send.thread)
            .unwrap_or_else(|| {
                panic!("no server line matches {send:?}:\n{server_log}\nclient:\n{client_log}")
            });
        if send.other != "?" {
            assert_eq!(
                send.other, recv.thread,
                "the client names the server thread"
            );
        }
        answered
            .iter()
            .find(|a| a.req == send.req && a.method == send.method && a.thread == recv.thread)
            .unwrap_or_else(|| panic!("no response line for {recv:?}:\n{server_log}"));
        let back = got
            .iter()
            .find(|g| g.req == send.req && g.method == send.method && g.thread == send.thread)
            .unwrap_or_else(|| panic!("no client recv line for {send:?}:\n{client_log}"));
        assert_eq!(back.other, recv.thread, "the reply names the server thread");
        matched += 1;
    }
    matched
}

/// Makes traced calls from a thread named `traced-app`, one of them with a
/// callback; returns the descriptive names of that thread and of its worker
/// in the peer.
fn traced_calls(peer: &Peer) -> (String, String) {
    let probe = peer.init.make_probe().expect("makeProbe");
    std::thread::Builder::new()
        .name("traced-app".into())
        .spawn(move || {
            let me = multiprocess_thread_map::names::current_thread_name();
            assert_eq!(probe.add(1, 2).expect("add"), 3);
            assert_eq!(probe.add(3, 4).expect("add"), 7);
            let worker = probe.whoami().expect("whoami").name;
            let double: IntFn = Arc::new(|x| Ok(x * 2));
            assert_eq!(probe.call_fn(double, 5).expect("callFn").result, 10);
            (me, worker)
        })
        .expect("spawn")
        .join()
        .expect("join")
}

fn check(client_log: &str, server_log: &str, app: &str, worker: &str) {
    // Probe.add x2, whoami, callFn from the application thread, and the
    // callback IntFn.call from its worker.
    assert!(
        requests_match(client_log, server_log, &[app]) >= 4,
        "{client_log}"
    );
    assert!(
        requests_match(server_log, client_log, &[worker]) >= 1,
        "{server_log}"
    );
    let callback = lines(server_log, "IPC client send", "server")
        .into_iter()
        .find(|l| l.method == "IntFn.call" && l.thread == worker)
        .unwrap_or_else(|| panic!("no callback line:\n{server_log}"));
    assert_eq!(
        callback.other, app,
        "a callback names the thread it runs on"
    );
    // The thread map's own methods are traced too.
    for (log, needle) in [
        (
            client_log,
            "IPC client send method=\"ThreadMap.makeThread\"",
        ),
        (
            server_log,
            "IPC server recv method=\"ThreadMap.makeThread\"",
        ),
        (
            server_log,
            "IPC server send method=\"ThreadMap.makeThread\"",
        ),
        (
            client_log,
            "IPC client recv method=\"ThreadMap.makeThread\"",
        ),
        (server_log, "IPC server recv method=\"Thread.getName\""),
        (client_log, "IPC client recv method=\"Thread.getName\""),
        (client_log, "IPC client send method=\"construct\""),
        (server_log, "IPC server recv method=\"construct\""),
    ] {
        assert!(log.contains(needle), "no `{needle}` in:\n{log}");
    }
    let made = server_log
        .lines()
        .find(|l| {
            l.contains("IPC server send method=\"ThreadMap.makeThread\"") && l.contains(worker)
        })
        .unwrap_or_else(|| panic!("makeThread does not name {worker}:\n{server_log}"));
    assert!(made.contains(&format!("client={app}")), "{made}");
}

#[test]
fn both_ends_of_each_request_are_traced_alike_in_process() {
    let log = our_log();
    let (app, worker) = guard("tracing in process", Duration::from_secs(60), || {
        let peer = Peer::in_process().expect("peer");
        traced_calls(&peer)
    });
    // Both ends log here; the lines of the other test, which runs
    // meanwhile, name other threads.
    let text = log.text();
    check(&text, &text, &app, &worker);
}

#[test]
fn both_ends_of_each_request_are_traced_alike_child() {
    let log = our_log();
    let dir = std::env::temp_dir().join(format!("mp-tracing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let child_log = dir.join("child.log");
    let file = File::create(&child_log).expect("child log");
    let (app, worker) = guard("tracing across processes", Duration::from_secs(60), || {
        let mut peer = Peer::child_with(common::child_exe(), |command| {
            command
                .env("RUST_LOG", "multiprocess=debug")
                .stderr(Stdio::from(file));
        })
        .expect("child");
        let names = traced_calls(&peer);
        // Every line of those calls was written before their replies left
        // the child: killing it now loses none.
        peer.kill_server();
        names
    });
    let server_log = strip_ansi(&std::fs::read_to_string(&child_log).expect("read child log"));
    let _ = std::fs::remove_dir_all(&dir);
    let client_log = log.text();
    assert!(worker.starts_with("mp-child-"), "{worker} is in the child");
    check(&client_log, &server_log, &app, &worker);
}
