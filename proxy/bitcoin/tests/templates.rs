//! `BlockTemplate`'s lifetime across two processes: `waitNext` handing out
//! a new template while other threads keep using the old ones,
//! `interruptWait` waking it from another thread, and a template destroyed
//! in the node when its last handle is dropped, on the worker of the
//! dropping thread.

mod common;

use common::{BOUND, Node, mine, mock_state, on_thread, send_tx, wait_for_waiters};
use mp_testkit::watchdog::guard;
use multiprocess::Error;
use multiprocess_proxy_bitcoin::json::Value;
use multiprocess_proxy_bitcoin::mining::{BlockCreateOptions, BlockWaitOptions};
use multiprocess_proxy_bitcoin::mock::FEE_PER_BYTE;

fn waiters(state: &Value, kind: &str) -> f64 {
    state
        .get(kind)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no {kind} in {state}"))
}

#[test]
fn wait_next_returns_a_new_template_while_other_threads_keep_calling() {
    guard("wait_next_returns_a_new_template", BOUND, || {
        let node = Node::spawn();
        let mining = node.mining();
        let rpc = node.rpc();
        let first = mining
            .create_new_block(&BlockCreateOptions::default(), true)
            .expect("create_new_block");
        let other = mining
            .create_new_block(&BlockCreateOptions::default(), true)
            .expect("create_new_block");
        let header = first.get_block_header().expect("header");

        // One thread waits for fees to rise by 1000 sat...
        let waiting = first.clone();
        let waited = on_thread(move || {
            let next = waiting.wait_next(&BlockWaitOptions {
                fee_threshold: 1000,
                ..BlockWaitOptions::default()
            })?;
            Ok::<_, Error>((next.get_tx_fees()?, next.get_block_header()?))
        });
        wait_for_waiters(&*rpc, "template", 1);

        // ...while others keep calling the template it waits on and another.
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (first, other) = (first.clone(), other.clone());
                on_thread(move || {
                    for _ in 0..20 {
                        first.get_block_header()?;
                        first.get_tx_fees()?;
                        other.get_coinbase_tx()?;
                        other.get_coinbase_merkle_path()?;
                    }
                    first.get_block_header()
                })
            })
            .collect();
        for caller in callers {
            let seen = caller
                .recv_timeout(BOUND)
                .expect("a caller finishes")
                .expect("calls on templates during waitNext");
            assert_eq!(seen, header);
        }
        // The waiter was still waiting through all of those calls.
        assert_eq!(waiters(&mock_state(&*rpc), "template_waiters"), 1.0);

        // 5 bytes pay 500 sat: not enough. 10 more bytes make 1500.
        send_tx(&*rpc, 5, 1);
        assert_eq!(waiters(&mock_state(&*rpc), "template_waiters"), 1.0);
        send_tx(&*rpc, 10, 2);
        let (fees, next_header) = waited
            .recv_timeout(BOUND)
            .expect("the waiter returns")
            .expect("wait_next");
        assert_eq!(fees, vec![5 * FEE_PER_BYTE, 10 * FEE_PER_BYTE]);
        assert_eq!(next_header[4..36], header[4..36], "on the same tip");
        assert!(
            first.get_tx_fees().expect("fees").is_empty(),
            "the old one is unchanged"
        );

        // A new tip wakes a waiter whatever its fee threshold.
        let waiting = other.clone();
        let waited = on_thread(move || {
            waiting
                .wait_next(&BlockWaitOptions::default())
                .and_then(|next| next.get_block_header())
        });
        wait_for_waiters(&*rpc, "template", 1);
        let tip = mine(&*mining);
        let next_header = waited
            .recv_timeout(BOUND)
            .expect("the waiter returns")
            .expect("wait_next");
        assert_eq!(next_header[4..36], tip.hash[..], "on the new tip");
        drop((first, other, mining, rpc));
        node.hang_up();
    })
}

#[test]
fn interrupt_wait_wakes_a_thread_blocked_in_wait_next() {
    guard("interrupt_wait_wakes_wait_next", BOUND, || {
        let node = Node::spawn();
        let mining = node.mining();
        let rpc = node.rpc();
        let template = mining
            .create_new_block(&BlockCreateOptions::default(), true)
            .expect("create_new_block");

        let waiting = template.clone();
        let waited = on_thread(move || waiting.wait_next(&BlockWaitOptions::default()).map(|_| ()));
        wait_for_waiters(&*rpc, "template", 1);
        // No Context: runs on a pool thread of the node while the waiter
        // holds its own worker.
        template.interrupt_wait().expect("interrupt_wait");
        match waited.recv_timeout(BOUND).expect("the waiter returns") {
            Err(Error::Failed(f)) => {
                assert!(f.message.contains("interrupted"), "{f:?}");
                assert_eq!(f.method.as_deref(), Some("BlockTemplate.waitNext"));
            }
            other => panic!("waitNext after interruptWait answered {other:?}"),
        }

        // The template is still usable, and a short wait times out.
        assert_eq!(template.get_block_header().expect("header").len(), 80);
        match template.wait_next(&BlockWaitOptions {
            timeout: 0.01,
            ..BlockWaitOptions::default()
        }) {
            Err(Error::Failed(f)) => assert!(f.message.contains("timed out"), "{f:?}"),
            other => panic!("a 10 ms waitNext answered {:?}", other.map(|_| ())),
        }
        // interruptWait of one template leaves another's wait alone.
        let second = mining
            .create_new_block(&BlockCreateOptions::default(), true)
            .expect("create_new_block");
        second.interrupt_wait().expect("interrupt_wait");
        match template.wait_next(&BlockWaitOptions {
            timeout: 0.01,
            ..BlockWaitOptions::default()
        }) {
            Err(Error::Failed(f)) => assert!(f.message.contains("timed out"), "{f:?}"),
            other => panic!("waitNext answered {:?}", other.map(|_| ())),
        }
        drop((template, second, mining, rpc));
        node.hang_up();
    })
}

fn dropped(state: &Value) -> Vec<(f64, String)> {
    state
        .get("templates_dropped")
        .and_then(Value::as_array)
        .expect("templates_dropped")
        .iter()
        .map(|d| {
            (
                d.get("id").and_then(Value::as_f64).expect("id"),
                d.get("thread")
                    .and_then(Value::as_str)
                    .expect("thread")
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn a_template_is_destroyed_when_its_last_handle_is_dropped() {
    guard(
        "a_template_is_destroyed_when_its_last_handle_is_dropped",
        BOUND,
        || {
            let node = Node::spawn();
            let mining = node.mining();
            let rpc = node.rpc();
            let state = mock_state(&*rpc);
            // The worker serving this thread (the one that runs its calls).
            let my_worker = state
                .get("thread")
                .and_then(Value::as_str)
                .expect("thread")
                .to_string();
            assert!(dropped(&state).is_empty());

            let template = mining
                .create_new_block(&BlockCreateOptions::default(), true)
                .expect("create_new_block");
            let clone = template.clone();
            assert_eq!(waiters(&mock_state(&*rpc), "templates_alive"), 1.0);
            drop(template);
            assert!(dropped(&mock_state(&*rpc)).is_empty(), "a handle is left");
            drop(clone);
            let state = mock_state(&*rpc);
            assert_eq!(waiters(&state, "templates_alive"), 0.0);
            assert_eq!(dropped(&state), vec![(0.0, my_worker.clone())]);

            // A template another thread got from waitNext, dropped there, is
            // destroyed on that thread's worker.
            let base = mining
                .create_new_block(&BlockCreateOptions::default(), true)
                .expect("create_new_block");
            let (waiting, thread_rpc) = (base.clone(), rpc.clone());
            let waited = on_thread(move || {
                let next = waiting
                    .wait_next(&BlockWaitOptions {
                        fee_threshold: 1,
                        ..BlockWaitOptions::default()
                    })
                    .expect("wait_next");
                let worker = mock_state(&*thread_rpc)
                    .get("thread")
                    .and_then(Value::as_str)
                    .expect("thread")
                    .to_string();
                drop(next);
                worker
            });
            wait_for_waiters(&*rpc, "template", 1);
            send_tx(&*rpc, 1, 0);
            let their_worker = waited.recv_timeout(BOUND).expect("the waiter returns");
            assert_ne!(their_worker, my_worker);
            let state = mock_state(&*rpc);
            assert_eq!(dropped(&state)[1], (2.0, their_worker));
            assert_eq!(waiters(&state, "templates_alive"), 1.0, "base is alive");
            drop(base);
            assert_eq!(waiters(&mock_state(&*rpc), "templates_alive"), 0.0);
            drop((mining, rpc));
            node.hang_up();
        },
    )
}
