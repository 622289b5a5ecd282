//! Closures of a peer, recognised when they are passed back to it.
//!
//! A closure the peer passed us is an `Arc<dyn Fn>` that calls the peer's
//! capability. Passed back to that peer, it should be the peer's own
//! closure again, not a new capability of ours that forwards every call
//! through this process. An `Arc<dyn Fn>` cannot be asked what it is, so
//! this registry remembers, by the address of each such closure's
//! allocation, the capability it calls; the closure's captured
//! [`PeerClosureKey`] forgets it as the closure drops (before its memory is
//! freed, so an address is never mistaken for a later closure's).

use std::any::Any;
use std::collections::HashMap;

use multiprocess_event_loop::sync::global::{AtomicUsize, Ordering};
use multiprocess_event_loop::sync::{Arc, Mutex, OnceLock, Weak};

struct Entry {
    conn_id: u64,
    holder: Weak<dyn Any + Send + Sync>,
}

fn registry() -> &'static Mutex<HashMap<usize, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<usize, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Captured by a closure that calls a peer's capability: forgets the
/// closure's registration when the closure drops.
#[derive(Debug, Default)]
pub struct PeerClosureKey(AtomicUsize);

impl PeerClosureKey {
    /// Registers the closure at `address` (its `Arc`'s data pointer) as a
    /// caller of `holder`, a capability of connection `conn_id`.
    pub fn register(&self, address: usize, conn_id: u64, holder: Weak<dyn Any + Send + Sync>) {
        self.0.store(address, Ordering::Release);
        registry().lock().insert(address, Entry { conn_id, holder });
    }
}

impl Drop for PeerClosureKey {
    fn drop(&mut self) {
        let address = self.0.load(Ordering::Acquire);
        if address != 0 {
            registry().lock().remove(&address);
        }
    }
}

/// What the closure at `address` calls, if it is a closure of connection
/// `conn_id`'s peer that is still alive.
pub fn peer_closure(address: usize, conn_id: u64) -> Option<Arc<dyn Any + Send + Sync>> {
    let registry = registry().lock();
    let entry = registry.get(&address)?;
    if entry.conn_id != conn_id {
        return None;
    }
    entry.holder.upgrade()
}
