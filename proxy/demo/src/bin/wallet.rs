//! The wallet: started by `node` on a socketpair (`-ipcfd=N`), it serves
//! `WalletInit` to the node, subscribes to the node's blocks with a closure
//! (paid `REWARD` per block) and answers balance queries.
//!
//! It lives as long as its connection to the node: when the node goes away
//! (stopped, or killed) it prints `wallet: disconnected from the node
//! (<reason>); exiting` and exits with 0. It ignores SIGINT, which a
//! terminal sends the node's whole process group: the node decides when the
//! wallet stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use multiprocess::Result;
use multiprocess_demo::demo::{BalanceOutput, BlockTip, Chain, Wallet, WalletInit};
use multiprocess_demo::{REWARD, say};

struct Init;

impl WalletInit for Init {
    fn make_wallet(&self, chain: Arc<dyn Chain>) -> Result<Arc<dyn Wallet>> {
        // A call back into the node from inside the node's call: it runs on
        // the node's thread that is waiting for this one.
        let height = chain.height()?;
        let balance = Arc::new(AtomicI64::new(REWARD * i64::from(height)));
        let credited = balance.clone();
        let tip: BlockTip = Arc::new(move |height| {
            let now = credited.fetch_add(REWARD, Ordering::SeqCst) + REWARD;
            say(&format!(
                "wallet: block {height}, balance {now} (told on {})",
                multiprocess::names::current_thread_name()
            ));
            Ok(())
        });
        chain.handle_notifications(tip)?;
        say(&format!("wallet: following the chain from height {height}"));
        Ok(Arc::new(OurWallet {
            balance,
            _chain: chain,
        }))
    }
}

struct OurWallet {
    balance: Arc<AtomicI64>,
    /// The node's chain, held for as long as the wallet follows it.
    _chain: Arc<dyn Chain>,
}

impl Wallet for OurWallet {
    fn balance(&self) -> Result<BalanceOutput> {
        Ok(BalanceOutput {
            balance: self.balance.load(Ordering::SeqCst),
            thread: multiprocess::names::current_thread_name(),
        })
    }
}

fn main() {
    multiprocess::install_tracing();
    // SAFETY: ignoring a signal has no preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let connection = match multiprocess::serve_parent::<dyn WalletInit>(Arc::new(Init)) {
        Ok(Some(connection)) => connection,
        Ok(None) => {
            eprintln!("wallet: the node starts me (with -ipcfd=N); run `node` instead");
            std::process::exit(2);
        }
        Err(e) => {
            say(&format!("wallet: error: cannot serve the node: {e}"));
            std::process::exit(1);
        }
    };
    let reason = connection
        .wait_disconnected(Duration::MAX)
        .map_or_else(|| "no reason given".to_string(), |e| e.to_string());
    say(&format!(
        "wallet: disconnected from the node ({reason}); exiting"
    ));
}
