//! The processes of `tests/sockets.rs`: a server listening on an address,
//! a client connecting to one, and servers that are not multiprocess
//! servers. Each prints one line per step on stdout for the test to read.
//!
//! - `serve ADDRESS [max=N] [group] [umask0]`: serves the wallet's `Init`
//!   on `ADDRESS`; prints `listening ADDRESS` (or `error KIND MESSAGE`),
//!   then obeys stdin, a line at a time: `stop` (prints `stopped`),
//!   `drain [MS]` (prints `draining`, then `drained true|false` once
//!   drained or after MS milliseconds; exits once drained), `count`
//!   (prints `workers N`), `exit`; exits at end of input.
//! - `connect ADDRESS [nobody]`: connects (as user `nobody` if asked),
//!   calls, prints `ok WORKER` or `error KIND MESSAGE`.
//! - `fake PATH garbage|close|silent`: listens on a unix socket with no
//!   multiprocess in it; answers the first connection with garbage, by
//!   closing it, or not at all; prints `listening`, exits at end of input.

use std::io::{BufRead, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use multiprocess::{Address, Error, ListenOptions};
use multiprocess_proxy_tests::wallet::Init;
use multiprocess_proxy_tests::wallet_impl::{Style, TestInit};

/// How long a draining server waits for its running requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(50);

/// One line on stdout, flushed at once (the test waits for it).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `error KIND MESSAGE`, with KIND `Io(NotFound)`, `Protocol`,
/// `Disconnected`...
fn say_error(e: &Error) {
    let kind = match e {
        Error::Io { kind, .. } => format!("Io({kind:?})"),
        Error::Disconnected(_) => "Disconnected".into(),
        Error::Protocol(_) => "Protocol".into(),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("?")
            .to_string(),
    };
    say(&format!("error {kind} {e}"));
}

fn serve(address: &Address, flags: &[String]) {
    let mut options = ListenOptions::new();
    for flag in flags {
        if let Some(max) = flag.strip_prefix("max=") {
            options = options.max_connections(max.parse().unwrap_or(1));
        } else if flag == "group" {
            options = options.group_access(true);
        } else if flag == "umask0" {
            // SAFETY: umask has no preconditions and cannot fail.
            unsafe { libc::umask(0) };
        }
    }
    let listener = match multiprocess::listen_with::<dyn Init>(
        address,
        options,
        Arc::new(TestInit::new(Style::PEER)),
    ) {
        Ok(listener) => listener,
        Err(e) => return say_error(&e),
    };
    say(&format!("listening {}", listener.address()));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "stop" => {
                listener.stop();
                say("stopped");
            }
            command if command.starts_with("drain") => {
                let timeout = command
                    .strip_prefix("drain ")
                    .and_then(|ms| ms.parse().ok())
                    .map_or(DRAIN_TIMEOUT, Duration::from_millis);
                listener.begin_drain();
                say("draining");
                let drained = listener.wait_drained(timeout);
                say(&format!("drained {drained}"));
                if drained {
                    // Nothing left to serve.
                    return;
                }
            }
            "count" => say(&format!("workers {}", multiprocess::live_workers())),
            "exit" => return,
            other => say(&format!("unknown command {other:?}")),
        }
    }
}

fn connect(address: &Address, flags: &[String]) {
    if flags.iter().any(|f| f == "nobody") {
        // SAFETY: plain system calls; checked below.
        let dropped = unsafe { libc::setgid(65534) == 0 && libc::setuid(65534) == 0 };
        if !dropped {
            return say(&format!(
                "error Setup cannot become nobody: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let called = multiprocess::connect_to::<dyn Init>(address).and_then(|(_connection, init)| {
        init.make_wallet("w")?
            .label("", "", "", "", "", "", "", "", "")
    });
    match called {
        Ok(worker) => say(&format!("ok {worker}")),
        Err(e) => say_error(&e),
    }
}

fn fake(path: &str, how: &str) {
    let listener = match std::os::unix::net::UnixListener::bind(path) {
        Ok(listener) => listener,
        Err(e) => return say(&format!("error Io {e}")),
    };
    say("listening");
    let held = match listener.accept() {
        Ok((mut stream, _)) => match how {
            "garbage" => {
                let _ = stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nthis is no capnp\r\n");
                Some(stream)
            }
            "close" => None,
            _ => Some(stream),
        },
        Err(e) => return say(&format!("error Io {e}")),
    };
    // Hold the connection until the test is done with us.
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    drop(held);
    let _ = std::fs::remove_file(path);
}

fn main() {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(address)) = (args.first(), args.get(1)) else {
        eprintln!("usage: socket-peer serve|connect|fake ADDRESS [flags]");
        std::process::exit(2);
    };
    let flags = &args[2..];
    if mode == "fake" {
        return fake(address, flags.first().map_or("silent", String::as_str));
    }
    let address: Address = match address.parse() {
        Ok(address) => address,
        Err(e) => return say_error(&e),
    };
    match mode.as_str() {
        "serve" => serve(&address, flags),
        "connect" => connect(&address, flags),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
