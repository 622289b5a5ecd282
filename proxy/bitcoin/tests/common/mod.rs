//! What the tests share: a mock node in a child process, its RPC control
//! channel, and a miner's round.

#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use mp_testkit::children::Registration;
use multiprocess_proxy_bitcoin::block::{self, Block, Header};
use multiprocess_proxy_bitcoin::common::BlockRef;
use multiprocess_proxy_bitcoin::init::Init;
use multiprocess_proxy_bitcoin::json::Value;
use multiprocess_proxy_bitcoin::mining::{
    BlockCreateOptions, BlockTemplate, Mining, SubmitSolutionOutput,
};
use multiprocess_proxy_bitcoin::rpc::Rpc;

/// The bound on every test (the watchdog prints every thread of both
/// processes and fails the test past it).
pub const BOUND: Duration = Duration::from_secs(60);

/// A `mock-node` child and our handle on its `Init`.
pub struct Node {
    child: Child,
    init: Option<Arc<dyn Init>>,
    _registration: Registration,
}

impl Node {
    /// A node whose chain holds its genesis block.
    pub fn spawn() -> Self {
        Self::spawn_with(&[])
    }

    /// A node with no chain yet (`-empty`).
    pub fn spawn_empty() -> Self {
        Self::spawn_with(&["-empty"])
    }

    fn spawn_with(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mock-node"));
        command.args(args);
        let (child, init) = multiprocess::spawn::<dyn Init>(&mut command).expect("spawn mock-node");
        let registration = mp_testkit::children::register(child.id(), "mock-node");
        Self {
            child,
            init: Some(init),
            _registration: registration,
        }
    }

    /// The node's `Init`.
    pub fn init(&self) -> &Arc<dyn Init> {
        self.init.as_ref().expect("init is there until hang_up")
    }

    /// A new `Mining` of the node.
    pub fn mining(&self) -> Arc<dyn Mining> {
        self.init().make_mining().expect("make_mining")
    }

    /// A new `Rpc` of the node.
    pub fn rpc(&self) -> Arc<dyn Rpc> {
        self.init().make_rpc().expect("make_rpc")
    }

    /// Drops our `Init` and waits for the child to exit, which it does
    /// when we hang up (so every handle must be dropped before).
    pub fn hang_up(mut self) {
        self.init = None;
        let status = self.child.wait().expect("wait for mock-node");
        assert!(status.success(), "mock-node exited with {status}");
    }
}

/// Runs a JSON-RPC call: its `result`, or its `error` object.
pub fn call_rpc(rpc: &dyn Rpc, method: &str, params: Vec<Value>) -> Result<Value, Value> {
    let request = Value::Object(vec![
        ("method".into(), Value::from(method)),
        ("params".into(), Value::Array(params)),
        ("id".into(), Value::from(7)),
    ]);
    let reply = rpc
        .execute_rpc(&request.to_string(), "/", "miner")
        .expect("executeRpc");
    let reply = Value::parse(&reply).expect("the reply is JSON");
    assert_eq!(reply.get("id"), Some(&Value::from(7)), "{reply}");
    match reply.get("error") {
        Some(Value::Null) | None => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
        Some(error) => Err(error.clone()),
    }
}

/// Runs a JSON-RPC call that must succeed.
pub fn rpc_ok(rpc: &dyn Rpc, method: &str, params: Vec<Value>) -> Value {
    call_rpc(rpc, method, params).unwrap_or_else(|e| panic!("{method} failed: {e}"))
}

/// Blocks until `count` threads wait in `waitTipChanged` (`"tip"`) or
/// `waitNext` (`"template"`) in the node: the node's condvar tells it, so
/// no one sleeps; it answers an error after a minute.
pub fn wait_for_waiters(rpc: &dyn Rpc, kind: &str, count: i64) {
    rpc_ok(
        rpc,
        "mockwaitforwaiters",
        vec![Value::from(kind), Value::from(count)],
    );
}

/// The node's `mockstate` report.
pub fn mock_state(rpc: &dyn Rpc) -> Value {
    rpc_ok(rpc, "mockstate", vec![])
}

/// Adds a transaction of `len` bytes (fee `100 * len`) to the mempool;
/// `seed` tells transactions of one length apart. Returns its bytes.
pub fn send_tx(rpc: &dyn Rpc, len: usize, seed: u8) -> Vec<u8> {
    let tx: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
    let txid = rpc_ok(
        rpc,
        "sendrawtransaction",
        vec![Value::from(block::to_hex(&tx))],
    );
    assert_eq!(
        txid.as_str(),
        Some(block::to_display_hex(&block::txid(&tx)).as_str())
    );
    tx
}

/// A miner's round on `template`: its own coinbase (the template's
/// height prefix and reward), the Merkle root from the coinbase path, a
/// nonce ground until the header meets the target. Returns the
/// coinbase, the header, and what `submitSolution` said.
pub fn solve_and_submit(template: &dyn BlockTemplate) -> (Vec<u8>, Header, SubmitSolutionOutput) {
    let (coinbase, header) = solve(template);
    let output = template
        .submit_solution(header.version, header.time, header.nonce, &coinbase, false)
        .expect("submit_solution");
    (coinbase, header, output)
}

/// The coinbase and solved header [`solve_and_submit`] submits.
pub fn solve(template: &dyn BlockTemplate) -> (Vec<u8>, Header) {
    let info = template.get_coinbase_tx().expect("get_coinbase_tx");
    let mut coinbase = info.script_sig_prefix.clone();
    coinbase.extend_from_slice(&info.block_reward_remaining.to_le_bytes());
    coinbase.extend_from_slice(b"/our pool/");
    let path: Vec<block::Hash> = template
        .get_coinbase_merkle_path()
        .expect("get_coinbase_merkle_path")
        .iter()
        .map(|h| h.as_slice().try_into().expect("32-byte path entries"))
        .collect();
    let header = template.get_block_header().expect("get_block_header");
    let mut header = Header::parse(&header).expect("an 80-byte header");
    header.merkle_root = block::root_from_path(&block::txid(&coinbase), &path);
    header.time += 1;
    let mut block = Block {
        header,
        txs: Vec::new(),
    };
    block.solve();
    assert!(block.header.meets_target());
    (coinbase, block.header)
}

/// Mines one block on the node's tip through `mining`: the new tip.
pub fn mine(mining: &dyn Mining) -> BlockRef {
    let template = mining
        .create_new_block(&BlockCreateOptions::default(), false)
        .expect("create_new_block");
    let (_, header, output) = solve_and_submit(&*template);
    assert!(output.result, "{output:?}");
    let tip = mining.get_tip().expect("get_tip").expect("a tip");
    assert_eq!(tip.hash, header.hash().to_vec());
    tip
}

/// Runs `f` on a new thread; its value arrives on the receiver.
pub fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    let (send, receive) = channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
}
