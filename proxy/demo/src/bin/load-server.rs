//! The many-clients test's server (`tests/many_clients.rs`): serves `Load`
//! on an address, and obeys stdin, a line at a time:
//!
//! - `workers`: prints `workers N` (live worker threads);
//! - `settle N MS`: waits at most MS milliseconds until at most N workers
//!   are alive and their threads joined (and, for N = 0, no connection is
//!   open); prints `settled true|false N`.
//! - `connections`: prints `connections N` (accepted connections open);
//! - `wait-connections N MS`: prints `waiting`, then waits at most MS
//!   milliseconds until at most N accepted connections are open; prints
//!   `connections N true|false`;
//! - `exhaust-fds`: lowers its descriptor limit to 256 and opens
//!   `/dev/null` until no descriptor is left, so that accepting fails;
//!   prints `exhausted N` (descriptors it took);
//! - `release-fds`: closes them; prints `released N`.
//!
//! `load-server ADDRESS [HANDSHAKE_MS]` (how long a new connection may take
//! to call `construct`; the listener's default otherwise); prints
//! `listening ADDRESS` first; exits at the end of input.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiprocess::{Address, Result};
use multiprocess_demo::load::{EchoOutput, Holding, Load};
use multiprocess_demo::say;

struct Server;

impl Load for Server {
    fn echo(&self, caller: &str, seq: u32) -> Result<EchoOutput> {
        Ok(EchoOutput {
            answer: format!("{caller}#{seq}"),
            worker: multiprocess::names::current_thread_name(),
        })
    }

    fn hold(&self, during: Holding) -> Result<()> {
        during(&multiprocess::names::current_thread_name())
    }
}

/// Waits until at most `count` workers are alive, then until their threads
/// are joined: a worker that stops counting has already handed its join to
/// the loop (or the loop is joining it), so a round trip through the loop
/// comes back after it.
fn settle(listener: &multiprocess::Listener, count: usize, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut settled = multiprocess::raw::wait_for_workers(count, timeout);
    // A client's worker can go (the client released it) a little before
    // its connection closes (the end of its socket is read after).
    if settled && count == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        settled = listener.wait_connections(0, left);
    }
    multiprocess::default_loop()?.sync(|| ())?;
    Ok(settled)
}

/// Takes every descriptor left, under a limit of 256 (so that few are
/// needed): returns them, or why the limit could not be lowered.
fn exhaust_descriptors() -> std::io::Result<Vec<std::fs::File>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max.min(256);
    // SAFETY: `limit` is a valid rlimit for the call to read.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut taken = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => taken.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return Ok(taken),
            Err(e) => return Err(e),
        }
    }
}

fn main() {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: load-server ADDRESS [HANDSHAKE_MS]");
        std::process::exit(2);
    };
    let options = multiprocess::ListenOptions::new();
    let (address, options) = match args.as_slice() {
        [address] => (address, options),
        [address, millis] => match millis.parse() {
            Ok(millis) => (
                address,
                options.handshake_timeout(Duration::from_millis(millis)),
            ),
            Err(_) => usage(),
        },
        _ => usage(),
    };
    let listener = address.parse::<Address>().and_then(|address| {
        multiprocess::listen_with::<dyn Load>(&address, options, Arc::new(Server))
    });
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            say(&format!("error {e}"));
            std::process::exit(1);
        }
    };
    say(&format!("listening {}", listener.address()));
    let mut taken = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["workers"] => say(&format!("workers {}", multiprocess::live_workers())),
            ["settle", count, ms] => match (count.parse(), ms.parse()) {
                (Ok(count), Ok(ms)) => match settle(&listener, count, Duration::from_millis(ms)) {
                    Ok(settled) => say(&format!(
                        "settled {settled} {}",
                        multiprocess::live_workers()
                    )),
                    Err(e) => say(&format!("error {e}")),
                },
                _ => say("error settle N MS: expected numbers"),
            },
            ["connections"] => say(&format!("connections {}", listener.connection_count())),
            ["wait-connections", count, ms] => match (count.parse(), ms.parse()) {
                (Ok(count), Ok(ms)) => {
                    say("waiting");
                    let done = listener.wait_connections(count, Duration::from_millis(ms));
                    say(&format!(
                        "connections {} {done}",
                        listener.connection_count()
                    ));
                }
                _ => say("error wait-connections N MS: expected numbers"),
            },
            ["exhaust-fds"] => match exhaust_descriptors() {
                Ok(files) => {
                    say(&format!("exhausted {}", files.len()));
                    taken = files;
                }
                Err(e) => say(&format!("error {e}")),
            },
            ["release-fds"] => {
                let count = taken.len();
                taken.clear();
                say(&format!("released {count}"));
            }
            _ => say(&format!("error unknown command {line:?}")),
        }
    }
}
