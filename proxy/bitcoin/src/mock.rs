//! A mock Bitcoin node: `Init`, `Mining`, `BlockTemplate`, `Echo` and
//! `Rpc` implemented in Rust over a small in-memory chain and mempool.
//!
//! It behaves as a node does towards a miner, with the
//! [`block`] module's plausible stand-ins for real blocks:
//! the tip moves when a block or a solution is submitted, templates are
//! built from the mempool and replaced by `waitNext` when the tip changes
//! or the fees rise enough, and the waits (`waitTipChanged`, `waitNext`)
//! end on `interrupt` / `interruptWait`, as Bitcoin Core's do.
//!
//! Its `Rpc` doubles as the test's control channel (Bitcoin Core's RPC is
//! where a node reports such things): `sendrawtransaction` adds to the
//! mempool, `mockstate` reports which templates were dropped and on which
//! thread, and `mockwaitforwaiters` blocks until a given number of threads
//! wait in `waitTipChanged` or `waitNext`, so a test knows a waiter is
//! blocked before it wakes it, without sleeping.
//!
//! # Thread model
//!
//! One mutex guards the chain, the mempool and the wait flags; one condvar
//! is notified on every change and every waiter re-checks its own
//! condition. Across processes each method runs on the server worker
//! dedicated to the calling client thread, so a thread blocked in a wait
//! holds only its own worker: other client threads keep calling, and
//! `interrupt` / `interruptWait` (methods without a `Context`) run on a
//! pool thread of the serving process.
//!
//! # Examples
//!
//! In one process, the same objects serve as across processes:
//!
//! ```
//! use multiprocess_proxy_bitcoin::{init::Init, mock::MockNode};
//!
//! let node = MockNode::new();
//! let mining = node.make_mining().unwrap();
//! let tip = mining.get_tip().unwrap().expect("a node starts at its genesis block");
//! assert_eq!(tip.height, 0);
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use multiprocess::{Error, Result};

use crate::block::{self, Block, Hash, Header};
use crate::common::BlockRef;
use crate::echo::Echo;
use crate::init::Init;
use crate::json::Value;
use crate::mining::{
    BlockCheckOptions, BlockCreateOptions, BlockTemplate, BlockWaitOptions, CheckBlockOutput,
    CoinbaseTx, Mining, SubmitBlockOutput, SubmitSolutionOutput,
};
use crate::rpc::Rpc;

/// The most weight a block may have (Bitcoin's consensus limit).
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;

/// The most signature operations a block may count.
pub const MAX_BLOCK_SIGOPS: u64 = 80_000;

/// The fee the mock charges a transaction, per byte (a flat feerate: the
/// mock has no inputs to subtract outputs from).
pub const FEE_PER_BYTE: i64 = 100;

/// How long `mockwaitforwaiters` waits at most before it reports an error.
const WAITERS_BOUND: Duration = Duration::from_secs(60);

/// A mock node: serve it as `Init` (`multiprocess::serve_parent::<dyn
/// Init>(Arc::new(MockNode::new()))`) or call it in process.
pub struct MockNode {
    shared: Arc<Shared>,
}

impl Default for MockNode {
    fn default() -> Self {
        Self::new()
    }
}

impl MockNode {
    /// A node whose chain holds its genesis block (height 0).
    pub fn new() -> Self {
        let node = Self::empty();
        let mut genesis = Block {
            header: Header::default(),
            txs: vec![block::coinbase_for(0, block::SUBSIDY)],
        };
        genesis.header.merkle_root = block::merkle_root(&genesis.txids());
        genesis.solve();
        node.shared.lock().chain.push(genesis);
        node
    }

    /// A node that has loaded no chain yet: no tip, still in initial block
    /// download, until a first block (whose previous hash is all zeros) is
    /// submitted.
    pub fn empty() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
        }
    }
}

impl Init for MockNode {
    fn make_echo(&self) -> Result<Arc<dyn Echo>> {
        Ok(Arc::new(MockEcho))
    }

    fn make_mining_old2(&self) -> Result<()> {
        // What a current Bitcoin Core node answers too.
        Err(Error::failed(
            "makeMiningOld2 (@2) is no longer supported: call makeMining (@3)",
        ))
    }

    fn make_mining(&self) -> Result<Arc<dyn Mining>> {
        Ok(Arc::new(MockMining {
            shared: self.shared.clone(),
        }))
    }

    fn make_rpc(&self) -> Result<Arc<dyn Rpc>> {
        Ok(Arc::new(MockRpc {
            shared: self.shared.clone(),
        }))
    }
}

/// What every object of one node shares.
struct Shared {
    state: Mutex<State>,
    /// Notified on every change of `state`; each waiter re-checks its own
    /// condition.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The chain, by height.
    chain: Vec<Block>,
    /// Transactions not yet in a block, in arrival order.
    mempool: Vec<MempoolEntry>,
    /// `Mining.interrupt` was called and no `waitTipChanged` has seen it
    /// yet.
    interrupt_mining: bool,
    /// Templates whose `interruptWait` no `waitNext` has seen yet.
    interrupted_templates: HashSet<u64>,
    /// Threads in `waitTipChanged`.
    tip_waiters: usize,
    /// Threads in `waitNext`.
    template_waiters: usize,
    next_template_id: u64,
    templates_alive: usize,
    /// Each dropped template: its id and the thread that dropped it.
    templates_dropped: Vec<(u64, String)>,
}

struct MempoolEntry {
    tx: Vec<u8>,
    txid: Hash,
    wtxid: Hash,
    fee: i64,
    sigops: i64,
}

impl State {
    fn tip(&self) -> Option<BlockRef> {
        let height = self.chain.len().checked_sub(1)?;
        Some(BlockRef {
            hash: self.chain[height].header.hash().to_vec(),
            height: height as i32,
        })
    }

    fn tip_hash(&self) -> Hash {
        self.chain.last().map_or([0; 32], |b| b.header.hash())
    }

    /// The mempool entries a template built with `options` takes, within
    /// the block's weight and sigop budgets.
    fn select(&self, options: &BlockCreateOptions) -> Vec<&MempoolEntry> {
        if !options.use_mempool {
            return Vec::new();
        }
        let mut weight_left = MAX_BLOCK_WEIGHT.saturating_sub(options.block_reserved_weight);
        let mut sigops_left =
            MAX_BLOCK_SIGOPS.saturating_sub(options.coinbase_output_max_additional_sigops);
        let mut chosen = Vec::new();
        for entry in &self.mempool {
            let weight = 4 * entry.tx.len() as u64;
            let sigops = entry.sigops as u64;
            if weight <= weight_left && sigops <= sigops_left {
                weight_left -= weight;
                sigops_left -= sigops;
                chosen.push(entry);
            }
        }
        chosen
    }

    /// Checks `bytes` as a block on top of the tip: `Ok` or the (reason,
    /// debug) pair Bitcoin Core would give.
    fn validate(
        &self,
        bytes: &[u8],
        check_merkle_root: bool,
        check_pow: bool,
    ) -> std::result::Result<Block, (String, String)> {
        let block = Block::parse(bytes).map_err(|e| ("bad-blk-format".into(), e.to_string()))?;
        let height = self.chain.len() as i32;
        let Some(coinbase) = block.txs.first() else {
            return Err((
                "bad-cb-missing".into(),
                "the block has no transaction".into(),
            ));
        };
        if block.header.prev != self.tip_hash() {
            return Err((
                "inconclusive-not-best-prevblk".into(),
                format!(
                    "the block builds on {}, the tip is {}",
                    block::to_display_hex(&block.header.prev),
                    block::to_display_hex(&self.tip_hash())
                ),
            ));
        }
        if !coinbase.starts_with(&block::script_sig_prefix(height)) {
            return Err((
                "bad-cb-height".into(),
                format!("the coinbase does not start with height {height}"),
            ));
        }
        if block.header.bits != block::REGTEST_BITS {
            return Err((
                "bad-diffbits".into(),
                format!(
                    "bits {:#x}, expected {:#x}",
                    block.header.bits,
                    block::REGTEST_BITS
                ),
            ));
        }
        if check_merkle_root && !block.merkle_root_matches() {
            return Err(("bad-txnmrklroot".into(), "hashMerkleRoot mismatch".into()));
        }
        if check_pow && !block.header.meets_target() {
            return Err((
                "high-hash".into(),
                format!(
                    "proof of work failed: hash {}",
                    block::to_display_hex(&block.header.hash())
                ),
            ));
        }
        Ok(block)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on `changed` until `check` gives a value (`Some`) or
    /// `deadline` passes (`None`); `deadline` `None` waits for ever.
    fn wait_until<'a, T>(
        &self,
        mut state: MutexGuard<'a, State>,
        deadline: Option<Instant>,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> (MutexGuard<'a, State>, Option<T>) {
        loop {
            if let Some(value) = check(&mut state) {
                return (state, Some(value));
            }
            state = match deadline {
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return (state, None);
                    }
                    self.changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Accepts `bytes` as the next block if it is valid: what
    /// `submitBlock` and `submitSolution` share.
    fn submit(&self, bytes: &[u8]) -> (String, String, bool) {
        let mut state = self.lock();
        if let Ok(candidate) = Block::parse(bytes) {
            let hash = candidate.header.hash();
            if state.chain.iter().any(|b| b.header.hash() == hash) {
                return (
                    "duplicate".into(),
                    "the block is already in the chain".into(),
                    false,
                );
            }
        }
        match state.validate(bytes, true, true) {
            Ok(block) => {
                let mined: HashSet<Hash> = block.txids().into_iter().collect();
                state.mempool.retain(|entry| !mined.contains(&entry.txid));
                state.chain.push(block);
                drop(state);
                self.changed.notify_all();
                (String::new(), String::new(), true)
            }
            Err((reason, debug)) => (reason, debug, false),
        }
    }

    /// A new template on the current tip.
    fn new_template(
        self: &Arc<Self>,
        state: &mut State,
        options: &BlockCreateOptions,
    ) -> Result<MockTemplate> {
        let tip = state
            .chain
            .last()
            .ok_or_else(|| Error::failed("no tip: the node has not loaded a chain yet"))?;
        let height = state.chain.len() as i32;
        let prev = tip.header.hash();
        let time = tip.header.time.saturating_add(600);
        let chosen = state.select(options);
        let fees: Vec<i64> = chosen.iter().map(|e| e.fee).collect();
        let sigops: Vec<i64> = chosen.iter().map(|e| e.sigops).collect();
        let witness_ids: Vec<Hash> = chosen.iter().map(|e| e.wtxid).collect();
        let mut txs = vec![block::coinbase_for(
            height,
            block::SUBSIDY + fees.iter().sum::<i64>(),
        )];
        txs.extend(chosen.iter().map(|e| e.tx.clone()));
        let mut block = Block {
            header: Header {
                prev,
                time,
                ..Header::default()
            },
            txs,
        };
        block.header.merkle_root = block::merkle_root(&block.txids());
        let id = state.next_template_id;
        state.next_template_id += 1;
        state.templates_alive += 1;
        Ok(MockTemplate {
            shared: self.clone(),
            id,
            height,
            block,
            fees,
            sigops,
            witness_commitment: block::merkle_root(&witness_ids),
            options: options.clone(),
        })
    }
}

/// When a wait of `seconds` ends: `None` for never (the schema's default,
/// the largest double, or anything too large for an `Instant`), now for
/// zero, a negative number or NaN.
fn deadline_after(seconds: f64) -> Option<Instant> {
    let now = Instant::now();
    if seconds.is_nan() || seconds <= 0.0 {
        return Some(now);
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|d| now.checked_add(d))
}

fn hash_of(bytes: &[u8], what: &str) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| Error::failed(format!("{what} is {} bytes, not 32", bytes.len())))
}

/// The node's `Mining`.
struct MockMining {
    shared: Arc<Shared>,
}

impl Mining for MockMining {
    fn is_test_chain(&self) -> Result<bool> {
        // The mock mines at regtest's difficulty.
        Ok(true)
    }

    fn is_initial_block_download(&self) -> Result<bool> {
        Ok(self.shared.lock().chain.is_empty())
    }

    fn get_tip(&self) -> Result<Option<BlockRef>> {
        Ok(self.shared.lock().tip())
    }

    /// Returns the new tip once it differs from `current_tip`; the current
    /// tip when `timeout` (seconds) passes; an empty `BlockRef` (what
    /// Bitcoin Core's missing optional reads as) when interrupted.
    fn wait_tip_changed(&self, current_tip: &[u8], timeout: f64) -> Result<BlockRef> {
        let deadline = deadline_after(timeout);
        let mut state = self.shared.lock();
        state.tip_waiters += 1;
        self.shared.changed.notify_all();
        let (mut state, outcome) = self.shared.wait_until(state, deadline, |state| {
            if state.interrupt_mining {
                state.interrupt_mining = false;
                return Some(None);
            }
            state.tip().filter(|tip| tip.hash != current_tip).map(Some)
        });
        state.tip_waiters -= 1;
        Ok(match outcome {
            Some(Some(tip)) => tip,
            Some(None) => BlockRef::default(),
            None => state.tip().unwrap_or_default(),
        })
    }

    /// A template on the current tip. `cooldown` asks Bitcoin Core to wait
    /// while the node is still catching up; the mock's chain never lags
    /// behind a network, so there is nothing to wait for.
    fn create_new_block(
        &self,
        options: &BlockCreateOptions,
        _cooldown: bool,
    ) -> Result<Arc<dyn BlockTemplate>> {
        let mut state = self.shared.lock();
        Ok(Arc::new(self.shared.new_template(&mut state, options)?))
    }

    fn check_block(&self, block: &[u8], options: &BlockCheckOptions) -> Result<CheckBlockOutput> {
        let state = self.shared.lock();
        Ok(
            match state.validate(block, options.check_merkle_root, options.check_pow) {
                Ok(_) => CheckBlockOutput {
                    reason: String::new(),
                    debug: String::new(),
                    result: true,
                },
                Err((reason, debug)) => CheckBlockOutput {
                    reason,
                    debug,
                    result: false,
                },
            },
        )
    }

    fn interrupt(&self) -> Result<()> {
        self.shared.lock().interrupt_mining = true;
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Submits a whole block. `precious` makes Bitcoin Core prefer the
    /// block over a competitor of equal work; the mock's chain has no
    /// competitors, so it changes nothing.
    fn submit_block(&self, block: &[u8], _precious: bool) -> Result<SubmitBlockOutput> {
        let (reason, debug, result) = self.shared.submit(block);
        Ok(SubmitBlockOutput {
            reason,
            debug,
            result,
        })
    }

    /// The mempool's transactions with these txids; an empty entry for one
    /// the mempool does not hold.
    fn get_transactions_by_tx_id(&self, txids: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let state = self.shared.lock();
        txids
            .iter()
            .map(|id| {
                let id = hash_of(id, "a txid")?;
                Ok(state
                    .mempool
                    .iter()
                    .find(|e| e.txid == id)
                    .map(|e| e.tx.clone())
                    .unwrap_or_default())
            })
            .collect()
    }

    /// As [`get_transactions_by_tx_id`](Self::get_transactions_by_tx_id),
    /// by witness id.
    fn get_transactions_by_witness_id(&self, wtxids: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let state = self.shared.lock();
        wtxids
            .iter()
            .map(|id| {
                let id = hash_of(id, "a wtxid")?;
                Ok(state
                    .mempool
                    .iter()
                    .find(|e| e.wtxid == id)
                    .map(|e| e.tx.clone())
                    .unwrap_or_default())
            })
            .collect()
    }
}

/// A block template: a candidate block on the tip it was made on.
struct MockTemplate {
    shared: Arc<Shared>,
    id: u64,
    height: i32,
    block: Block,
    /// Per transaction but the coinbase.
    fees: Vec<i64>,
    /// Per transaction but the coinbase.
    sigops: Vec<i64>,
    witness_commitment: Hash,
    /// What `waitNext` builds its replacement with.
    options: BlockCreateOptions,
}

impl Drop for MockTemplate {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.templates_alive -= 1;
        state
            .templates_dropped
            .push((self.id, multiprocess::names::current_thread_name()));
        drop(state);
        self.shared.changed.notify_all();
    }
}

impl BlockTemplate for MockTemplate {
    fn get_block_header(&self) -> Result<Vec<u8>> {
        Ok(self.block.header.serialize().to_vec())
    }

    fn get_block(&self) -> Result<Vec<u8>> {
        Ok(self.block.serialize())
    }

    fn get_tx_fees(&self) -> Result<Vec<i64>> {
        Ok(self.fees.clone())
    }

    fn get_tx_sigops(&self) -> Result<Vec<i64>> {
        Ok(self.sigops.clone())
    }

    fn get_coinbase_tx(&self) -> Result<CoinbaseTx> {
        // The witness commitment output: OP_RETURN, a 36-byte push, the
        // BIP141 tag, then the commitment.
        let mut commitment = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        commitment.extend_from_slice(&self.witness_commitment);
        Ok(CoinbaseTx {
            version: 2,
            sequence: 0xffff_fffe,
            script_sig_prefix: block::script_sig_prefix(self.height),
            witness: vec![0; 32],
            block_reward_remaining: block::SUBSIDY + self.fees.iter().sum::<i64>(),
            required_outputs: vec![commitment],
            lock_time: (self.height - 1).max(0) as u32,
        })
    }

    fn get_coinbase_merkle_path(&self) -> Result<Vec<Vec<u8>>> {
        Ok(block::coinbase_merkle_path(&self.block.txids())
            .into_iter()
            .map(|h| h.to_vec())
            .collect())
    }

    fn submit_solution_old7(&self, _: u32, _: u32, _: u32, _: &[u8]) -> Result<bool> {
        // What a current Bitcoin Core node answers too.
        Err(Error::failed(
            "submitSolutionOld7 (@7) is no longer supported: call submitSolution (@10)",
        ))
    }

    /// Waits until the tip moves or the mempool's fees would raise this
    /// template's by `options.fee_threshold`, then returns a template on
    /// the current tip; fails when `options.timeout` (seconds) passes or
    /// `interruptWait` is called (where Bitcoin Core returns a null
    /// template, which the generated Rust signature cannot carry).
    fn wait_next(&self, options: &BlockWaitOptions) -> Result<Arc<dyn BlockTemplate>> {
        let deadline = deadline_after(options.timeout);
        let my_fees: i64 = self.fees.iter().sum();
        let mut state = self.shared.lock();
        state.template_waiters += 1;
        self.shared.changed.notify_all();
        let (mut state, outcome) = self.shared.wait_until(state, deadline, |state| {
            if state.interrupted_templates.remove(&self.id) {
                return Some(false);
            }
            if state.tip_hash() != self.block.header.prev {
                return Some(true);
            }
            let fees: i64 = state.select(&self.options).iter().map(|e| e.fee).sum();
            (fees.saturating_sub(my_fees) >= options.fee_threshold).then_some(true)
        });
        state.template_waiters -= 1;
        match outcome {
            Some(true) => Ok(Arc::new(
                self.shared.new_template(&mut state, &self.options)?,
            )),
            Some(false) => Err(Error::failed("waitNext was interrupted (interruptWait)")),
            None => Err(Error::failed(format!(
                "waitNext timed out after {}s with no new template",
                options.timeout
            ))),
        }
    }

    fn interrupt_wait(&self) -> Result<()> {
        self.shared.lock().interrupted_templates.insert(self.id);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Submits the template's block with the miner's coinbase, version,
    /// time and nonce (the Merkle root recomputed). `precious` changes
    /// nothing (see `submitBlock`).
    fn submit_solution(
        &self,
        version: u32,
        timestamp: u32,
        nonce: u32,
        coinbase: &[u8],
        _precious: bool,
    ) -> Result<SubmitSolutionOutput> {
        let mut block = self.block.clone();
        block.txs[0] = coinbase.to_vec();
        block.header.version = version;
        block.header.time = timestamp;
        block.header.nonce = nonce;
        block.header.merkle_root = block::merkle_root(&block.txids());
        let (reason, debug, result) = self.shared.submit(&block.serialize());
        Ok(SubmitSolutionOutput {
            reason,
            debug,
            result,
        })
    }
}

/// The node's `Echo`.
struct MockEcho;

impl Echo for MockEcho {
    fn echo(&self, echo: &str) -> Result<String> {
        Ok(echo.to_string())
    }
}

/// The node's `Rpc`: a few of Bitcoin Core's JSON-RPC methods, and the
/// mock's own (`mock*`) for tests.
struct MockRpc {
    shared: Arc<Shared>,
}

/// A JSON-RPC failure: Bitcoin Core's code and message.
struct RpcError(i64, String);

impl Rpc for MockRpc {
    /// Runs a JSON-RPC 1.0 request (`{"method", "params", "id"}`) and
    /// answers `{"result", "error", "id"}`, as Bitcoin Core's HTTP server
    /// would; a malformed request is an error reply, not a failed call.
    fn execute_rpc(&self, request: &str, uri: &str, user: &str) -> Result<String> {
        let (id, answer) = match Value::parse(request) {
            Err(e) => (
                Value::Null,
                Err(RpcError(-32700, format!("Parse error: {e}"))),
            ),
            Ok(request) => {
                let id = request.get("id").cloned().unwrap_or(Value::Null);
                let method = request.get("method").and_then(Value::as_str).unwrap_or("");
                let params = request
                    .get("params")
                    .and_then(Value::as_array)
                    .unwrap_or(&[]);
                (id, self.dispatch(method, params, uri, user))
            }
        };
        let (result, error) = match answer {
            Ok(result) => (result, Value::Null),
            Err(RpcError(code, message)) => (
                Value::Null,
                Value::Object(vec![
                    ("code".into(), Value::from(code)),
                    ("message".into(), Value::from(message)),
                ]),
            ),
        };
        Ok(Value::Object(vec![
            ("result".into(), result),
            ("error".into(), error),
            ("id".into(), id),
        ])
        .to_string())
    }
}

impl MockRpc {
    fn dispatch(
        &self,
        method: &str,
        params: &[Value],
        uri: &str,
        user: &str,
    ) -> std::result::Result<Value, RpcError> {
        let string_param = |i: usize| {
            params
                .get(i)
                .and_then(Value::as_str)
                .ok_or_else(|| RpcError(-8, format!("{method}: parameter {i} must be a string")))
        };
        match method {
            "getblockcount" => Ok(Value::from(self.shared.lock().chain.len() as i64 - 1)),
            "getbestblockhash" => self
                .shared
                .lock()
                .tip()
                .map(|tip| Value::from(block::to_display_hex(&tip.hash)))
                .ok_or_else(|| RpcError(-1, "no chain loaded".into())),
            "sendrawtransaction" => {
                let tx = block::from_hex(string_param(0)?)
                    .filter(|tx| !tx.is_empty())
                    .ok_or_else(|| RpcError(-22, "TX decode failed".into()))?;
                let txid = block::txid(&tx);
                let mut state = self.shared.lock();
                if state.mempool.iter().any(|e| e.txid == txid) {
                    return Err(RpcError(-27, "txn-already-in-mempool".into()));
                }
                state.mempool.push(MempoolEntry {
                    fee: FEE_PER_BYTE * tx.len() as i64,
                    sigops: 1 + tx.len() as i64 / 50,
                    wtxid: block::wtxid(&tx),
                    tx,
                    txid,
                });
                drop(state);
                self.shared.changed.notify_all();
                Ok(Value::from(block::to_display_hex(&txid)))
            }
            "getrawmempool" => Ok(Value::Array(
                self.shared
                    .lock()
                    .mempool
                    .iter()
                    .map(|e| Value::from(block::to_display_hex(&e.txid)))
                    .collect(),
            )),
            "mockstate" => {
                let state = self.shared.lock();
                let dropped = state
                    .templates_dropped
                    .iter()
                    .map(|(id, thread)| {
                        Value::Object(vec![
                            ("id".into(), Value::from(*id as i64)),
                            ("thread".into(), Value::from(thread.as_str())),
                        ])
                    })
                    .collect();
                Ok(Value::Object(vec![
                    (
                        "thread".into(),
                        Value::from(multiprocess::names::current_thread_name()),
                    ),
                    ("uri".into(), Value::from(uri)),
                    ("user".into(), Value::from(user)),
                    ("tip_waiters".into(), Value::from(state.tip_waiters as i64)),
                    (
                        "template_waiters".into(),
                        Value::from(state.template_waiters as i64),
                    ),
                    (
                        "templates_alive".into(),
                        Value::from(state.templates_alive as i64),
                    ),
                    ("templates_dropped".into(), Value::Array(dropped)),
                ]))
            }
            "mockwaitforwaiters" => {
                let kind = string_param(0)?;
                let count = params.get(1).and_then(Value::as_f64).ok_or_else(|| {
                    RpcError(
                        -8,
                        "mockwaitforwaiters: parameter 1 must be a number".into(),
                    )
                })? as usize;
                let tip = match kind {
                    "tip" => true,
                    "template" => false,
                    other => {
                        return Err(RpcError(
                            -8,
                            format!(
                                "mockwaitforwaiters: no waiters of kind {other:?} (tip, template)"
                            ),
                        ));
                    }
                };
                let state = self.shared.lock();
                let (_state, reached) =
                    self.shared
                        .wait_until(state, Some(Instant::now() + WAITERS_BOUND), |state| {
                            let waiting = if tip {
                                state.tip_waiters
                            } else {
                                state.template_waiters
                            };
                            (waiting >= count).then_some(())
                        });
                reached.map(|()| Value::Bool(true)).ok_or_else(|| {
                    RpcError(
                        -1,
                        format!("fewer than {count} {kind} waiters after {WAITERS_BOUND:?}"),
                    )
                })
            }
            other => Err(RpcError(-32601, format!("Method not found: {other}"))),
        }
    }
}
