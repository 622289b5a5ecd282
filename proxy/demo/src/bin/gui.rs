//! A GUI, in text: connects to the node's socket and shows the node's
//! height and the wallet's balance (which the node asks its wallet for).
//! Start as many as you like, whenever you like.
//!
//! `gui [-datadir=DIR] [-ipcconnect=unix|unix:PATH|tcp:127.0.0.1:PORT]`
//!
//! Prints `gui: connected to ADDRESS, height H balance B`, then
//! `gui: block H` for every block, and obeys stdin, a line at a time:
//!
//! - `status`: prints `gui: height H balance B`;
//! - `threads N`: N application threads each ask for the status and print
//!   `gui: thread T -> node N -> wallet W`: the node thread that served T,
//!   and the wallet thread that served that node thread;
//! - `mine N`: asks the node to mine N blocks, prints `gui: mined, height H`;
//! - `stop`: asks the node to shut down;
//! - `quit`, or the end of input: prints `gui: bye`, exits with 0.
//!
//! When the node goes away it prints `gui: disconnected from the node
//! (<reason>); exiting` and exits with 0; if it cannot connect, it prints
//! `gui: cannot connect ...` and exits with 1.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use multiprocess::{Address, Error};
use multiprocess_demo::demo::{BlockTip, Node};
use multiprocess_demo::{datadir, flag, say, short_thread_name};

/// Set before a GUI that quits drops its connection: that disconnection is
/// its own doing.
static QUITTING: AtomicBool = AtomicBool::new(false);

/// Held while a command runs: the node going away mid-command is told
/// after the command has said how it went (`stop`'s answer comes just
/// before the node disconnects, and must not be lost to the exit).
static COMMAND: Mutex<()> = Mutex::new(());

/// Says the node went away (once) and exits with 0.
fn node_gone(reason: &str) -> ! {
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        say(&format!(
            "gui: disconnected from the node ({reason}); exiting"
        ))
    });
    std::process::exit(0);
}

/// What a call's error means for the GUI: the node gone, or a failure to
/// show.
fn check<T>(result: multiprocess::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) if e.is_disconnected() => node_gone(&e.to_string()),
        Err(e) => {
            say(&format!("gui: error: {e}"));
            None
        }
    }
}

fn threads(node: &Arc<dyn Node>, count: usize) {
    let handles: Vec<_> = (0..count)
        .map(|i| {
            let node = node.clone();
            std::thread::Builder::new()
                .name(format!("app-{i}"))
                .spawn(move || {
                    let me = multiprocess::names::current_thread_name();
                    node.status().map(|status| (me, status))
                })
        })
        .collect();
    for handle in handles {
        let joined = match handle {
            Ok(handle) => handle.join(),
            Err(e) => {
                say(&format!("gui: error: cannot start a thread: {e}"));
                continue;
            }
        };
        let Ok(result) = joined else {
            say("gui: error: an application thread panicked");
            continue;
        };
        if let Some((me, status)) = check(result) {
            say(&format!(
                "gui: thread {me} -> node {} -> wallet {}",
                short_thread_name(&status.node_thread),
                short_thread_name(&status.wallet_thread)
            ));
        }
    }
}

fn main() {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let datadir = datadir(&args);
    let ipcconnect = flag(&args, "ipcconnect").unwrap_or_else(|| "unix".into());
    let address = match Address::parse(&ipcconnect, &datadir, "node") {
        Ok(address) => address,
        Err(e) => {
            say(&format!("gui: error: {e}"));
            std::process::exit(2);
        }
    };
    let (connection, node) = match multiprocess::connect_to::<dyn Node>(&address) {
        Ok(connected) => connected,
        Err(e) => {
            say(&format!("gui: cannot connect to {address}: {e}"));
            std::process::exit(1);
        }
    };
    let connection = Arc::new(connection);
    {
        let connection = connection.clone();
        let watch = std::thread::Builder::new()
            .name("node-watch".into())
            .spawn(move || {
                let reason = connection.wait_disconnected(Duration::MAX);
                // A running command ends soon: its calls fail once the
                // connection is closed.
                let _command = COMMAND.lock().unwrap_or_else(|p| p.into_inner());
                if !QUITTING.load(Ordering::SeqCst) {
                    node_gone(&reason.map_or_else(|| "closed".into(), |e: Error| e.to_string()));
                }
            });
        if let Err(e) = watch {
            say(&format!("gui: error: cannot start a thread: {e}"));
            std::process::exit(1);
        }
    }
    let tip: BlockTip = Arc::new(|height| {
        say(&format!("gui: block {height}"));
        Ok(())
    });
    {
        // Getting started is a command too: its lines come first.
        let _command = COMMAND.lock().unwrap_or_else(|p| p.into_inner());
        check(node.subscribe(tip));
        if let Some(status) = check(node.status()) {
            say(&format!(
                "gui: connected to {address}, height {} balance {}",
                status.height, status.balance
            ));
        }
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let _command = COMMAND.lock().unwrap_or_else(|p| p.into_inner());
        let mut words = line.split_whitespace();
        match (words.next(), words.next().map(str::parse::<i32>)) {
            (Some("status"), None) => {
                if let Some(status) = check(node.status()) {
                    say(&format!(
                        "gui: height {} balance {}",
                        status.height, status.balance
                    ));
                }
            }
            (Some("threads"), Some(Ok(n))) if (1..=64).contains(&n) => threads(&node, n as usize),
            (Some("mine"), Some(Ok(n))) => {
                if let Some(height) = check(node.generate(n)) {
                    say(&format!("gui: mined, height {height}"));
                }
            }
            (Some("stop"), None) => {
                if check(node.stop()).is_some() {
                    say("gui: asked the node to stop");
                }
            }
            (Some("quit"), None) => break,
            (None, _) => {}
            _ => say(&format!(
                "gui: unknown command {line:?} (status, threads N, mine N, stop, quit)"
            )),
        }
    }
    QUITTING.store(true, Ordering::SeqCst);
    say("gui: bye");
}
