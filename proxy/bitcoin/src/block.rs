//! The mock node's blocks and transactions: Bitcoin's shapes (an 80-byte
//! header, a coinbase first, a Merkle tree of transaction ids), with a
//! cheap stand-in for SHA-256d so that the mock needs no crypto crate.
//!
//! Nothing here is consensus-valid Bitcoin: it is plausible data with the
//! same structure, so that a miner's steps (build the coinbase, walk the
//! Merkle path, grind a nonce, submit) can be played against the mock node
//! and checked by it.
//!
//! # Examples
//!
//! ```
//! use multiprocess_proxy_bitcoin::block::{Block, Header, merkle_root, txid};
//!
//! let coinbase = b"coinbase of block 1".to_vec();
//! let mut block = Block {
//!     header: Header { prev: [0; 32], merkle_root: merkle_root(&[txid(&coinbase)]), ..Header::default() },
//!     txs: vec![coinbase],
//! };
//! block.solve();
//! assert!(block.header.meets_target());
//! assert_eq!(Block::parse(&block.serialize()), Ok(block));
//! ```

/// A 32-byte hash, in the byte order it travels in (as Bitcoin Core's
/// `uint256` does on the wire).
pub type Hash = [u8; 32];

/// The length of a serialized header.
pub const HEADER_LEN: usize = 80;

/// The `bits` of every mock block: regtest's easiest target.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// A block subsidy of 50 coins, in satoshis.
pub const SUBSIDY: i64 = 50 * 100_000_000;

/// The mock's stand-in for SHA-256d: 256 bits from four FNV-1a lanes with
/// distinct seeds, each finished with a SplitMix64 round. Deterministic and
/// well spread, not cryptographic.
pub fn hash(data: &[u8]) -> Hash {
    const SEEDS: [u64; 4] = [
        0xcbf2_9ce4_8422_2325,
        0x8422_2325_cbf2_9ce4,
        0x9e37_79b9_7f4a_7c15,
        0x7f4a_7c15_9e37_79b9,
    ];
    let mut out = [0; 32];
    for (lane, seed) in SEEDS.iter().enumerate() {
        let mut h = *seed ^ (data.len() as u64);
        for &byte in data {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        out[lane * 8..lane * 8 + 8].copy_from_slice(&h.to_le_bytes());
    }
    out
}

/// A transaction's id (what `getTransactionsByTxID` looks up).
pub fn txid(tx: &[u8]) -> Hash {
    let mut data = b"txid".to_vec();
    data.extend_from_slice(tx);
    hash(&data)
}

/// A transaction's witness id (what `getTransactionsByWitnessID` looks
/// up): distinct from its txid, as for a segwit transaction.
pub fn wtxid(tx: &[u8]) -> Hash {
    let mut data = b"wtxid".to_vec();
    data.extend_from_slice(tx);
    hash(&data)
}

fn hash_pair(left: &Hash, right: &Hash) -> Hash {
    let mut data = [0; 64];
    data[..32].copy_from_slice(left);
    data[32..].copy_from_slice(right);
    hash(&data)
}

/// The Merkle root of `txids`, built as Bitcoin builds it (pairs hashed
/// level by level, an odd last entry paired with itself). All zeros for
/// no transactions.
pub fn merkle_root(txids: &[Hash]) -> Hash {
    let Some(first) = txids.first() else {
        return [0; 32];
    };
    let mut level = txids.to_vec();
    if level.len() == 1 {
        return *first;
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    level[0]
}

/// The siblings on the path from the first transaction (the coinbase) to
/// the root: what `getCoinbaseMerklePath` returns, so that a miner who
/// changes the coinbase can recompute the root with [`root_from_path`].
pub fn coinbase_merkle_path(txids: &[Hash]) -> Vec<Hash> {
    let mut path = Vec::new();
    let mut level = txids.to_vec();
    while level.len() > 1 {
        path.push(*level.get(1).unwrap_or(&level[0]));
        level = level
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    path
}

/// The Merkle root from the coinbase's txid and its path.
pub fn root_from_path(coinbase_txid: &Hash, path: &[Hash]) -> Hash {
    path.iter()
        .fold(*coinbase_txid, |acc, sibling| hash_pair(&acc, sibling))
}

/// A block header, laid out as Bitcoin's (80 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The block version.
    pub version: u32,
    /// The hash of the previous block (all zeros for a first block).
    pub prev: Hash,
    /// The Merkle root of the block's transaction ids.
    pub merkle_root: Hash,
    /// The block time, in seconds since the epoch.
    pub time: u32,
    /// The compact target; always [`REGTEST_BITS`] in the mock.
    pub bits: u32,
    /// The nonce a miner grinds.
    pub nonce: u32,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            version: 0x2000_0000,
            prev: [0; 32],
            merkle_root: [0; 32],
            time: 1_700_000_000,
            bits: REGTEST_BITS,
            nonce: 0,
        }
    }
}

impl Header {
    /// The 80 bytes of the header.
    pub fn serialize(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev);
        out[36..68].copy_from_slice(&self.merkle_root);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Reads a header from exactly 80 bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; HEADER_LEN] = bytes.try_into().ok()?;
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut prev = [0; 32];
        prev.copy_from_slice(&bytes[4..36]);
        let mut merkle_root = [0; 32];
        merkle_root.copy_from_slice(&bytes[36..68]);
        Some(Self {
            version: u32_at(0),
            prev,
            merkle_root,
            time: u32_at(68),
            bits: u32_at(72),
            nonce: u32_at(76),
        })
    }

    /// The block hash: the hash of the serialized header.
    pub fn hash(&self) -> Hash {
        hash(&self.serialize())
    }

    /// Whether the hash meets the regtest target: its most significant
    /// byte (the last, in wire order) is below 0x80, about one nonce in two.
    pub fn meets_target(&self) -> bool {
        self.hash()[31] < 0x80
    }
}

/// A block: a header and its transactions, the coinbase first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, as opaque bytes; the first is the coinbase.
    pub txs: Vec<Vec<u8>>,
}

/// Why bytes are not a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a block: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

impl Block {
    /// The header, then a little-endian `u32` count of transactions, then
    /// each transaction as a little-endian `u32` length and its bytes.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = self.header.serialize().to_vec();
        out.extend_from_slice(&(self.txs.len() as u32).to_le_bytes());
        for tx in &self.txs {
            out.extend_from_slice(&(tx.len() as u32).to_le_bytes());
            out.extend_from_slice(tx);
        }
        out
    }

    /// Reads what [`serialize`](Self::serialize) wrote; any other bytes
    /// (from a peer) are a [`ParseError`], never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let header = bytes
            .get(..HEADER_LEN)
            .and_then(Header::parse)
            .ok_or_else(|| ParseError(format!("{} bytes, shorter than a header", bytes.len())))?;
        let mut rest = &bytes[HEADER_LEN..];
        let take_u32 = |rest: &mut &[u8]| -> Result<u32, ParseError> {
            let (head, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| ParseError("truncated length".into()))?;
            *rest = tail;
            Ok(u32::from_le_bytes(*head))
        };
        let count = take_u32(&mut rest)?;
        let mut txs = Vec::new();
        for i in 0..count {
            let len = take_u32(&mut rest)? as usize;
            if rest.len() < len {
                return Err(ParseError(format!("transaction {i} is truncated")));
            }
            let (tx, tail) = rest.split_at(len);
            txs.push(tx.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(ParseError(format!(
                "{} bytes after the last transaction",
                rest.len()
            )));
        }
        Ok(Self { header, txs })
    }

    /// The txids of the block's transactions, in order.
    pub fn txids(&self) -> Vec<Hash> {
        self.txs.iter().map(|tx| txid(tx)).collect()
    }

    /// Whether the header's Merkle root is the root of the transactions.
    pub fn merkle_root_matches(&self) -> bool {
        self.header.merkle_root == merkle_root(&self.txids())
    }

    /// Grinds the nonce from 0 until the header meets the target (about two
    /// tries on average; the loop ends, as a nonce space of 2^32 with one
    /// success in two is never exhausted in practice, and it stops at
    /// `u32::MAX` regardless).
    pub fn solve(&mut self) {
        self.header.nonce = 0;
        while !self.header.meets_target() && self.header.nonce < u32::MAX {
            self.header.nonce += 1;
        }
    }
}

/// Bitcoin's display form of a hash: hex, most significant byte first.
pub fn to_display_hex(hash: &[u8]) -> String {
    hash.iter().rev().map(|b| format!("{b:02x}")).collect()
}

/// Plain hex, in the order of the bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads plain hex; `None` for an odd length or a non-hex digit.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            if pair.len() != 2 || !pair.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()
        })
        .collect()
}

/// The coinbase the mock node puts in a template at `height`: a BIP34-like
/// height push, then the value it pays, then a tag.
pub fn coinbase_for(height: i32, value: i64) -> Vec<u8> {
    let mut tx = script_sig_prefix(height);
    tx.extend_from_slice(&value.to_le_bytes());
    tx.extend_from_slice(b"/mock-node/");
    tx
}

/// The start of the coinbase's scriptSig: the height, pushed as BIP34
/// wants (a length byte, then the height's little-endian bytes).
pub fn script_sig_prefix(height: i32) -> Vec<u8> {
    let bytes = height.to_le_bytes();
    let len = bytes.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
    let mut out = vec![len as u8];
    out.extend_from_slice(&bytes[..len]);
    out
}
