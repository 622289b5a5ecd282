//! The node: listens on `<datadir>/node.sock` for GUIs, spawns its wallet
//! on a socketpair, mines blocks and tells every subscriber.
//!
//! `node [-datadir=DIR] [-ipcbind=unix|unix:PATH|tcp:127.0.0.1:PORT]
//! [-blocktime=MS] [-wallet=PATH]`
//!
//! - `-blocktime=MS`: mine a block every MS milliseconds (default 1000;
//!   0: only when a GUI asks, with `generate`);
//! - `-wallet=PATH`: the wallet executable (default: `wallet` beside this
//!   one).
//!
//! Prints `node: wallet pid N`, then `node: listening ADDRESS`. Stops on
//! SIGINT or SIGTERM, or when a client calls `stop`: it stops accepting,
//! drains (running calls finish, then every GUI is disconnected),
//! disconnects its wallet, waits for it to exit, prints `node: stopped`
//! and exits with 0.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use multiprocess::{Address, Connection, Error, Interface, Result};
use multiprocess_demo::demo::{BlockTip, Chain, Node, StatusOutput, Wallet, WalletInit};
use multiprocess_demo::{datadir, flag, say, sibling_exe};

/// How long a stopping node lets running calls finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping node waits for its wallet to exit.
const WALLET_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why the node stops, once something asked it to.
#[derive(Default)]
struct Shutdown {
    reason: Mutex<Option<String>>,
    cv: Condvar,
}

impl Shutdown {
    fn request(&self, why: &str) {
        let mut reason = lock(&self.reason);
        if reason.is_none() {
            *reason = Some(why.to_string());
        }
        self.cv.notify_all();
    }

    /// Waits until asked to stop, at most `timeout`; returns the reason.
    fn wait(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now().checked_add(timeout);
        let mut reason = lock(&self.reason);
        while reason.is_none() {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            reason = self
                .cv
                .wait_timeout(reason, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        reason.clone()
    }
}

/// The chain and who follows it.
struct State {
    height: AtomicI32,
    /// Subscribers, told of every block in order; one that turns out to be
    /// disconnected is dropped.
    tips: Mutex<Vec<(u64, BlockTip)>>,
    next_tip: AtomicU64,
    /// Held while a block is mined and announced, so that every subscriber
    /// sees the heights in order. Subscribers must not mine from inside
    /// their callback.
    mining: Mutex<()>,
    /// The wallet, once made; taken at shutdown.
    wallet: Mutex<Option<Arc<dyn Wallet>>>,
    shutdown: Shutdown,
}

impl State {
    fn subscribe(&self, tip: BlockTip) {
        let id = self.next_tip.fetch_add(1, Ordering::Relaxed);
        lock(&self.tips).push((id, tip));
    }

    /// Mines `blocks` blocks, telling every subscriber of each before the
    /// next; returns the new height.
    fn mine(&self, blocks: i32) -> i32 {
        let _mining = lock(&self.mining);
        for _ in 0..blocks {
            let height = self.height.fetch_add(1, Ordering::SeqCst) + 1;
            let tips = lock(&self.tips).clone();
            for (id, tip) in tips {
                match tip(height) {
                    Ok(()) => {}
                    Err(e) if e.is_disconnected() => {
                        say(&format!(
                            "node: a subscriber went away at block {height}; dropped it"
                        ));
                        lock(&self.tips).retain(|(other, _)| *other != id);
                    }
                    Err(e) => say(&format!("node: a subscriber failed at block {height}: {e}")),
                }
            }
        }
        self.height.load(Ordering::SeqCst)
    }
}

/// What GUIs see.
struct NodeServer(Arc<State>);

impl Node for NodeServer {
    fn status(&self) -> Result<StatusOutput> {
        let height = self.0.height.load(Ordering::SeqCst);
        let wallet = lock(&self.0.wallet)
            .clone()
            .ok_or_else(|| Error::failed("the node has no wallet"))?;
        // The wallet's own trouble is not the GUI's connection's: say it
        // as a failure of this call.
        let balance = wallet
            .balance()
            .map_err(|e| Error::failed(format!("the wallet did not answer: {e}")))?;
        Ok(StatusOutput {
            height,
            balance: balance.balance,
            node_thread: multiprocess::names::current_thread_name(),
            wallet_thread: balance.thread,
        })
    }

    fn subscribe(&self, tip: BlockTip) -> Result<()> {
        self.0.subscribe(tip);
        Ok(())
    }

    fn generate(&self, blocks: i32) -> Result<i32> {
        if !(0..=1000).contains(&blocks) {
            return Err(Error::failed(format!(
                "generate: {blocks} blocks: expected 0 to 1000"
            )));
        }
        Ok(self.0.mine(blocks))
    }

    fn stop(&self) -> Result<()> {
        self.0.shutdown.request("a client asked");
        Ok(())
    }
}

/// What the wallet sees.
struct ChainServer(Arc<State>);

impl Chain for ChainServer {
    fn height(&self) -> Result<i32> {
        Ok(self.0.height.load(Ordering::SeqCst))
    }

    fn handle_notifications(&self, tip: BlockTip) -> Result<()> {
        self.0.subscribe(tip);
        Ok(())
    }
}

/// The write end of the pipe the signal handler writes to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is static.
        unsafe { libc::write(fd, b"s".as_ptr().cast(), 1) };
    }
}

/// Turns SIGINT and SIGTERM into a shutdown request (a thread reads the
/// pipe the handler writes to). Handlers are reset in the wallet by exec.
fn stop_on_signals(state: Arc<State>) -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    let handler = on_signal as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls write(2).
        if unsafe { libc::signal(signal, handler as libc::sighandler_t) } == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    let read_fd = fds[0];
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = 0u8;
            // SAFETY: reads one byte into `byte` from our own pipe.
            let n = unsafe { libc::read(read_fd, (&raw mut byte).cast(), 1) };
            if n == 1 {
                state.shutdown.request("a signal");
            }
        })?;
    Ok(())
}

/// Starts the wallet on a socketpair and connects to it, keeping the
/// connection (to disconnect it at shutdown).
fn spawn_wallet(exe: &std::path::Path) -> Result<(Child, Connection, Arc<dyn WalletInit>)> {
    let (child, stream) = multiprocess::spawn_process(&mut Command::new(exe))?;
    let (connection, object) = Connection::connect::<<dyn WalletInit as Interface>::Capnp>(
        multiprocess::default_loop()?,
        stream,
    )?;
    Ok((child, connection, <dyn WalletInit>::from_remote(object)))
}

/// Waits for the wallet to exit, at most `timeout`, then kills it.
fn reap_wallet(child: &mut Child, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return format!("exited with {status}"),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return format!("did not exit within {timeout:?}: killed");
            }
            Err(e) => return format!("cannot be waited for: {e}"),
        }
    }
}

fn run(args: &[String]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let datadir = datadir(args);
    std::fs::create_dir_all(&datadir)?;
    let ipcbind = flag(args, "ipcbind").unwrap_or_else(|| "unix".into());
    let address = Address::parse(&ipcbind, &datadir, "node")?;
    let blocktime = match flag(args, "blocktime") {
        Some(ms) => Duration::from_millis(
            ms.parse()
                .map_err(|_| format!("-blocktime={ms}: expected milliseconds"))?,
        ),
        None => Duration::from_secs(1),
    };
    let wallet_exe = match flag(args, "wallet") {
        Some(path) => path.into(),
        None => sibling_exe("wallet")?,
    };

    let state = Arc::new(State {
        height: AtomicI32::new(0),
        tips: Mutex::new(Vec::new()),
        next_tip: AtomicU64::new(0),
        mining: Mutex::new(()),
        wallet: Mutex::new(None),
        shutdown: Shutdown::default(),
    });
    stop_on_signals(state.clone())?;

    let (mut wallet_child, wallet_connection, wallet_init) = spawn_wallet(&wallet_exe)
        .map_err(|e| format!("cannot start the wallet {}: {e}", wallet_exe.display()))?;
    let wallet_connection = Arc::new(wallet_connection);
    say(&format!("node: wallet pid {}", wallet_child.id()));
    let wallet = wallet_init.make_wallet(Arc::new(ChainServer(state.clone())))?;
    *lock(&state.wallet) = Some(wallet);
    {
        // A wallet that goes away on its own leaves the node running.
        let state = state.clone();
        let connection = wallet_connection.clone();
        std::thread::Builder::new()
            .name("wallet-watch".into())
            .spawn(move || {
                if let Some(reason) = connection.wait_disconnected(Duration::MAX)
                    && state.shutdown.wait(Duration::ZERO).is_none()
                {
                    say(&format!("node: the wallet disconnected ({reason})"));
                }
            })?;
    }

    let listener = multiprocess::listen::<dyn Node>(&address, Arc::new(NodeServer(state.clone())))?;
    say(&format!("node: listening {}", listener.address()));

    let miner = if blocktime.is_zero() {
        None
    } else {
        let state = state.clone();
        Some(
            std::thread::Builder::new()
                .name("miner".into())
                .spawn(move || {
                    while state.shutdown.wait(blocktime).is_none() {
                        state.mine(1);
                    }
                })?,
        )
    };

    let reason = state
        .shutdown
        .wait(Duration::MAX)
        .unwrap_or_else(|| "unknown".into());
    say(&format!("node: shutting down ({reason})"));
    if let Some(miner) = miner {
        let _ = miner.join();
    }
    listener.stop();
    let connections = listener.connection_count();
    let drained = listener.drain(DRAIN_TIMEOUT);
    say(&format!(
        "node: drained {connections} connections ({})",
        if drained {
            "every call finished"
        } else {
            "timed out: cut"
        }
    ));
    // Nothing of the wallet's may outlive its connection here.
    lock(&state.tips).clear();
    lock(&state.wallet).take();
    drop(wallet_init);
    wallet_connection.disconnect();
    say(&format!(
        "node: the wallet {}",
        reap_wallet(&mut wallet_child, WALLET_EXIT_TIMEOUT)
    ));
    say("node: stopped");
    Ok(())
}

fn main() {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        say(&format!("node: error: {e}"));
        std::process::exit(1);
    }
}
