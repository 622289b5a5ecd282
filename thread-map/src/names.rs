//! Thread names in libmultiprocess's style, so that logs from a Rust process
//! and a C++ process read alike: a client thread is `exe-pid/name-tid` (or
//! `exe-pid/tid` if it has no name), as libmultiprocess's `ThreadName`
//! writes it, and a server worker is `exe-pid/worker-N (from <client thread
//! name>)`.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::OnceLock;

use crate::sync::Arc;

use crate::sync::global::{AtomicU64, Ordering};

static EXE: OnceLock<String> = OnceLock::new();
static NEXT_WORKER: AtomicU64 = AtomicU64::new(1);

/// The most bytes of a client thread's name (`makeThread(name)`) a worker
/// keeps; a longer name is cut, on a character boundary. The name only
/// labels the worker (in its name, traces and dumps), and it comes from the
/// peer, which would otherwise decide how much memory each worker holds.
pub const MAX_THREAD_NAME: usize = 128;

/// The most bytes of a peer worker's name (`Thread.getName`, learned for
/// traces) this process keeps: a worker's full name carries its client's
/// name (up to [`MAX_THREAD_NAME`]) and a prefix.
pub const MAX_PEER_THREAD_NAME: usize = 2 * MAX_THREAD_NAME;

thread_local! {
    static DESCRIPTIVE: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The file name of the running executable.
pub fn exe_name() -> &'static str {
    EXE.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "process".to_string())
    })
}

/// The calling thread's descriptive name: the one a worker was given, or
/// `exe-pid/name-tid` (`exe-pid/tid` for a thread without a name) for any
/// other thread; the tid is the one `gettid`, `top` and gdb show.
pub fn current_thread_name() -> String {
    if let Some(name) = DESCRIPTIVE.with(|d| d.borrow().clone()) {
        return name.to_string();
    }
    let tid = multiprocess_event_loop::os_thread_id();
    let (exe, pid) = (exe_name(), std::process::id());
    match std::thread::current().name() {
        Some(name) => format!("{exe}-{pid}/{name}-{tid}"),
        None => format!("{exe}-{pid}/{tid}"),
    }
}

/// Sets the calling thread's descriptive name (worker threads), shared with
/// the worker's other holders.
pub(crate) fn set_current_thread_name(name: Arc<str>) {
    DESCRIPTIVE.with(|d| *d.borrow_mut() = Some(name));
}

/// A fresh worker name for a worker serving `client` (already cut to
/// [`MAX_THREAD_NAME`]): its descriptive name, stored once and shared by
/// every holder, and its OS name.
pub(crate) fn worker_name(client: &str) -> (Arc<str>, String) {
    let n = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
    let descriptive = format!(
        "{}-{}/worker-{n} (from {client})",
        exe_name(),
        std::process::id()
    );
    // The OS keeps 15 bytes of a thread name: keep the part that tells workers apart.
    let os_name = format!("mp-worker-{n}");
    (descriptive.into(), os_name)
}

/// The name of the peer thread on the other end of a `Thread` capability,
/// for tracing: the thread that sends a local thread its requests, or the
/// thread a local thread sends its requests to. Known from the start for a
/// worker (the client thread named in `makeThread`), learned with
/// `Thread.getName` for a peer's worker. Loop thread only; clones share it.
#[derive(Clone, Default)]
pub(crate) struct PeerName(Rc<RefCell<Option<Rc<str>>>>);

impl PeerName {
    /// A name known from the start.
    pub(crate) fn known(name: &str) -> Self {
        Self(Rc::new(RefCell::new(Some(name.into()))))
    }

    /// Records the name, once learned (from the peer: cut to
    /// [`MAX_PEER_THREAD_NAME`]).
    pub(crate) fn learn(&self, name: &str) {
        let name = multiprocess_event_loop::bounded::cut(name, MAX_PEER_THREAD_NAME);
        *self.0.borrow_mut() = Some(name.into());
    }
}

impl fmt::Display for PeerName {
    /// The name, or `?` while it is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0.borrow() {
            Some(name) => f.write_str(name),
            None => f.write_str("?"),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_client_thread_is_named_as_libmultiprocess_names_it() {
        let (name, tid) = std::thread::Builder::new()
            .name("namer".to_string())
            .spawn(|| {
                (
                    current_thread_name(),
                    multiprocess_event_loop::os_thread_id(),
                )
            })
            .expect("spawn")
            .join()
            .expect("join");
        let prefix = format!("{}-{}/", exe_name(), std::process::id());
        assert_eq!(name, format!("{prefix}namer-{tid}"));
    }
}
