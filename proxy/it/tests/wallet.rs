//! The guide's wallet across two processes: every mapping of the schema,
//! callbacks on the caller's thread, errors, `destroy`, and objects that
//! come back to the process that made them.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_testkit::children::Registration;
use mp_testkit::watchdog::guard;
use multiprocess::{Error, Failure};
use multiprocess_proxy_tests::wallet::{Init, Kind, Notify, Tx, Wallet};
use multiprocess_proxy_tests::wallet_impl::{Style, TestWallet};

const BOUND: Duration = Duration::from_secs(60);

struct Peer {
    child: Child,
    init: Option<Arc<dyn Init>>,
    _registration: Registration,
}

impl Peer {
    fn spawn() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wallet-child"));
        let (child, init) =
            multiprocess::spawn::<dyn Init>(&mut command).expect("spawn wallet-child");
        let registration = mp_testkit::children::register(child.id(), "wallet-child");
        Self {
            child,
            init: Some(init),
            _registration: registration,
        }
    }

    fn init(&self) -> &Arc<dyn Init> {
        self.init.as_ref().expect("init is there until drop")
    }

    /// Drops our handles (closing the connection) and waits for the child
    /// to exit, which it does when the parent leaves.
    fn hang_up(mut self) {
        self.init = None;
        let status = self.child.wait().expect("wait for wallet-child");
        assert!(status.success(), "wallet-child exited with {status}");
    }
}

#[test]
fn every_mapping_crosses_and_comes_back() {
    guard("every_mapping_crosses_and_comes_back", BOUND, || {
        let peer = Peer::spawn();
        let wallet = peer.init().make_wallet("main").expect("make_wallet");
        assert_eq!(wallet.balance("alice").expect("balance"), 50);
        // A struct with an Option (hasMemo), Data, and an enum with a default.
        let history = wallet.history("alice", 10).expect("history");
        assert_eq!(
            history,
            vec![Tx {
                txid: [1; 32],
                amount: 50,
                memo: Some("coinbase".into()),
                kind: Kind::Receive
            }]
        );
        let tx = Tx {
            txid: [7; 32],
            amount: 5,
            memo: None,
            kind: Kind::Send,
        };
        let paid = wallet.pay(&tx).expect("pay");
        assert!(paid.accepted, "{paid:?}");
        let refused = wallet
            .pay(&Tx {
                amount: -1,
                ..Tx::default()
            })
            .expect("pay");
        assert!(!refused.accepted);
        assert_eq!(refused.reason, "amount -1 is not positive");
        // hasResult: Some, and the memo's None survives the trip.
        assert_eq!(wallet.last_tx().expect("last_tx"), Some(tx));
        assert_eq!(Tx::default().kind, Kind::Receive, "the schema's default");
        assert_eq!(wallet.history("alice", 0).expect("history"), Vec::new());
        // Parameters named as the generated code's own variables.
        let label = wallet
            .label("1", "2", "3", "4", "5", "6", "7", "8", "9")
            .expect("label");
        assert_eq!(label, "1,2,3,4,5,6,7,8,9");
        drop(wallet);
        peer.hang_up();
    })
}

#[test]
fn a_method_without_context_runs_on_the_pool_not_the_loop() {
    guard(
        "a_method_without_context_runs_on_the_pool_not_the_loop",
        BOUND,
        || {
            let peer = Peer::spawn();
            let wallet = peer.init().make_wallet("spare").expect("make_wallet");
            let name = wallet.name().expect("name");
            assert!(name.starts_with("spare on mp-detached-"), "{name}");
            drop(wallet);
            peer.hang_up();
        },
    )
}

#[test]
fn a_closure_runs_on_the_calling_thread() {
    guard("a_closure_runs_on_the_calling_thread", BOUND, || {
        let peer = Peer::spawn();
        let wallet = peer.init().make_wallet("main").expect("make_wallet");
        let me = std::thread::current().id();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heights = seen.clone();
        let notify: Notify = Arc::new(move |height| {
            assert_eq!(
                std::thread::current().id(),
                me,
                "the callback runs on the subscriber's thread"
            );
            heights.lock().expect("heights").push(height);
            Ok(())
        });
        wallet.subscribe(notify.clone()).expect("subscribe");
        assert_eq!(*seen.lock().expect("heights"), vec![840_000, 840_001]);
        // Our own closure, passed and handed back by the peer, is ours again:
        // the peer sends back our capability, not one of its own.
        let back = wallet.pass_back(notify.clone()).expect("pass_back");
        assert!(
            Arc::ptr_eq(&back, &notify),
            "a closure of ours comes back unwrapped"
        );
        back(7).expect("the closure handed back");
        assert_eq!(*seen.lock().expect("heights"), vec![840_000, 840_001, 7]);
        drop(back);
        drop(wallet);
        peer.hang_up();
    })
}

#[test]
fn failures_are_typed_and_said_once() {
    guard("failures_are_typed_and_said_once", BOUND, || {
        let peer = Peer::spawn();
        let wallet = peer.init().make_wallet("main").expect("make_wallet");
        match wallet.balance("bob") {
            Err(Error::Failed(Failure {
                method,
                message,
                panicked,
                ..
            })) => {
                assert_eq!(method.as_deref(), Some("Wallet.balance"));
                assert_eq!(message, "no account \"bob\"");
                assert!(!panicked);
            }
            other => panic!("expected the method's failure, got {other:?}"),
        }
        match wallet.balance("panic") {
            Err(Error::Failed(failure)) => {
                assert!(failure.panicked, "{failure:?}");
                assert_eq!(failure.message, "balance of a panicking account");
            }
            other => panic!("expected a panic, got {other:?}"),
        }
        // The worker survived both.
        assert_eq!(wallet.balance("alice").expect("balance after failures"), 50);
        drop(wallet);
        peer.hang_up();
    })
}

#[test]
fn dropping_the_last_handle_destroys_the_object_on_the_callers_worker() {
    guard(
        "dropping_the_last_handle_destroys_the_object",
        BOUND,
        || {
            let peer = Peer::spawn();
            let wallet = peer.init().make_wallet("doomed").expect("make_wallet");
            let served_by = wallet.name().expect("name");
            assert!(
                peer.init()
                    .wallets_destroyed()
                    .expect("destroyed")
                    .is_empty()
            );
            let clone = wallet.clone();
            drop(wallet);
            assert!(
                peer.init()
                    .wallets_destroyed()
                    .expect("destroyed")
                    .is_empty(),
                "a handle is left"
            );
            drop(clone);
            let destroyed = peer.init().wallets_destroyed().expect("destroyed");
            assert_eq!(destroyed.len(), 1, "{destroyed:?} ({served_by})");
            assert!(
                destroyed[0].starts_with("mp-worker-"),
                "destroyed on a worker: {destroyed:?}"
            );
            peer.hang_up();
        },
    )
}

#[test]
fn a_remote_wallet_and_a_local_one_are_the_same_to_code_that_uses_them() {
    fn rich(wallet: &dyn Wallet) -> bool {
        wallet.balance("alice").map(|b| b >= 50).unwrap_or(false)
    }
    guard("local_and_remote_alike", BOUND, || {
        let peer = Peer::spawn();
        let remote = peer.init().make_wallet("main").expect("make_wallet");
        let local: Arc<dyn Wallet> = Arc::new(TestWallet::new("local", Style::LOCAL));
        assert!(rich(&*remote) && rich(&*local));
        // The peer's own wallet, passed back to it, is its object again.
        let same = remote.compare(remote.clone()).expect("compare");
        assert!(same.same, "{same:?}");
        // Ours is served to it: it calls back into this process.
        let ours = remote.compare(local.clone()).expect("compare");
        assert!(!ours.same);
        assert_eq!(ours.other_name, "local");
        drop(remote);
        peer.hang_up();
    })
}

#[test]
fn a_hash_of_the_wrong_length_fails_that_call_only() {
    use multiprocess_proxy_tests::wallet_capnp::{init, wallet};
    guard(
        "a_hash_of_the_wrong_length_fails_that_call_only",
        BOUND,
        || {
            let peer = Peer::spawn();
            let wallet = peer.init().make_wallet("main").expect("make_wallet");
            assert_eq!(
                wallet.lookup(&[1; 32]).expect("lookup").map(|tx| tx.amount),
                Some(50)
            );
            assert_eq!(wallet.lookup(&[9; 32]).expect("lookup"), None);
            // A peer that does not use our Rust types (C++, or a buggy one):
            // a raw capnp client on a second connection sends 31 bytes.
            let (raw_child, stream) =
                multiprocess::spawn_process(&mut Command::new(env!("CARGO_BIN_EXE_wallet-child")))
                    .expect("spawn a second wallet-child");
            let _registration =
                mp_testkit::children::register(raw_child.id(), "wallet-child (raw)");
            let event_loop = multiprocess::default_loop().expect("loop");
            let (_connection, raw_init) =
                multiprocess::Connection::connect::<init::Client>(event_loop, stream)
                    .expect("connect");
            let raw_wallet = raw_init
                .call("Init.makeWallet", |client, cx| {
                    let mut request = client.make_wallet_request();
                    cx.set_context(request.get().init_context());
                    request.get().set_name("raw");
                    let adopter = cx.adopter();
                    let response = request.send().promise;
                    async move { adopter.adopt(response.await?.get()?.get_result()?) }
                })
                .expect("makeWallet");
            let lookup = |bytes: Vec<u8>| {
                raw_wallet.call("Wallet.lookup", move |client: &wallet::Client, cx| {
                    let mut request = client.lookup_request();
                    cx.set_context(request.get().init_context());
                    request.get().set_txid(&bytes);
                    let response = request.send().promise;
                    async move { Ok(response.await?.get()?.get_has_result()) }
                })
            };
            match lookup(vec![1; 31]) {
                Err(multiprocess::Error::Failed(failure)) => {
                    assert!(
                        failure.message.contains("expected 32 bytes, got 31"),
                        "{failure:?}"
                    )
                }
                other => panic!("expected the call to fail on its argument, got {other:?}"),
            }
            assert!(lookup(vec![1; 32]).expect("a good lookup on the same connection"));
            drop((raw_wallet, raw_init, _connection));
            let mut raw_child = raw_child;
            assert!(raw_child.wait().expect("wait").success());
            drop(wallet);
            peer.hang_up();
        },
    )
}

#[test]
fn recursive_structs_and_structs_that_hold_capabilities_cross() {
    use multiprocess_proxy_tests::wallet::Link;
    guard(
        "recursive_structs_and_structs_that_hold_capabilities_cross",
        BOUND,
        || {
            let peer = Peer::spawn();
            let wallet = peer.init().make_wallet("main").expect("make_wallet");
            // 1 -> 2 -> 3 comes back 3 -> 2 -> 1; the last link's null next is None.
            fn link(value: i32, next: Option<Link>) -> Link {
                Link {
                    value,
                    next: next.map(Box::new),
                }
            }
            let chain = link(1, Some(link(2, Some(link(3, None)))));
            let reversed = wallet.chain(&chain).expect("chain");
            assert_eq!(reversed, link(3, Some(link(2, Some(link(1, None))))));
            // A struct holding a Wallet: the peer's object, called through it.
            let accounts = wallet.accounts().expect("accounts");
            assert_eq!(accounts.len(), 1);
            assert_eq!(accounts[0].name, "savings");
            let savings = accounts[0].wallet.name().expect("the held wallet answers");
            assert!(savings.starts_with("main-savings on "), "{savings}");
            drop(accounts);
            drop(wallet);
            peer.hang_up();
        },
    )
}
