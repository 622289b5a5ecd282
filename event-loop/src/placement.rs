//! Which CPU the runtime's threads run on: where a new thread starts, and
//! handing the CPU straight to a thread that spins on it.
//!
//! A call goes through four threads in turn (application thread and loop,
//! loop and worker). When two threads that hand work to each other share a
//! CPU, each hand-off is a context switch on that CPU, and the data handed
//! over is still in its caches. When they are on different CPUs, each one
//! busy on its own, a hand-off costs nothing but a cache miss. Both work;
//! what does not is a mix in which the two loops share one CPU and every
//! message between the processes waits for a switch (measured on a two-CPU
//! machine: a call takes about 30% longer, see docs/design.md).
//!
//! Two rules keep threads that work together close:
//!
//! - **Start near the creator.** A thread the runtime starts (an event loop,
//!   a worker) begins on the CPU of the thread that created it:
//!   [`start_near`] moves it there and then gives it back the affinity mask
//!   it inherited, so the kernel is free to move it later. On a machine
//!   with idle CPUs the kernel spreads the threads at once; on a busy one
//!   they stay with their partner. `MULTIPROCESS_START_NEAR=0` turns this
//!   off.
//! - **Hand over.** When a loop thread gives work to a thread that is
//!   spinning on the loop's own CPU, the loop yields at once, so the work
//!   starts now instead of after the loop's next look at its sockets
//!   (`Waiter::post` and `Reply::send` use [`CpuHint`]).
//!
//! Neither rule pins a thread: no thread is ever left with a narrower
//! affinity mask than the one it was created with. Under loom there are no
//! CPUs: [`current_cpu`] is `None` and both rules do nothing.

use crate::sync::global::{AtomicUsize, Ordering};

/// The environment variable that turns [`start_near`] off when set to `0`.
pub const START_NEAR_ENV: &str = "MULTIPROCESS_START_NEAR";

/// The CPU the calling thread is running on, if the system says.
#[cfg(not(loom))]
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions; it returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// Under loom there are no CPUs.
#[cfg(loom)]
pub fn current_cpu() -> Option<usize> {
    None
}

/// Whether [`start_near`] moves new threads (not when
/// `MULTIPROCESS_START_NEAR=0`).
#[cfg(not(loom))]
fn start_near_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var(START_NEAR_ENV).map_or(true, |v| v.trim() != "0"))
}

/// Moves the calling thread, which has just started, onto `cpu` (the CPU its
/// creator ran on when it called [`current_cpu`]), then restores the
/// affinity mask the thread started with, so the kernel may move it again.
///
/// Does nothing when `cpu` is `None`, when the mask does not allow `cpu`, or
/// when a system call fails: placement is a hint, never a requirement.
#[cfg(not(loom))]
pub fn start_near(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    if !start_near_enabled() || cpu >= libc::CPU_SETSIZE as usize {
        return;
    }
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data, for which all zeroes is the empty set.
    let mut inherited: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `inherited` is a valid cpu_set_t of `size` bytes; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut inherited) } != 0 {
        return;
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), as CPU_ISSET needs.
    if !unsafe { libc::CPU_ISSET(cpu, &inherited) } {
        return;
    }
    // SAFETY: as above.
    let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut only) };
    // SAFETY: `only` is a valid cpu_set_t of `size` bytes. The call migrates
    // the thread onto `cpu` before it returns.
    if unsafe { libc::sched_setaffinity(0, size, &only) } != 0 {
        return;
    }
    // SAFETY: as above, for the mask the thread started with.
    if unsafe { libc::sched_setaffinity(0, size, &inherited) } != 0 {
        tracing::warn!(
            target: "multiprocess",
            "could not restore a new thread's CPU mask, it stays on CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Under loom there are no CPUs to start on.
#[cfg(loom)]
pub fn start_near(_cpu: Option<usize>) {}

/// The CPU a thread is spinning on, published for the threads that hand it
/// work: "no CPU" while it works or sleeps.
#[derive(Debug)]
pub(crate) struct CpuHint(AtomicUsize);

impl CpuHint {
    const NONE: usize = usize::MAX;

    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(Self::NONE))
    }

    /// The owning thread is about to yield while it spins.
    pub(crate) fn spinning(&self) {
        if let Some(cpu) = current_cpu() {
            self.0.store(cpu, Ordering::Relaxed);
        }
    }

    /// The owning thread stopped spinning (it has work, or it goes to sleep).
    pub(crate) fn stopped(&self) {
        self.0.store(Self::NONE, Ordering::Relaxed);
    }

    /// Whether the owning thread spins on the CPU the caller runs on. A hint
    /// only: either thread may have moved since.
    pub(crate) fn spins_here(&self) -> bool {
        let cpu = self.0.load(Ordering::Relaxed);
        cpu != Self::NONE && current_cpu() == Some(cpu)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn affinity() -> Vec<usize> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t of `size` bytes.
        assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0);
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: every index is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }

    #[test]
    fn a_thread_started_near_a_cpu_keeps_the_mask_it_inherited() {
        let inherited = affinity();
        let target = *inherited.last().expect("some CPU is allowed");
        let after = std::thread::spawn(move || {
            start_near(Some(target));
            affinity()
        })
        .join()
        .expect("thread");
        assert_eq!(after, inherited, "start_near must never pin a thread");
    }

    #[test]
    fn a_cpu_outside_the_mask_or_none_changes_nothing() {
        let inherited = affinity();
        std::thread::spawn(move || {
            start_near(None);
            start_near(Some(libc::CPU_SETSIZE as usize + 5));
            assert_eq!(affinity(), inherited);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_hint_names_the_cpu_only_while_its_thread_spins() {
        let hint = CpuHint::new();
        assert!(!hint.spins_here(), "a new hint names no CPU");
        hint.spinning();
        if current_cpu().is_some() {
            // The same thread asks at once; it may have been moved in
            // between only by a migration, which a retry rules out.
            let seen = (0..100).any(|_| {
                hint.spinning();
                hint.spins_here()
            });
            assert!(seen, "the spinning thread's own CPU is 'here' for it");
        }
        hint.stopped();
        assert!(!hint.spins_here(), "a stopped thread spins nowhere");
    }
}
