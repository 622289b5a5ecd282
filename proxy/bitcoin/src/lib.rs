//! Bitcoin Core's IPC interfaces in Rust, and a mock node that serves them.
//!
//! `schema/` holds schemas wire-identical to Bitcoin Core's
//! `src/ipc/capnp/{init,echo,rpc,common,mining}.capnp` (see each file's
//! header for the commit they match); `build.rs` generates the modules
//! [`init`], [`echo`], [`rpc`], [`common`] and [`mining`] from them: the
//! traits `Init`, `Echo`, `Rpc`, `Mining`, `BlockTemplate`, their clients
//! and servers, and the structs `BlockRef`, `BlockCreateOptions`,
//! `BlockWaitOptions`, `BlockCheckOptions`, `CoinbaseTx`.
//!
//! [`mock::MockNode`] implements them over a small in-memory chain
//! ([`block`]); the `mock-node` binary serves it to the process that spawns
//! it, as `bitcoin-node` serves a miner.
//!
//! # Where the Rust signatures differ from Bitcoin Core's C++
//!
//! - `BlockTemplate.waitNext` and `Mining.createNewBlock` return a null
//!   template in Bitcoin Core when they time out or are interrupted; the
//!   generated `Arc<dyn BlockTemplate>` cannot be null, so the mock node
//!   fails the call instead, and a Rust client of a real node would read
//!   the null capability as an error.
//! - `Mining.waitTipChanged` returns no tip in Bitcoin Core when
//!   interrupted (a `std::optional`, but the schema has no `hasResult`):
//!   an unset result, which reads as an empty `BlockRef`.
//! - `getTransactionsByTxID` becomes `get_transactions_by_tx_id` (a run of
//!   capitals is one word in the Rust names).
//!
//! # Examples
//!
//! A miner's round against a mock node in a child process:
//!
//! ```no_run
//! use multiprocess_proxy_bitcoin::init::Init;
//! use multiprocess_proxy_bitcoin::mining::BlockCreateOptions;
//! use std::process::Command;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut command = Command::new("mock-node");
//! let (_child, init) = multiprocess::spawn::<dyn Init>(&mut command)?;
//! let mining = init.make_mining()?;
//! let template = mining.create_new_block(&BlockCreateOptions::default(), true)?;
//! println!("{} fees", template.get_tx_fees()?.iter().sum::<i64>());
//! # Ok(())
//! # }
//! ```

multiprocess::include_proxies!();

pub mod block;
pub mod json;
pub mod mock;
