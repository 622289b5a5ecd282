//! Thread names in libmultiprocess's style, so that logs from a Rust process
//! and a C++ process read alike: a client thread is `exe-pid/name`, a server
//! worker is `exe-pid/worker-N (from <client thread name>)`.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::sync::global::{AtomicU64, Ordering};

static EXE: OnceLock<String> = OnceLock::new();
static NEXT_WORKER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static DESCRIPTIVE: RefCell<Option<String>> = const { RefCell::new(None) };
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
/// `exe-pid/<thread name or tid>` for any other thread.
pub fn current_thread_name() -> String {
    if let Some(name) = DESCRIPTIVE.with(|d| d.borrow().clone()) {
        return name;
    }
    let current = std::thread::current();
    let base = match current.name() {
        Some(name) => name.to_string(),
        None => multiprocess_event_loop::os_thread_id().to_string(),
    };
    format!("{}-{}/{}", exe_name(), std::process::id(), base)
}

/// Sets the calling thread's descriptive name (worker threads).
pub(crate) fn set_current_thread_name(name: String) {
    DESCRIPTIVE.with(|d| *d.borrow_mut() = Some(name));
}

/// A fresh worker name for a worker serving `client`.
pub(crate) fn worker_name(client: &str) -> (String, String) {
    let n = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
    let descriptive = format!(
        "{}-{}/worker-{n} (from {client})",
        exe_name(),
        std::process::id()
    );
    // The OS keeps 15 bytes of a thread name: keep the part that tells workers apart.
    let os_name = format!("mp-worker-{n}");
    (descriptive, os_name)
}
