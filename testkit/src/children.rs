//! The child processes this process has spawned and not yet reaped, each
//! with a label, so that a watchdog that fires can dump their threads as
//! well as ours ([`dump_all`](crate::watchdog::dump_all)): in a two-process
//! test the stuck thread is as often in the child.
//!
//! Spawning code calls [`register`] right after the spawn and keeps the
//! [`Registration`] until it has reaped the child; dropping it unregisters
//! the child. [`Peer::child`](crate::peer::Peer::child) does this for you.
//!
//! Once a child is reaped its pid may be reused by an unrelated process, and
//! a registration may outlive the reaping by a moment (or, by mistake, for
//! good). [`live`] therefore lists only registered pids that still name a
//! process whose parent is this one.

use parking_lot::Mutex;

/// The registered children, in order of registration; `next_id` tells
/// registrations of the same pid apart.
struct Registry {
    next_id: u64,
    entries: Vec<Entry>,
}

struct Entry {
    id: u64,
    child: ChildInfo,
}

static REGISTRY: Mutex<Registry> = parking_lot::const_mutex(Registry {
    next_id: 0,
    entries: Vec::new(),
});

/// A child process as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// Its process id.
    pub pid: u32,
    /// What it is, for the dump (`mp-child`, say).
    pub label: String,
}

/// A child in the registry: dropping it unregisters the child. Keep it until
/// the child is reaped.
#[derive(Debug)]
#[must_use = "dropping the registration unregisters the child at once"]
pub struct Registration {
    id: u64,
    pid: u32,
}

impl Registration {
    /// The registered child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        REGISTRY.lock().entries.retain(|entry| entry.id != self.id);
    }
}

/// Registers child `pid` (spawned by this process) under `label`, until the
/// returned [`Registration`] is dropped.
pub fn register(pid: u32, label: impl Into<String>) -> Registration {
    let mut registry = REGISTRY.lock();
    let id = registry.next_id;
    registry.next_id += 1;
    registry.entries.push(Entry {
        id,
        child: ChildInfo {
            pid,
            label: label.into(),
        },
    });
    Registration { id, pid }
}

/// Every registered child, whether or not it still runs.
pub fn registered() -> Vec<ChildInfo> {
    REGISTRY
        .lock()
        .entries
        .iter()
        .map(|entry| entry.child.clone())
        .collect()
}

/// The registered children that still exist as children of this process
/// (running, or exited and not yet reaped), each pid once.
pub fn live() -> Vec<ChildInfo> {
    let ours = std::process::id();
    let mut children = registered();
    let mut seen = Vec::new();
    children.retain(|child| {
        let keep = !seen.contains(&child.pid) && parent_of(child.pid) == Some(ours);
        seen.push(child.pid);
        keep
    });
    children
}

/// The parent of process `pid`, from `/proc/PID/stat`; `None` if there is
/// no such process (or `/proc` cannot be read).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses, but
    // the last `)` ends it.
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_lasts_until_dropped() {
        // Not a child of ours: registered, but not live.
        let registration = register(1, "init, for the test");
        let entry = ChildInfo {
            pid: 1,
            label: "init, for the test".into(),
        };
        assert!(registered().contains(&entry));
        assert!(!live().iter().any(|child| child.pid == 1));
        drop(registration);
        assert!(!registered().contains(&entry));
    }

    #[test]
    fn our_parent_is_read_from_proc() {
        let ours = std::process::id();
        assert_eq!(parent_of(ours), Some(std::os::unix::process::parent_id()));
        assert_eq!(parent_of(u32::MAX), None);
    }
}
