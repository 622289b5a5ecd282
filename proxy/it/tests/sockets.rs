//! Processes that find each other by address (issue 15): listening on a
//! unix socket or a TCP port, connecting with clear errors, draining a
//! server while a call runs, and bad input on a listening socket. Every
//! server and most clients are `socket-peer` child processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mp_testkit::line_process::{LineProcess, TempDir};
use mp_testkit::watchdog::guard;
use multiprocess::{Address, Error};
use multiprocess_proxy_tests::wallet::{Init, Wallet};

const BOUND: Duration = Duration::from_secs(90);

/// A directory of its own for one test, removed when dropped.
fn temp_dir(label: &str) -> TempDir {
    TempDir::new("mp-sockets", label)
}

/// The unix socket `name` in `dir`.
fn unix(dir: &TempDir, name: &str) -> Address {
    Address::Unix(dir.path().join(name))
}

/// Starts a `socket-peer` child with `args`, to talk to through its stdin
/// and stdout.
fn start_peer(args: &[&str]) -> LineProcess {
    start_peer_with(args, |_| {})
}

/// [`start_peer`], with `configure` setting more of its command.
fn start_peer_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> LineProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socket-peer"));
    command.args(args);
    configure(&mut command);
    LineProcess::spawn(command, "socket-peer")
}

/// Starts a `socket-peer` server on `address` and returns it with the
/// address it listens on.
fn serve_peer(address: &str, flags: &[&str]) -> (LineProcess, Address) {
    let mut args = vec!["serve", address];
    args.extend_from_slice(flags);
    let mut peer = start_peer(&args);
    let line = peer.line();
    let Some(bound) = line.strip_prefix("listening ") else {
        panic!("socket-peer serve {address}: {line}");
    };
    let bound = bound.parse().expect("the address it prints parses");
    (peer, bound)
}

/// What a `socket-peer` run to completion printed (one line).
fn run_peer(args: &[&str]) -> String {
    let mut peer = start_peer(args);
    let line = peer.line();
    peer.finish();
    line
}

/// Connects from this process, and returns the name of the worker that
/// served a call (with the connection and wallet, to keep them open).
fn connect_and_call(address: &Address) -> (multiprocess::Connection, Arc<dyn Wallet>, String) {
    let (connection, init) =
        multiprocess::connect_to::<dyn Init>(address).expect("connect to the listener");
    let wallet = init.make_wallet("w").expect("make_wallet");
    let worker = label(&*wallet).expect("a call on the listener's connection");
    (connection, wallet, worker)
}

fn label(wallet: &dyn Wallet) -> multiprocess::Result<String> {
    wallet.label("", "", "", "", "", "", "", "", "")
}

fn io_kind(result: multiprocess::Result<impl Sized>) -> (std::io::ErrorKind, String) {
    match result {
        Err(Error::Io { kind, message }) => (kind, message),
        Err(other) => panic!("expected an I/O error, got {other:?}"),
        Ok(_) => panic!("expected an I/O error, got a connection"),
    }
}

/// `line` without its terminal colours.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    let meta = std::fs::symlink_metadata(path).expect("stat the socket file");
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        path.display()
    );
    meta.permissions().mode() & 0o777
}

#[test]
fn a_unix_listener_serves_each_client_on_its_own_workers() {
    guard("a_unix_listener_serves_each_client", BOUND, || {
        let dir = temp_dir("unix");
        let wanted = Address::parse("unix", dir.path(), "node").expect("the default socket");
        assert_eq!(wanted, unix(&dir, "node.sock"));
        // umask 0 would make a plainly bound socket 0777.
        let (mut server, address) = serve_peer(&wanted.to_string(), &["umask0"]);
        assert_eq!(address, wanted);
        let Address::Unix(path) = &address else {
            unreachable!()
        };
        assert_eq!(mode(path), 0o600, "the owner only, whatever the umask");

        let (_connection, wallet, ours) = connect_and_call(&address);
        assert!(ours.contains("/worker-"), "{ours}");
        // Another client process gets workers of its own.
        let theirs = run_peer(&["connect", &address.to_string()]);
        let theirs = theirs.strip_prefix("ok ").expect(&theirs).to_string();
        assert!(theirs.contains("/worker-"), "{theirs}");
        assert_ne!(ours, theirs, "each connection has its own workers");
        // Our thread keeps its worker.
        assert_eq!(label(&*wallet).expect("call again"), ours);

        // Stopping closes the socket and removes its file; connections
        // already made carry on.
        server.send("stop");
        assert_eq!(server.line(), "stopped");
        assert!(!path.exists(), "the socket file is removed on stop");
        let (kind, message) = io_kind(multiprocess::connect_to::<dyn Init>(&address));
        assert_eq!(kind, std::io::ErrorKind::NotFound, "{message}");
        assert!(message.contains("no such socket"), "{message}");
        assert_eq!(label(&*wallet).expect("still served"), ours);
        drop(wallet);
        server.finish();
    });
}

#[test]
fn group_access_opens_the_socket_to_the_group() {
    guard("group_access_opens_the_socket_to_the_group", BOUND, || {
        let dir = temp_dir("group");
        let (server, address) = serve_peer(&unix(&dir, "g.sock").to_string(), &["group", "umask0"]);
        let Address::Unix(path) = &address else {
            unreachable!()
        };
        assert_eq!(mode(path), 0o660);
        server.finish();
        assert!(!path.exists(), "removed when the server exits");
    });
}

#[test]
fn tcp_listens_on_loopback_v4_and_v6() {
    guard("tcp_listens_on_loopback_v4_and_v6", BOUND, || {
        for wanted in ["tcp:127.0.0.1:0", "tcp:[::1]:0"] {
            let (server, address) = serve_peer(wanted, &[]);
            let Address::Tcp(addr) = address else {
                panic!("{address} is not a TCP address")
            };
            assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
            let (_connection, wallet, ours) = connect_and_call(&address);
            assert!(ours.contains("/worker-"), "{ours}");
            let theirs = run_peer(&["connect", &address.to_string()]);
            assert!(
                theirs.starts_with("ok ") && theirs != format!("ok {ours}"),
                "{theirs}"
            );
            drop(wallet);
            server.finish();
        }
    });
}

#[test]
fn tcp_refuses_other_addresses_unless_allowed() {
    guard("tcp_refuses_other_addresses", BOUND, || {
        let line = run_peer(&["serve", "tcp:0.0.0.0:0"]);
        assert!(line.starts_with("error Io(InvalidInput)"), "{line}");
        assert!(line.contains("not a loopback address"), "{line}");
        assert!(line.contains("no authentication or encryption"), "{line}");
        let line = run_peer(&["serve", "tcp:localhost:1"]);
        assert!(line.starts_with("error Io(InvalidInput)"), "{line}");
        assert!(line.contains("expected"), "{line}");
    });
}

#[test]
fn a_dead_servers_socket_is_replaced_and_a_live_ones_left_alone() {
    guard("a_dead_servers_socket_is_replaced", BOUND, || {
        let dir = temp_dir("stale");
        let address = unix(&dir, "node.sock");
        let Address::Unix(path) = &address else {
            unreachable!()
        };
        // A server killed outright leaves its socket file behind.
        let (mut dead, _) = serve_peer(&address.to_string(), &[]);
        dead.child().kill().expect("kill the first server");
        dead.child().wait().expect("reap it");
        assert!(path.exists(), "SIGKILL leaves the file");
        let (kind, message) = io_kind(multiprocess::connect_to::<dyn Init>(&address));
        assert_eq!(kind, std::io::ErrorKind::ConnectionRefused, "{message}");
        assert!(message.contains("nothing listens"), "{message}");

        // Nothing answers there: a new server takes the path over.
        let (live, _) = serve_peer(&address.to_string(), &[]);
        let (_connection, wallet, _) = connect_and_call(&address);

        // A live server is not replaced: the second one is refused...
        let line = run_peer(&["serve", &address.to_string()]);
        assert!(line.starts_with("error Io(AddrInUse)"), "{line}");
        assert!(line.contains("already listening"), "{line}");
        // ...and the first still serves on the same file.
        assert!(path.exists());
        let again = run_peer(&["connect", &address.to_string()]);
        assert!(again.starts_with("ok "), "{again}");
        label(&*wallet).expect("our connection is untouched");
        drop(wallet);
        live.finish();

        // A path that is not a socket is never replaced.
        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"data").expect("write a regular file");
        let line = run_peer(&["serve", &format!("unix:{}", file.display())]);
        assert!(line.starts_with("error Io(AlreadyExists)"), "{line}");
        assert_eq!(std::fs::read(&file).expect("still there"), b"data");
        // The directory must exist.
        let line = run_peer(&[
            "serve",
            &format!("unix:{}/no/such/dir.sock", dir.path().display()),
        ]);
        assert!(line.starts_with("error Io(NotFound)"), "{line}");
        assert!(line.contains("the directory must exist"), "{line}");
    });
}

#[test]
fn connect_errors_say_what_went_wrong() {
    guard("connect_errors_say_what_went_wrong", BOUND, || {
        let dir = temp_dir("errors");
        // No such socket.
        let (kind, message) = io_kind(multiprocess::connect_to::<dyn Init>(&unix(
            &dir,
            "none.sock",
        )));
        assert_eq!(kind, std::io::ErrorKind::NotFound, "{message}");
        // A regular file, a directory.
        let file = dir.path().join("regular");
        std::fs::write(&file, b"").expect("write a file");
        let (kind, message) = io_kind(multiprocess::connect_to::<dyn Init>(&Address::Unix(
            file.clone(),
        )));
        assert_eq!(kind, std::io::ErrorKind::InvalidInput, "{message}");
        assert!(
            message.contains("a regular file, not a socket"),
            "{message}"
        );
        let (kind, message) = io_kind(multiprocess::connect_to::<dyn Init>(&Address::Unix(
            dir.path().to_path_buf(),
        )));
        assert_eq!(kind, std::io::ErrorKind::InvalidInput, "{message}");
        assert!(message.contains("a directory, not a socket"), "{message}");

        // Permission denied: the socket file is the owner's only...
        let (server, address) = serve_peer(&unix(&dir, "node.sock").to_string(), &[]);
        let line = run_peer(&["connect", &address.to_string(), "nobody"]);
        assert!(line.starts_with("error Io(PermissionDenied)"), "{line}");
        assert!(line.contains("permission denied"), "{line}");
        let line = run_peer(&["connect", &address.to_string()]);
        assert!(line.starts_with("ok "), "its owner gets in: {line}");
        server.finish();
        // ...or a directory on the way is closed to the user.
        let private = dir.path().join("private");
        std::fs::create_dir(&private).expect("mkdir");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let inside = Address::Unix(private.join("node.sock"));
        let (server, _) = serve_peer(&inside.to_string(), &["group"]);
        let line = run_peer(&["connect", &inside.to_string(), "nobody"]);
        assert!(line.starts_with("error Io(PermissionDenied)"), "{line}");
        server.finish();

        // Connection refused on TCP: a port nothing listens on (bound,
        // so nobody else takes it meanwhile, and never listening).
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = unused.local_addr().expect("its address").port();
        drop(unused);
        let tcp: Address = format!("tcp:127.0.0.1:{port}").parse().expect("address");
        let line = run_peer(&["connect", &tcp.to_string()]);
        assert!(line.starts_with("error Io(ConnectionRefused)"), "{line}");
    });
}

#[test]
fn a_peer_that_is_not_a_multiprocess_server_is_told_apart() {
    guard("a_peer_that_is_not_a_multiprocess_server", BOUND, || {
        let dir = temp_dir("fake");
        for (how, expect) in [
            ("garbage", "is not a multiprocess server"),
            (
                "close",
                "closed the connection during the construct handshake",
            ),
            ("silent", "did not answer the construct handshake"),
        ] {
            let path = dir.path().join(format!("{how}.sock"));
            let mut fake = start_peer(&["fake", &path.display().to_string(), how]);
            assert_eq!(fake.line(), "listening");
            let got = multiprocess::connect_to_with::<dyn Init>(
                &Address::Unix(path.clone()),
                Duration::from_secs(1),
            );
            let error = match got {
                Err(e) => e,
                Ok(_) => panic!("{how}: a fake server passed the handshake"),
            };
            match how {
                "close" => assert!(matches!(error, Error::Disconnected(_)), "{how}: {error:?}"),
                _ => assert!(matches!(error, Error::Protocol(_)), "{how}: {error:?}"),
            }
            assert!(error.to_string().contains(expect), "{how}: {error}");
            fake.finish();
        }
    });
}

#[test]
fn one_connection_over_the_maximum_is_closed_with_a_log_line() {
    guard("one_connection_over_the_maximum", BOUND, || {
        let dir = temp_dir("max");
        let address = unix(&dir, "node.sock");
        let mut server = start_peer_with(&["serve", &address.to_string(), "max=2"], |c| {
            c.env("RUST_LOG", "multiprocess=warn")
                .stderr(Stdio::piped());
        });
        let line = server.line();
        assert!(line.starts_with("listening"), "{line}");
        let mut stderr = BufReader::new(server.child().stderr.take().expect("piped stderr"));
        let first = connect_and_call(&address);
        let second = connect_and_call(&address);
        let third = multiprocess::connect_to::<dyn Init>(&address);
        match third {
            // The server's own reason, sent before it closed.
            Err(Error::Disconnected(m)) => {
                assert!(m.contains("its maximum of 2 connections"), "{m}")
            }
            Err(other) => panic!("a third connection: {other:?}"),
            Ok(_) => panic!("a third connection was served"),
        }
        let mut warned = String::new();
        while !warned.contains("refused a connection") {
            warned.clear();
            let n = stderr
                .read_line(&mut warned)
                .expect("read the server's log");
            assert_ne!(
                n, 0,
                "the server's log ended with no line about the refusal"
            );
        }
        assert!(plain(&warned).contains("max=2"), "{warned}");
        // The two served carry on.
        assert_eq!(label(&*first.1).expect("first"), first.2);
        assert_eq!(label(&*second.1).expect("second"), second.2);
        drop((first, second));
        server.finish();
    });
}

#[test]
fn draining_lets_a_running_call_finish_then_disconnects() {
    guard("draining_lets_a_running_call_finish", BOUND, || {
        let dir = temp_dir("drain");
        let (server, address) = serve_peer(&unix(&dir, "node.sock").to_string(), &[]);
        let server = Arc::new(std::sync::Mutex::new(server));
        let (connection, init) = multiprocess::connect_to::<dyn Init>(&address).expect("connect");
        let wallet = init.make_wallet("w").expect("make_wallet");
        let (other_connection, other_init) =
            multiprocess::connect_to::<dyn Init>(&address).expect("a second client");
        let other_wallet = other_init.make_wallet("w").expect("make_wallet");

        // `subscribe` runs on the server and calls back here: while it is
        // in the middle of running, the server starts draining.
        let during = server.clone();
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        let notify: multiprocess_proxy_tests::wallet::Notify = Arc::new(move |height| {
            assert_eq!(height, 840_000);
            let mut server = during.lock().unwrap_or_else(|p| p.into_inner());
            server.send("drain");
            assert_eq!(server.line(), "draining");
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        wallet
            .subscribe(notify)
            .expect("the call running when the drain began completes, with its answer");
        assert_eq!(seen.load(Ordering::Relaxed), 1);

        // (The server may still hold our callback for a moment: it shares
        // the peer with us.)
        let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(server.line(), "drained true");
        // Everyone was disconnected once nothing ran, the idle client too.
        assert!(
            connection.wait_disconnected(BOUND).is_some(),
            "our connection closed"
        );
        assert!(other_connection.wait_disconnected(BOUND).is_some());
        for wallet in [&wallet, &other_wallet] {
            match wallet.balance("alice") {
                Err(e) => assert!(e.is_disconnected(), "{e:?}"),
                Ok(b) => panic!("a call after the drain was answered: {b}"),
            }
        }
        // It stopped accepting when the drain began.
        let (kind, _) = io_kind(multiprocess::connect_to::<dyn Init>(&address));
        assert_eq!(kind, std::io::ErrorKind::NotFound);
        drop((wallet, other_wallet, init, other_init));
        // A drained server has nothing left to do: it exits.
        let status = server.child().wait().expect("wait for the server");
        assert!(status.success(), "the server exited with {status}");
    });
}

#[test]
fn a_drain_that_times_out_says_so_and_cuts_nothing() {
    guard("a_drain_that_times_out", BOUND, || {
        let dir = temp_dir("drain-timeout");
        let (server, address) = serve_peer(&unix(&dir, "node.sock").to_string(), &[]);
        let server = Arc::new(std::sync::Mutex::new(server));
        let (connection, init) = multiprocess::connect_to::<dyn Init>(&address).expect("connect");
        let wallet = init.make_wallet("w").expect("make_wallet");
        // The call stays in the middle of running (its callback waits here)
        // until the server's drain has given up.
        let during = server.clone();
        let notify: multiprocess_proxy_tests::wallet::Notify = Arc::new(move |_| {
            let mut server = during.lock().unwrap_or_else(|p| p.into_inner());
            server.send("drain 200");
            assert_eq!(server.line(), "draining");
            assert_eq!(server.line(), "drained false", "a request is still running");
            Ok(())
        });
        wallet
            .subscribe(notify)
            .expect("a timed-out drain closed nothing: the call gets its answer");
        // The drain is still on: once nothing runs, everyone is
        // disconnected, with the server still up.
        assert!(connection.wait_disconnected(BOUND).is_some());
        assert!(wallet.balance("alice").is_err_and(|e| e.is_disconnected()));
        let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
        server.send("exit");
        let status = server.child().wait().expect("wait for the server");
        assert!(status.success(), "the server exited with {status}");
    });
}

#[test]
fn bad_input_on_a_listening_socket_hurts_only_its_own_connection() {
    guard("bad_input_on_a_listening_socket", BOUND, || {
        let dir = temp_dir("bad");
        let (mut server, address) = serve_peer(&unix(&dir, "node.sock").to_string(), &[]);
        let Address::Unix(path) = address.clone() else {
            unreachable!()
        };
        let (_c1, wallet, ours) = connect_and_call(&address);

        // A client that connects and never speaks.
        let silent = UnixStream::connect(&path).expect("connect raw");
        // Garbage: a segment table no message has.
        let mut garbage = UnixStream::connect(&path).expect("connect raw");
        garbage.write_all(&[0xff; 64]).expect("write garbage");
        // A truncated message: one segment of 100 words announced, 8 bytes
        // sent, then the end of the stream.
        let mut truncated = UnixStream::connect(&path).expect("connect raw");
        let mut header = 0u32.to_le_bytes().to_vec();
        header.extend_from_slice(&100u32.to_le_bytes());
        header.extend_from_slice(&[0; 8]);
        truncated
            .write_all(&header)
            .expect("write a truncated message");
        truncated
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        // Half-open: connects and closes its writing side at once.
        let half = UnixStream::connect(&path).expect("connect raw");
        half.shutdown(std::net::Shutdown::Write)
            .expect("half-close");

        // Each of those is closed by the server...
        for (what, mut stream) in [
            ("garbage", garbage),
            ("truncated", truncated),
            ("half-open", half),
        ] {
            let mut rest = Vec::new();
            // EOF, or a reset: either way the server closed it.
            let _ = stream.read_to_end(&mut rest);
            assert!(
                rest.len() < 1024,
                "{what}: the server sent {} bytes",
                rest.len()
            );
        }
        // ...while the others are served: the client already there, and
        // one that connects while the silent one is still open.
        assert_eq!(label(&*wallet).expect("still served"), ours);
        let (_c2, wallet2, theirs) = connect_and_call(&address);
        assert_ne!(ours, theirs);
        // The silent client holds no worker: the two callers have one each.
        server.send("count");
        assert_eq!(server.line(), "workers 2");
        drop(silent);
        drop((wallet, wallet2));
        server.finish();
    });
}
