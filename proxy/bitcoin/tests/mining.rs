//! Bitcoin Core's `Mining` interface across two processes, against the
//! mock node: the tip (with and without one), waiting for it to change,
//! interrupting that wait, templates, block checks and submissions, and
//! mempool look-ups.

mod common;

use std::sync::Arc;

use common::{BOUND, Node, mine, on_thread, rpc_ok, send_tx, solve, wait_for_waiters};
use mp_testkit::watchdog::guard;
use multiprocess::Error;
use multiprocess_proxy_bitcoin::block::{self, Block, Header};
use multiprocess_proxy_bitcoin::common::BlockRef;
use multiprocess_proxy_bitcoin::init::Init;
use multiprocess_proxy_bitcoin::json::Value;
use multiprocess_proxy_bitcoin::mining::{BlockCheckOptions, BlockCreateOptions, Mining};
use multiprocess_proxy_bitcoin::mock::{FEE_PER_BYTE, MockNode};

#[test]
fn get_tip_is_none_until_a_first_block_and_a_waiter_sees_it_arrive() {
    guard("get_tip_is_none_until_a_first_block", BOUND, || {
        let node = Node::spawn_empty();
        let mining = node.mining();
        let rpc = node.rpc();
        assert_eq!(mining.get_tip().expect("get_tip"), None);
        assert!(mining.is_initial_block_download().expect("ibd"));
        match mining.create_new_block(&BlockCreateOptions::default(), true) {
            Err(Error::Failed(f)) => assert!(f.message.contains("no tip"), "{f:?}"),
            Err(other) => panic!("not the node's refusal: {other:?}"),
            Ok(_) => panic!("a template with no tip"),
        }

        // Another client thread waits for a tip, from none (empty hash).
        let waiter_mining = mining.clone();
        let waited = on_thread(move || waiter_mining.wait_tip_changed(&[], f64::MAX));
        wait_for_waiters(&*rpc, "tip", 1);

        let coinbase = block::coinbase_for(0, block::SUBSIDY);
        let mut genesis = Block {
            header: Header {
                merkle_root: block::merkle_root(&[block::txid(&coinbase)]),
                ..Header::default()
            },
            txs: vec![coinbase],
        };
        genesis.solve();
        let checked = mining
            .check_block(&genesis.serialize(), &BlockCheckOptions::default())
            .expect("check_block");
        assert!(checked.result, "{checked:?}");
        let submitted = mining
            .submit_block(&genesis.serialize(), false)
            .expect("submit_block");
        assert!(submitted.result, "{submitted:?}");

        let expected = BlockRef {
            hash: genesis.header.hash().to_vec(),
            height: 0,
        };
        let seen = waited
            .recv_timeout(BOUND)
            .expect("the waiter returns")
            .expect("wait_tip_changed");
        assert_eq!(seen, expected);
        assert_eq!(mining.get_tip().expect("get_tip"), Some(expected));
        assert!(!mining.is_initial_block_download().expect("ibd"));
        drop((mining, rpc));
        node.hang_up();
    })
}

#[test]
fn wait_tip_changed_returns_when_another_thread_mines_a_block() {
    guard(
        "wait_tip_changed_returns_when_another_thread_mines",
        BOUND,
        || {
            let node = Node::spawn();
            let mining = node.mining();
            let rpc = node.rpc();
            assert!(mining.is_test_chain().expect("is_test_chain"));
            let genesis = mining.get_tip().expect("get_tip").expect("genesis");
            assert_eq!(genesis.height, 0);
            assert_eq!(genesis.hash.len(), 32);

            let waiter_mining = mining.clone();
            let from = genesis.hash.clone();
            let waited = on_thread(move || waiter_mining.wait_tip_changed(&from, f64::MAX));
            wait_for_waiters(&*rpc, "tip", 1);
            let mined = mine(&*mining);
            assert_eq!(mined.height, 1);
            let seen = waited
                .recv_timeout(BOUND)
                .expect("the waiter returns")
                .expect("wait_tip_changed");
            assert_eq!(seen, mined);

            // A wait that times out (10 ms in the node) returns the same tip;
            // one from a stale tip returns the current one at once.
            assert_eq!(
                mining
                    .wait_tip_changed(&mined.hash, 0.01)
                    .expect("wait_tip_changed"),
                mined
            );
            assert_eq!(
                mining
                    .wait_tip_changed(&genesis.hash, f64::MAX)
                    .expect("wait_tip_changed"),
                mined
            );
            drop((mining, rpc));
            node.hang_up();
        },
    )
}

#[test]
fn interrupt_wakes_a_thread_blocked_in_wait_tip_changed() {
    guard("interrupt_wakes_wait_tip_changed", BOUND, || {
        let node = Node::spawn();
        let mining = node.mining();
        let rpc = node.rpc();
        let tip = mining.get_tip().expect("get_tip").expect("tip");

        let waiter_mining = mining.clone();
        let from = tip.hash.clone();
        let waited = on_thread(move || waiter_mining.wait_tip_changed(&from, f64::MAX));
        wait_for_waiters(&*rpc, "tip", 1);
        // `interrupt` has no Context: it runs on a pool thread of the node,
        // not behind a worker, and wakes the waiter on its own worker.
        mining.interrupt().expect("interrupt");
        let seen = waited
            .recv_timeout(BOUND)
            .expect("the waiter returns")
            .expect("wait_tip_changed");
        // Bitcoin Core returns no tip (nullopt), which the schema carries as
        // an unset result: an empty BlockRef.
        assert_eq!(seen, BlockRef::default());
        assert_eq!(mining.get_tip().expect("get_tip"), Some(tip.clone()));

        // As in Bitcoin Core, an interrupt nobody waited for yet ends the
        // next wait, once.
        mining.interrupt().expect("interrupt");
        assert_eq!(
            mining
                .wait_tip_changed(&tip.hash, f64::MAX)
                .expect("wait_tip_changed"),
            BlockRef::default()
        );
        assert_eq!(
            mining
                .wait_tip_changed(&tip.hash, 0.01)
                .expect("wait_tip_changed"),
            tip
        );
        drop((mining, rpc));
        node.hang_up();
    })
}

#[test]
fn a_template_holds_the_mempool_its_coinbase_and_merkle_path() {
    guard("a_template_holds_the_mempool", BOUND, || {
        let node = Node::spawn();
        let mining = node.mining();
        let rpc = node.rpc();
        let tip = mining.get_tip().expect("get_tip").expect("tip");
        let txs = [
            send_tx(&*rpc, 40, 1),
            send_tx(&*rpc, 60, 2),
            send_tx(&*rpc, 200, 3),
        ];

        let template = mining
            .create_new_block(&BlockCreateOptions::default(), true)
            .expect("create_new_block");
        let fees: Vec<i64> = txs
            .iter()
            .map(|tx| FEE_PER_BYTE * tx.len() as i64)
            .collect();
        assert_eq!(template.get_tx_fees().expect("fees"), fees);
        assert_eq!(template.get_tx_sigops().expect("sigops"), vec![1, 2, 5]);
        let header =
            Header::parse(&template.get_block_header().expect("header")).expect("80 bytes");
        assert_eq!(header.prev.to_vec(), tip.hash);
        let block = Block::parse(&template.get_block().expect("block")).expect("a block");
        assert_eq!(block.header, header);
        assert_eq!(&block.txs[1..], &txs[..]);

        let coinbase = template.get_coinbase_tx().expect("coinbase");
        assert_eq!(coinbase.script_sig_prefix, block::script_sig_prefix(1));
        assert_eq!(
            coinbase.block_reward_remaining,
            block::SUBSIDY + fees.iter().sum::<i64>()
        );
        assert_eq!(coinbase.required_outputs.len(), 1);
        assert_eq!(
            coinbase.required_outputs[0][..6],
            [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
        );
        assert_eq!(coinbase.lock_time, 0);
        // The path leads from the template's own coinbase to its root.
        let path: Vec<block::Hash> = template
            .get_coinbase_merkle_path()
            .expect("path")
            .iter()
            .map(|h| h.as_slice().try_into().expect("32 bytes"))
            .collect();
        assert_eq!(path.len(), 2, "four transactions: two levels");
        assert_eq!(
            block::root_from_path(&block::txid(&block.txs[0]), &path),
            header.merkle_root
        );

        // Without the mempool, or with the block's weight reserved, the
        // template is the coinbase alone.
        let bare = mining
            .create_new_block(
                &BlockCreateOptions {
                    use_mempool: false,
                    ..BlockCreateOptions::default()
                },
                false,
            )
            .expect("create_new_block");
        assert!(bare.get_tx_fees().expect("fees").is_empty());
        let full = mining
            .create_new_block(
                &BlockCreateOptions {
                    block_reserved_weight: 4_000_000,
                    ..BlockCreateOptions::default()
                },
                false,
            )
            .expect("create_new_block");
        assert!(full.get_tx_fees().expect("fees").is_empty());
        drop((template, bare, full, mining, rpc));
        node.hang_up();
    })
}

#[test]
fn check_block_answers_reason_debug_and_result() {
    guard("check_block_answers_reason_debug_and_result", BOUND, || {
        let node = Node::spawn();
        let mining = node.mining();
        let template = mining
            .create_new_block(&BlockCreateOptions::default(), true)
            .expect("create_new_block");
        let (coinbase, header) = solve(&*template);
        let good = Block {
            header,
            txs: vec![coinbase.clone()],
        };
        let all = BlockCheckOptions::default();
        assert!(
            all.check_merkle_root && all.check_pow,
            "the schema's defaults"
        );

        let checked = mining
            .check_block(&good.serialize(), &all)
            .expect("check_block");
        assert_eq!(
            (
                checked.reason.as_str(),
                checked.debug.as_str(),
                checked.result
            ),
            ("", "", true)
        );

        // A nonce that misses the target: refused unless PoW is not checked.
        let mut unsolved = good.clone();
        while unsolved.header.meets_target() {
            unsolved.header.nonce += 1;
        }
        let checked = mining
            .check_block(&unsolved.serialize(), &all)
            .expect("check_block");
        assert!(!checked.result);
        assert_eq!(checked.reason, "high-hash");
        assert!(checked.debug.contains("proof of work"), "{checked:?}");
        let no_pow = BlockCheckOptions {
            check_pow: false,
            ..all.clone()
        };
        assert!(
            mining
                .check_block(&unsolved.serialize(), &no_pow)
                .expect("check_block")
                .result
        );

        // A wrong Merkle root: refused unless the root is not checked.
        let mut bad_root = good.clone();
        bad_root.txs.push(b"an extra transaction".to_vec());
        let checked = mining
            .check_block(&bad_root.serialize(), &no_pow)
            .expect("check_block");
        assert_eq!(
            (checked.reason.as_str(), checked.result),
            ("bad-txnmrklroot", false)
        );
        let nothing = BlockCheckOptions {
            check_merkle_root: false,
            check_pow: false,
        };
        assert!(
            mining
                .check_block(&bad_root.serialize(), &nothing)
                .expect("check_block")
                .result
        );

        // Not on the tip, and not a block at all.
        let mut stale = good.clone();
        stale.header.prev = [9; 32];
        let checked = mining
            .check_block(&stale.serialize(), &all)
            .expect("check_block");
        assert_eq!(checked.reason, "inconclusive-not-best-prevblk");
        assert!(checked.debug.contains("builds on"), "{checked:?}");
        let checked = mining.check_block(b"garbage", &all).expect("check_block");
        assert_eq!(
            (checked.reason.as_str(), checked.result),
            ("bad-blk-format", false)
        );
        assert!(
            checked.debug.contains("shorter than a header"),
            "{checked:?}"
        );
        drop((template, mining));
        node.hang_up();
    })
}

#[test]
fn submitted_solutions_and_blocks_extend_the_chain() {
    guard(
        "submitted_solutions_and_blocks_extend_the_chain",
        BOUND,
        || {
            let node = Node::spawn();
            let mining = node.mining();
            let rpc = node.rpc();
            let tx = send_tx(&*rpc, 30, 4);
            let template = mining
                .create_new_block(&BlockCreateOptions::default(), true)
                .expect("create_new_block");
            let (coinbase, header) = solve(&*template);
            let output = template
                .submit_solution(header.version, header.time, header.nonce, &coinbase, true)
                .expect("submit_solution");
            assert_eq!(
                (output.reason.as_str(), output.debug.as_str(), output.result),
                ("", "", true)
            );
            let tip = mining.get_tip().expect("get_tip").expect("tip");
            assert_eq!((tip.height, tip.hash.clone()), (1, header.hash().to_vec()));
            assert_eq!(rpc_ok(&*rpc, "getblockcount", vec![]), Value::from(1));
            // The mined transaction left the mempool.
            assert_eq!(rpc_ok(&*rpc, "getrawmempool", vec![]), Value::Array(vec![]));
            assert_eq!(
                mining
                    .get_transactions_by_tx_id(&[block::txid(&tx).to_vec()])
                    .expect("by txid"),
                vec![Vec::<u8>::new()]
            );

            // The same solution again is a duplicate; the template is stale.
            let again = template
                .submit_solution(header.version, header.time, header.nonce, &coinbase, false)
                .expect("submit_solution");
            assert_eq!((again.reason.as_str(), again.result), ("duplicate", false));
            let (coinbase2, header2) = solve(&*template);
            let stale = template
                .submit_solution(
                    header2.version,
                    header2.time + 1,
                    header2.nonce,
                    &coinbase2,
                    false,
                )
                .expect("submit_solution");
            assert_eq!(
                (stale.reason.as_str(), stale.result),
                ("inconclusive-not-best-prevblk", false)
            );

            // The retired submitSolution is refused, as Bitcoin Core refuses it.
            match template.submit_solution_old7(
                header.version,
                header.time,
                header.nonce,
                &coinbase,
            ) {
                Err(Error::Failed(f)) => {
                    assert!(f.message.contains("no longer supported"), "{f:?}");
                    assert_eq!(
                        f.method.as_deref(),
                        Some("BlockTemplate.submitSolutionOld7")
                    );
                }
                other => panic!("submitSolutionOld7 answered {other:?}"),
            }

            // A whole block through submitBlock.
            let next = mining
                .create_new_block(&BlockCreateOptions::default(), true)
                .expect("create_new_block");
            let (coinbase, header) = solve(&*next);
            let block = Block {
                header,
                txs: vec![coinbase],
            };
            let output = mining
                .submit_block(&block.serialize(), false)
                .expect("submit_block");
            assert!(output.result, "{output:?}");
            assert_eq!(mining.get_tip().expect("get_tip").expect("tip").height, 2);
            let output = mining
                .submit_block(b"not a block", false)
                .expect("submit_block");
            assert_eq!(
                (output.reason.as_str(), output.result),
                ("bad-blk-format", false)
            );
            drop((template, next, mining, rpc));
            node.hang_up();
        },
    )
}

#[test]
fn transactions_are_found_by_txid_and_by_witness_id() {
    guard(
        "transactions_are_found_by_txid_and_by_witness_id",
        BOUND,
        || {
            let node = Node::spawn();
            let mining = node.mining();
            let rpc = node.rpc();
            let first = send_tx(&*rpc, 25, 10);
            let second = send_tx(&*rpc, 90, 20);
            let unknown = [0xee; 32].to_vec();

            let found = mining
                .get_transactions_by_tx_id(&[
                    block::txid(&second).to_vec(),
                    unknown.clone(),
                    block::txid(&first).to_vec(),
                ])
                .expect("by txid");
            assert_eq!(found, vec![second.clone(), Vec::new(), first.clone()]);
            let found = mining
                .get_transactions_by_witness_id(&[block::wtxid(&first).to_vec(), unknown])
                .expect("by wtxid");
            assert_eq!(found, vec![first.clone(), Vec::new()]);
            // A txid is not a wtxid.
            assert_eq!(
                mining
                    .get_transactions_by_witness_id(&[block::txid(&first).to_vec()])
                    .expect("by wtxid"),
                vec![Vec::<u8>::new()]
            );
            assert!(
                mining
                    .get_transactions_by_tx_id(&[])
                    .expect("none")
                    .is_empty()
            );
            match mining.get_transactions_by_tx_id(&[vec![1, 2, 3]]) {
                Err(Error::Failed(f)) => assert!(f.message.contains("3 bytes, not 32"), "{f:?}"),
                other => panic!("a 3-byte txid answered {other:?}"),
            }
            // The connection carries on after the refusal.
            assert_eq!(
                mining
                    .get_transactions_by_tx_id(&[block::txid(&first).to_vec()])
                    .expect("by txid"),
                vec![first]
            );
            drop((mining, rpc));
            node.hang_up();
        },
    )
}

/// What a miner's code sees of a node, whichever process it is in.
fn first_steps(mining: &dyn Mining) -> (bool, bool, i32, usize, usize) {
    let tip = mining.get_tip().expect("get_tip").expect("tip");
    let template = mining
        .create_new_block(&BlockCreateOptions::default(), true)
        .expect("create_new_block");
    let header = template.get_block_header().expect("header");
    let mined = mine(mining);
    (
        mining.is_test_chain().expect("is_test_chain"),
        mining.is_initial_block_download().expect("ibd"),
        mined.height - tip.height,
        header.len(),
        template.get_coinbase_merkle_path().expect("path").len(),
    )
}

#[test]
fn a_mock_node_in_this_process_and_one_in_a_child_look_the_same() {
    guard(
        "a_mock_node_in_this_process_and_one_in_a_child",
        BOUND,
        || {
            let local: Arc<dyn Mining> = MockNode::new().make_mining().expect("make_mining");
            let node = Node::spawn();
            let remote = node.mining();
            assert_eq!(first_steps(&*local), (true, false, 1, 80, 0));
            assert_eq!(first_steps(&*remote), first_steps(&*local));
            drop(remote);
            node.hang_up();
        },
    )
}
