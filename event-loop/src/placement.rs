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
//! Three rules keep threads that work together close:
//!
//! - **Start near the creator.** A thread the runtime starts (an event loop,
//!   a worker) begins on the CPU of the thread that created it:
//!   [`start_near`] moves it there and then gives it back the affinity mask
//!   it inherited, so the kernel is free to move it later. On a machine
//!   with idle CPUs the kernel spreads the threads at once; on a busy one
//!   they stay with their partner. `MULTIPROCESS_START_NEAR=0` turns this
//!   off.
//! - **Wake near the waker.** A thread that really slept (a loop blocked in
//!   epoll, a Waiter blocked on its condition variable) and is woken by
//!   another thread of its process handing it work wakes on the waker's
//!   CPU: the waker narrows the sleeper's mask to its own CPU just before
//!   waking it, and the sleeper puts its mask back as soon as it runs
//!   ([`WakePlace`]). Spinning threads stay where they are, so
//!   whatever arrangement the threads wake into after an idle spell holds
//!   until the next one; left to itself, the kernel most often woke the
//!   two loops onto one CPU (a loop woken through a socket tends to follow
//!   the writer), the slow arrangement above. Following the waker instead
//!   keeps each process's threads together, and the loops apart. This
//!   packs threads, which pays only where CPUs are scarce: by default it
//!   is on when the process may use fewer than [`WAKE_NEAR_BELOW_CPUS`]
//!   CPUs, the four threads a call keeps busy; `MULTIPROCESS_WAKE_NEAR=1`
//!   or `=0` turns it on or off whatever the count.
//! - **Hand over.** When a loop thread gives work to a thread that is
//!   spinning on the loop's own CPU, the loop yields at once, so the work
//!   starts now instead of after the loop's next look at its sockets
//!   (`Waiter::post` and `Reply::send` use `CpuHint`).
//!
//! No rule pins a thread: no thread is ever left with a narrower affinity
//! mask than the one it had. Under loom there are no CPUs:
//! [`current_cpu`] is `None` and every rule does nothing.

use crate::sync::global::{AtomicUsize, Ordering};

/// The environment variable that turns [`start_near`] off when set to `0`.
pub const START_NEAR_ENV: &str = "MULTIPROCESS_START_NEAR";

/// The environment variable that turns waking near the waker on (`1`) or off (`0`)
/// whatever the CPU count.
pub const WAKE_NEAR_ENV: &str = "MULTIPROCESS_WAKE_NEAR";

/// Waking near the waker is on by default when the process may use fewer CPUs than
/// this: the threads one call keeps busy (application thread and loop,
/// loop and worker). With at least as many CPUs each can spin on its own.
pub const WAKE_NEAR_BELOW_CPUS: usize = 4;

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
    if start_near_enabled() {
        move_near(cpu);
    }
}

/// Whether a waker narrows a sleeper to its own CPU: as [`WAKE_NEAR_ENV`] says, or
/// else when the process may use fewer than [`WAKE_NEAR_BELOW_CPUS`] CPUs. Public for
/// code that must wait as the runtime does (and its tests).
#[cfg(not(loom))]
pub fn wake_near_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(
        || match std::env::var(WAKE_NEAR_ENV).as_deref().map(str::trim) {
            Ok("0") => false,
            Ok("1") => true,
            _ => crate::spin::max_spinners() < WAKE_NEAR_BELOW_CPUS,
        },
    )
}

/// Where a sleeping thread wakes: kept beside the `sleeping` flag of a loop's
/// mailbox or a Waiter, under the same lock.
///
/// The sleeper records its thread id and CPU as it goes to sleep. The first
/// thread to hand it work while it sleeps, if it runs on another CPU, narrows
/// the sleeper's affinity mask to its own CPU before waking it, so that the
/// kernel wakes it right there: a sleeping thread's mask changes without a
/// migration, where moving a running thread costs a trip through the
/// kernel's migration thread (about 24 µs on the project's VM, against 1 µs
/// for this). Once awake, the sleeper puts back the mask the waker found.
///
/// Public for code that must wait exactly as the runtime's threads do, such
/// as the benchmark floors (`stress`), whose sleeping threads must wake where
/// the runtime's would. Made with [`Default`] (nobody asleep), kept under the
/// lock the owner sleeps on: the owner calls [`going_to_sleep`] before it
/// sleeps and [`awake`] once woken (then [`Restore::apply`] with the lock let
/// go); a thread handing it work calls [`waking`] before it wakes it. Does
/// nothing unless waking near the waker is on (see [`WAKE_NEAR_ENV`]).
///
/// [`going_to_sleep`]: Self::going_to_sleep
/// [`awake`]: Self::awake
/// [`waking`]: Self::waking
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct WakePlace {
    /// While the owner sleeps: its thread id and the CPU it went to sleep on.
    asleep: Option<(libc::pid_t, Option<usize>)>,
    /// The owner's own mask, while a waker has narrowed it.
    narrowed: Option<libc::cpu_set_t>,
}

/// The mask a woken thread puts back, once it has let go of the lock: what
/// [`WakePlace::awake`] returns. Public with [`WakePlace`], for code that
/// must wait exactly as the runtime's threads do, such as the benchmark
/// floors.
#[cfg(not(loom))]
#[derive(Debug)]
#[must_use]
pub struct Restore(Option<libc::cpu_set_t>);

#[cfg(not(loom))]
impl WakePlace {
    /// The owning thread is about to sleep (lock held).
    pub fn going_to_sleep(&mut self) {
        if wake_near_enabled() {
            self.record_sleeper();
        }
    }

    /// Records the calling thread as the sleeper, whatever the setting.
    fn record_sleeper(&mut self) {
        self.asleep = Some((crate::os_tid(), current_cpu()));
    }

    /// A thread handing the owner work (lock held): if the owner sleeps on
    /// another CPU, narrows it to this thread's CPU, once, before the caller
    /// wakes it. Leaves the owner alone if its mask has only one CPU (pinned
    /// by its user) or does not allow this one.
    pub fn waking(&mut self) {
        let Some((tid, slept_on)) = self.asleep.take() else {
            return;
        };
        let Some(here) = current_cpu() else { return };
        if slept_on == Some(here) {
            return;
        }
        let Some(only_here) = only(here) else { return };
        // `tid` is a thread of this process that cannot exit before it
        // wakes: it sleeps under the lock our caller holds.
        let Some(own) = mask_of(tid) else { return };
        // SAFETY: `here` is below CPU_SETSIZE (`only` checked it); `own` is
        // a valid cpu_set_t.
        if !unsafe { libc::CPU_ISSET(here, &own) } || unsafe { libc::CPU_COUNT(&own) } < 2 {
            return;
        }
        // The sleeper is off every run queue: this only changes its mask.
        if set_mask(tid, &only_here) {
            self.narrowed = Some(own);
        }
    }

    /// The owning thread woke up (lock held): what to put back once the
    /// lock is released.
    pub fn awake(&mut self) -> Restore {
        self.asleep = None;
        Restore(self.narrowed.take())
    }
}

#[cfg(not(loom))]
impl Restore {
    /// Whether there is a mask to put back.
    pub fn is_needed(&self) -> bool {
        self.0.is_some()
    }

    /// Gives the woken thread back its own mask, if a waker narrowed it.
    pub fn apply(self) {
        if let Some(own) = self.0
            && !set_mask(0, &own)
        {
            warn(&format!(
                "could not restore a woken thread's CPU mask: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// Under loom there are no CPUs: nothing is recorded or moved.
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct WakePlace;

/// Under loom there is no mask to restore.
#[cfg(loom)]
#[derive(Debug)]
#[must_use]
pub struct Restore;

#[cfg(loom)]
impl WakePlace {
    /// Nothing to record.
    pub fn going_to_sleep(&mut self) {}
    /// Nothing to narrow.
    pub fn waking(&mut self) {}
    /// Nothing to put back.
    pub fn awake(&mut self) -> Restore {
        Restore
    }
}

#[cfg(loom)]
impl Restore {
    /// Never.
    pub fn is_needed(&self) -> bool {
        false
    }
    /// Does nothing.
    pub fn apply(self) {}
}

/// Moves the calling thread onto `cpu`, then restores the affinity mask it
/// had, so the kernel may move it again. Returns whether it moved.
///
/// Does nothing when `cpu` is `None`, when the mask does not allow `cpu`, or
/// when a system call fails: placement is a hint, never a requirement.
#[cfg(not(loom))]
fn move_near(cpu: Option<usize>) -> bool {
    let Some(cpu) = cpu else { return false };
    let Some(only_cpu) = only(cpu) else {
        return false;
    };
    let Some(inherited) = mask_of(0) else {
        return false;
    };
    // SAFETY: `cpu` is below CPU_SETSIZE (`only` checked it).
    // The first call migrates the thread onto `cpu` before it returns.
    if !unsafe { libc::CPU_ISSET(cpu, &inherited) } || !set_mask(0, &only_cpu) {
        return false;
    }
    if !set_mask(0, &inherited) {
        warn(&format!(
            "could not restore a thread's CPU mask, it stays on CPU {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    true
}

/// The CPU mask of thread `tid` (0: the calling thread).
#[cfg(not(loom))]
fn mask_of(tid: libc::pid_t) -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data, for which all zeroes is the empty set.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask` is a valid cpu_set_t of the size given.
    let got = unsafe { libc::sched_getaffinity(tid, std::mem::size_of_val(&mask), &mut mask) };
    (got == 0).then_some(mask)
}

/// Sets the CPU mask of thread `tid` (0: the calling thread); whether it
/// took.
#[cfg(not(loom))]
fn set_mask(tid: libc::pid_t, mask: &libc::cpu_set_t) -> bool {
    // SAFETY: `mask` is a valid cpu_set_t of the size given.
    unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(mask), mask) == 0 }
}

/// The mask of `cpu` alone, if `cpu` can be in a mask at all.
#[cfg(not(loom))]
fn only(cpu: usize) -> Option<libc::cpu_set_t> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return None;
    }
    // SAFETY: all zeroes is the empty set.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE, as CPU_SET needs.
    unsafe { libc::CPU_SET(cpu, &mut mask) };
    Some(mask)
}

/// Logs a placement problem. Placement runs on loop threads too, and a
/// subscriber that panics must not take a loop down with it.
#[cfg(not(loom))]
fn warn(message: &str) {
    crate::contain::caught(|| tracing::warn!(target: "multiprocess", "{message}"));
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
pub(crate) mod tests {
    use super::*;

    /// The calling thread's CPU mask, as a list.
    pub(crate) fn affinity() -> Vec<usize> {
        let set = mask_of(0).expect("the calling thread's mask");
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
    fn a_thread_moved_near_a_cpu_keeps_its_mask() {
        let inherited = affinity();
        for &target in &inherited {
            let after = std::thread::spawn(move || {
                assert!(move_near(Some(target)), "CPU {target} is in the mask");
                affinity()
            })
            .join()
            .expect("thread");
            assert_eq!(after, inherited, "move_near must never pin a thread");
        }
    }

    /// The calling thread's CPU mask as `/proc` shows it to another thread.
    fn proc_mask_list(tid: libc::pid_t) -> String {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
            .expect("read the thread's status")
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .map(|cpus| cpus.trim().to_string())
            .expect("Cpus_allowed_list")
    }

    #[test]
    fn a_waker_on_another_cpu_narrows_the_sleeper_and_the_sleeper_gets_its_mask_back() {
        // sync-facade: allow (a plain test of two real threads, outside any loom model)
        use std::sync::{Arc, Mutex, mpsc};
        let inherited = affinity();
        let own_list = proc_mask_list(crate::os_tid());
        let [first, second, ..] = inherited[..] else {
            // One CPU: nowhere else to wake, and `waking` never narrows.
            return;
        };
        // Every wait below is bounded: a lost message fails the test.
        const BOUND: std::time::Duration = std::time::Duration::from_secs(30);
        let place = Arc::new(Mutex::new(WakePlace::default()));
        let (asleep_tx, asleep_rx) = mpsc::channel();
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let sleeper = {
            let place = place.clone();
            std::thread::spawn(move || {
                // On `first`, with the whole mask.
                move_near(Some(first));
                let mut guard = place.lock().expect("lock");
                guard.record_sleeper();
                let slept_on = guard.asleep.and_then(|(_, cpu)| cpu);
                drop(guard);
                asleep_tx.send((crate::os_tid(), slept_on)).expect("send");
                wake_rx.recv_timeout(BOUND).expect("woken in time");
                place.lock().expect("lock").awake().apply();
                affinity()
            })
        };
        let (tid, slept_on) = asleep_rx
            .recv_timeout(BOUND)
            .expect("the sleeper is asleep in time");
        // The waker runs on `second` only: a test thread of its own.
        let narrowed_to = std::thread::spawn({
            let place = place.clone();
            move || {
                let only_second = only(second).expect("a CPU from a mask");
                assert!(set_mask(0, &only_second), "pin the waker");
                place.lock().expect("lock").waking();
                // A second waker finds the sleeper already claimed.
                place.lock().expect("lock").waking();
                proc_mask_list(tid)
            }
        })
        .join()
        .expect("waker");
        if slept_on == Some(second) {
            assert_eq!(
                narrowed_to, own_list,
                "a sleeper on the waker's CPU stays as it is"
            );
        } else {
            assert_eq!(
                narrowed_to,
                second.to_string(),
                "narrowed to the waker's CPU"
            );
        }
        wake_tx.send(()).expect("wake");
        let after = sleeper.join().expect("sleeper");
        assert_eq!(after, inherited, "the woken thread gets its own mask back");
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
