//! Serves the guide's `Init` and `Wallet` to the parent that spawned it.

use std::sync::{Arc, Mutex};

use multiprocess::Result;
use multiprocess_proxy_tests::wallet::{Account, Init, Kind, Link, Notify, PayOutput, Tx, Wallet};

/// The names of the threads that dropped wallets.
static DESTROYED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

struct MyInit;

impl Init for MyInit {
    fn make_wallet(&self, name: &str) -> Result<Arc<dyn Wallet>> {
        Ok(Arc::new(MyWallet {
            name: name.to_string(),
            history: Mutex::new(vec![Tx {
                txid: [1; 32],
                amount: 50,
                memo: Some("coinbase".into()),
                kind: Kind::Receive,
            }]),
        }))
    }

    fn wallets_destroyed(&self) -> Result<Vec<String>> {
        Ok(DESTROYED.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

struct MyWallet {
    name: String,
    history: Mutex<Vec<Tx>>,
}

impl Drop for MyWallet {
    fn drop(&mut self) {
        DESTROYED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thread_name());
    }
}

impl Wallet for MyWallet {
    fn balance(&self, account: &str) -> Result<i64> {
        match account {
            "alice" => Ok(self
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|tx| tx.amount)
                .sum()),
            "panic" => panic!("balance of a panicking account"),
            other => Err(multiprocess::Error::failed(format!("no account {other:?}"))),
        }
    }

    fn history(&self, _account: &str, limit: u32) -> Result<Vec<Tx>> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        Ok(history.iter().take(limit as usize).cloned().collect())
    }

    fn subscribe(&self, notify: Notify) -> Result<()> {
        // Called back while serving the subscriber's call: runs on the
        // subscriber's own thread.
        notify(840_000)?;
        notify(840_001)
    }

    fn last_tx(&self) -> Result<Option<Tx>> {
        Ok(self
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned())
    }

    fn pay(&self, tx: &Tx) -> Result<PayOutput> {
        if tx.amount <= 0 {
            return Ok(PayOutput {
                accepted: false,
                reason: format!("amount {} is not positive", tx.amount),
            });
        }
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx.clone());
        Ok(PayOutput {
            accepted: true,
            reason: String::new(),
        })
    }

    fn name(&self) -> Result<String> {
        Ok(format!("{} on {}", self.name, thread_name()))
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
    ) -> multiprocess::Result<String> {
        Ok([
            request, params, results, client, cx, ctx, object, value, response,
        ]
        .join(","))
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
        let own: Arc<dyn Wallet> = Arc::new(MyWallet {
            name: format!("{}-savings", self.name),
            history: Mutex::new(Vec::new()),
        });
        Ok(vec![Account {
            name: "savings".into(),
            wallet: own,
        }])
    }

    fn verdict(&self, ok: bool) -> multiprocess::Result<multiprocess_proxy_tests::wallet::Verdict> {
        Ok(multiprocess_proxy_tests::wallet::Verdict {
            error: (!ok).then(|| "not ok".to_string()),
        })
    }

    fn parse(
        &self,
        text: &str,
    ) -> multiprocess::Result<multiprocess_proxy_tests::wallet::Expected<Tx, String>> {
        Ok(match text.parse::<i64>() {
            Ok(amount) => multiprocess_proxy_tests::wallet::Expected::Value(Tx {
                amount,
                ..Tx::default()
            }),
            Err(e) => multiprocess_proxy_tests::wallet::Expected::Error(format!("{text:?}: {e}")),
        })
    }

    fn mode(
        &self,
        set: &multiprocess_proxy_tests::wallet::Mode,
    ) -> multiprocess::Result<multiprocess_proxy_tests::wallet::Mode> {
        Ok(set.clone())
    }

    fn lookup(&self, txid: &[u8; 32]) -> Result<Option<Tx>> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        Ok(history.iter().find(|tx| tx.txid == *txid).cloned())
    }

    fn compare(
        &self,
        other: Arc<dyn Wallet>,
    ) -> Result<multiprocess_proxy_tests::wallet::CompareOutput> {
        let any: &dyn std::any::Any = &*other;
        let same = any
            .downcast_ref::<MyWallet>()
            .is_some_and(|w| std::ptr::eq(w, self));
        Ok(multiprocess_proxy_tests::wallet::CompareOutput {
            same,
            other_name: other.name()?,
        })
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    multiprocess_proxy_tests::install_tracing();
    let Some(connection) = multiprocess::serve_parent::<dyn Init>(Arc::new(MyInit))? else {
        return Err("start me from a parent, with -ipcfd".into());
    };
    connection.wait_disconnected(std::time::Duration::MAX);
    Ok(())
}
