//! The one Rust `Wallet` (and its `Init`) of the tests: what `wallet-child`
//! and `socket-peer` serve, and the local wallet `tests/wallet.rs` passes to
//! a remote one. A [`Style`] sets what each of them reports about itself
//! (its name, its label, the heights it calls back with); the rest is the
//! same ledger: a coinbase of 50 to start with, payments recorded.

use std::sync::{Arc, Mutex, PoisonError};

use multiprocess::Result;

use crate::wallet::{
    Account, CompareOutput, Expected, Init, Kind, Link, Mode, Notify, PayOutput, Tx, Verdict,
    Wallet,
};

/// What `Wallet.name` answers.
#[derive(Clone, Copy, Debug)]
pub enum Naming {
    /// The wallet's name, then ` on ` and the name of the thread serving
    /// the call (`main on mp-detached-3`).
    OnThread,
    /// Always this text, whatever the wallet was made as.
    Fixed(&'static str),
}

/// What `Wallet.label` answers.
#[derive(Clone, Copy, Debug)]
pub enum Label {
    /// Its nine arguments, joined by commas (`1,2,...,9`).
    Joined,
    /// [`multiprocess::names::current_thread_name`]: which worker served it.
    Thread,
}

/// What a [`TestWallet`] reports about itself: where the tests' wallets
/// differ.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// What `name` answers.
    pub naming: Naming,
    /// What `label` answers.
    pub label: Label,
    /// The heights `subscribe` calls back with, in order.
    pub heights: &'static [i32],
}

impl Style {
    /// `wallet-child`'s: names with the serving thread, two callbacks.
    pub const CHILD: Self = Self {
        naming: Naming::OnThread,
        label: Label::Joined,
        heights: &[840_000, 840_001],
    };
    /// `socket-peer`'s: a label that names the worker, one callback (a
    /// test drains the server while it runs).
    pub const PEER: Self = Self {
        naming: Naming::Fixed("peer"),
        label: Label::Thread,
        heights: &[840_000],
    };
    /// The in-process wallet of `tests/wallet.rs`, called `local`.
    pub const LOCAL: Self = Self {
        naming: Naming::Fixed("local"),
        label: Label::Joined,
        heights: &[1],
    };
}

/// The names of the threads that dropped wallets, shared by an `Init` and
/// the wallets it made.
type Destroyed = Arc<Mutex<Vec<String>>>;

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// An `Init` whose wallets are [`TestWallet`]s of one [`Style`], and which
/// keeps the names of the threads that dropped them.
pub struct TestInit {
    style: Style,
    destroyed: Destroyed,
}

impl TestInit {
    /// An `Init` that makes wallets of `style`.
    pub fn new(style: Style) -> Self {
        Self {
            style,
            destroyed: Destroyed::default(),
        }
    }
}

impl Init for TestInit {
    fn make_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>> {
        Ok(Arc::new(TestWallet::with_log(
            name,
            self.style,
            coinbase(),
            self.destroyed.clone(),
        )))
    }

    fn wallets_destroyed(&self) -> Result<Vec<String>> {
        Ok(lock(&self.destroyed).clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new wallet's history: one coinbase of 50 to `alice`.
fn coinbase() -> Vec<Tx> {
    vec![Tx {
        txid: [1; 32],
        amount: 50,
        memo: Some("coinbase".into()),
        kind: Kind::Receive,
    }]
}

/// The tests' `Wallet`: one ledger (account `alice`; account `panic`
/// panics, any other fails), reporting itself as its [`Style`] says.
pub struct TestWallet {
    name: String,
    style: Style,
    history: Mutex<Vec<Tx>>,
    destroyed: Destroyed,
}

impl TestWallet {
    /// A wallet called `name`, with the coinbase of 50 in its history.
    pub fn new(name: &str, style: Style) -> Self {
        Self::with_log(name, style, coinbase(), Destroyed::default())
    }

    fn with_log(name: &str, style: Style, history: Vec<Tx>, destroyed: Destroyed) -> Self {
        Self {
            name: name.to_string(),
            style,
            history: Mutex::new(history),
            destroyed,
        }
    }
}

impl Drop for TestWallet {
    fn drop(&mut self) {
        lock(&self.destroyed).push(thread_name());
    }
}

impl Wallet for TestWallet {
    fn balance(&self, account: &str) -> Result<i64> {
        match account {
            "alice" => Ok(lock(&self.history).iter().map(|tx| tx.amount).sum()),
            "panic" => panic!("balance of a panicking account"),
            other => Err(multiprocess::Error::failed(format!("no account {other:?}"))),
        }
    }

    fn history(&self, _account: &str, limit: u32) -> Result<Vec<Tx>> {
        Ok(lock(&self.history)
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn subscribe(&self, notify: Notify) -> Result<()> {
        // Called back while serving the subscriber's call: runs on the
        // subscriber's own thread.
        for &height in self.style.heights {
            notify(height)?;
        }
        Ok(())
    }

    fn last_tx(&self) -> Result<Option<Tx>> {
        Ok(lock(&self.history).last().cloned())
    }

    fn pay(&self, tx: &Tx) -> Result<PayOutput> {
        if tx.amount <= 0 {
            return Ok(PayOutput {
                accepted: false,
                reason: format!("amount {} is not positive", tx.amount),
            });
        }
        lock(&self.history).push(tx.clone());
        Ok(PayOutput {
            accepted: true,
            reason: String::new(),
        })
    }

    fn name(&self) -> Result<String> {
        Ok(match self.style.naming {
            Naming::OnThread => format!("{} on {}", self.name, thread_name()),
            Naming::Fixed(name) => name.to_string(),
        })
    }

    fn pass_back(&self, notify: Notify) -> Result<Notify> {
        Ok(notify)
    }

    #[allow(clippy::too_many_arguments)]
    fn label(
        &self,
        request: &str,
        params: &str,
        results: &str,
        client: &str,
        cx: &str,
        ctx: &str,
        object: &str,
        value: &str,
        response: &str,
    ) -> Result<String> {
        Ok(match self.style.label {
            Label::Joined => [
                request, params, results, client, cx, ctx, object, value, response,
            ]
            .join(","),
            Label::Thread => multiprocess::names::current_thread_name(),
        })
    }

    fn chain(&self, link: &Link) -> Result<Link> {
        // Reverse the chain.
        let mut reversed: Option<Box<Link>> = None;
        let mut next = Some(link);
        while let Some(link) = next {
            reversed = Some(Box::new(Link {
                value: link.value,
                next: reversed,
            }));
            next = link.next.as_deref();
        }
        reversed
            .map(|link| *link)
            .ok_or_else(|| multiprocess::Error::failed("no link"))
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        let own: Arc<dyn Wallet> = Arc::new(Self::with_log(
            &format!("{}-savings", self.name),
            self.style,
            Vec::new(),
            self.destroyed.clone(),
        ));
        Ok(vec![Account {
            name: "savings".into(),
            wallet: own,
        }])
    }

    fn verdict(&self, ok: bool) -> Result<Verdict> {
        Ok(Verdict {
            error: (!ok).then(|| "not ok".to_string()),
        })
    }

    fn parse(&self, text: &str) -> Result<Expected<Tx, String>> {
        Ok(match text.parse::<i64>() {
            Ok(amount) => Expected::Value(Tx {
                amount,
                ..Tx::default()
            }),
            Err(e) => Expected::Error(format!("{text:?}: {e}")),
        })
    }

    fn mode(&self, set: &Mode) -> Result<Mode> {
        Ok(set.clone())
    }

    fn lookup(&self, txid: &[u8; 32]) -> Result<Option<Tx>> {
        Ok(lock(&self.history)
            .iter()
            .find(|tx| tx.txid == *txid)
            .cloned())
    }

    fn compare(&self, other: Arc<dyn Wallet>) -> Result<CompareOutput> {
        let any: &dyn std::any::Any = &*other;
        let same = any
            .downcast_ref::<Self>()
            .is_some_and(|w| std::ptr::eq(w, self));
        Ok(CompareOutput {
            same,
            other_name: other.name()?,
        })
    }
}
