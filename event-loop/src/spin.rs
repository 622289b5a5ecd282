//! Spinning before sleeping: a thread with nothing to do yields the CPU for a
//! short while before it blocks, so that work arriving within that while
//! costs no sleep and no wake-up.
//!
//! A reply or request usually comes within tens of microseconds. Blocking on
//! a futex or in `epoll_wait` and being woken costs two system calls and,
//! worse, on a virtual machine an idle virtual CPU must be woken by the host,
//! which can take tens of microseconds more. Yielding (not busy spinning)
//! leaves the CPU to any other runnable thread, so spinning takes time only
//! from an otherwise idle core.
//!
//! Two limits keep the cost down: each spell lasts at most the budget
//! (`MULTIPROCESS_WAIT_SPIN_US`, default [`DEFAULT_SPIN_US`] microseconds,
//! 0 to never spin), and a process spins on at most [`max_spinners`]
//! threads at once. The event loop comes first: every hand-off goes through
//! it, so it always may spin, and a waiting application or worker thread
//! spins only while a place is left; otherwise it sleeps at once. Under loom
//! nothing spins.

use std::time::{Duration, Instant};

use crate::sync::global::{AtomicUsize, Ordering};

/// The default spinning budget, in microseconds: about one round trip of a
/// call on a loaded machine.
pub const DEFAULT_SPIN_US: u64 = 100;

/// The environment variable that overrides [`DEFAULT_SPIN_US`].
pub const SPIN_ENV: &str = "MULTIPROCESS_WAIT_SPIN_US";

/// The environment variable that chooses when a thread spins:
/// `adaptive` (the default) or `always`.
///
/// - `always`: every wait spins first, for up to the budget.
/// - `adaptive`: a wait spins unless the thread's last two waits of the
///   same kind both ran past the budget, that is, unless spinning would
///   have caught neither. While calls keep coming, every wait is short and
///   every wait spins, as with `always` (one wait stretched by a
///   preemption changes nothing); once they stop coming, each kind spins
///   for nothing twice, and from then on the threads sleep at once, so
///   calls that come a millisecond apart cost no spinning in between. A
///   short wait (one a sleeping thread was woken from within the budget)
///   arms spinning again.
///
/// The kinds are: a thread waiting for a reply; a worker waiting for its
/// next request; an event loop waiting while it expects something soon (a
/// reply to a call it sent, a worker's answer to a request it handed
/// over); an event loop waiting with nothing expected.
pub const SPIN_POLICY_ENV: &str = "MULTIPROCESS_SPIN_POLICY";

/// Whether the adaptive policy is in force (see [`SPIN_POLICY_ENV`]).
#[cfg(not(loom))]
fn adaptive() -> bool {
    static ADAPTIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ADAPTIVE.get_or_init(|| {
        std::env::var(SPIN_POLICY_ENV).map_or(true, |policy| policy.trim() != "always")
    })
}

#[cfg(loom)]
fn adaptive() -> bool {
    true
}

/// What one thread remembers of its waits of one kind: how many in a row
/// have run past the budget. A kind stays armed until `LONG_WAITS` (two) do,
/// so one wait stretched by a preemption or a page fault, among calls that
/// keep coming, does not make the next one sleep. Starts armed. Owned by
/// the waiting thread (a thread-local, or the loop's own state).
///
/// Public for code that must wait exactly as the runtime's threads do, such
/// as the benchmark floors (`stress`): one `History` per kind of wait, passed
/// to [`Spin::begin`] and [`Spin::end`].
#[derive(Debug)]
pub struct History(std::cell::Cell<u8>);

/// Waits of one kind that must run past the budget in a row before that
/// kind stops spinning.
const LONG_WAITS: u8 = 2;

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// A history whose next wait may spin.
    pub const fn new() -> Self {
        Self(std::cell::Cell::new(0))
    }

    /// Whether the next wait of this kind may spin.
    fn armed(&self) -> bool {
        self.0.get() < LONG_WAITS
    }

    /// Records how a wait of this kind ended.
    fn record(&self, short: bool) {
        let long = if short {
            0
        } else {
            self.0.get().saturating_add(1)
        };
        self.0.set(long);
    }
}

/// How long one spell of spinning may last.
#[cfg(not(loom))]
fn budget() -> Duration {
    static BUDGET: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let micros = std::env::var(SPIN_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SPIN_US);
        Duration::from_micros(micros)
    })
}

#[cfg(loom)]
fn budget() -> Duration {
    Duration::ZERO
}

/// How many threads of this process may spin at once: as many as there are
/// CPUs. Then a call between two processes on a two-CPU machine can have all
/// four threads it goes through (application thread and loop, loop and
/// worker) spinning and none to wake, while a process with many waiting
/// threads keeps most of them asleep.
#[cfg(not(loom))]
pub fn max_spinners() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    })
}

/// Under loom nothing spins.
#[cfg(loom)]
pub fn max_spinners() -> usize {
    0
}

/// The threads of this process spinning right now.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// One thread's spell of spinning: [`Spin::again`] says whether to yield once
/// more or go to sleep.
///
/// Public for code that must wait exactly as the runtime's threads do, such
/// as the benchmark floors (`stress`): the same budget, places and adaptive
/// policy, from the same variables. A wait goes
/// [`begin`](Self::begin), then [`again`](Self::again) before each look that
/// found nothing (yield if true, sleep if false), then [`end`](Self::end)
/// once what it waited for came; [`reset`](Self::reset) gives the place back
/// without ending the wait (after a sleep). Dropping a spell gives its place
/// back. The places are this process's, shared with the runtime's threads.
#[derive(Debug)]
pub struct Spin {
    /// Whether this spell may spin when [`max_spinners`] threads already do
    /// (the event loop's).
    first: bool,
    /// When the budget runs out; `None` before the first `again`.
    deadline: Option<Instant>,
    /// Whether this spell holds one of the places.
    counted: bool,
    /// A spell of a thread that never spins ([`Spin::never`]).
    pub(crate) never: bool,
    /// Whether this wait may spin, from its kind's [`History`] (the
    /// adaptive policy); set by [`begin`](Self::begin).
    armed: bool,
    /// When the thread found it had nothing to do: the first `again` since
    /// `begin`.
    idle_since: Option<Instant>,
    /// The places it counts in: the process's (a test's own, in tests).
    places: &'static AtomicUsize,
}

impl Spin {
    /// The event loop's spell: it always gets a place.
    pub fn for_loop() -> Self {
        Self::new(true)
    }

    /// A waiting thread's spell: it spins only if it gets one of the
    /// [`max_spinners`] places.
    pub fn for_waiter() -> Self {
        Self::new(false)
    }

    /// A spell that never spins: [`again`](Self::again) is always false.
    pub(crate) fn never() -> Self {
        Self {
            never: true,
            ..Self::new(false)
        }
    }

    fn new(first: bool) -> Self {
        Self {
            first,
            never: false,
            deadline: None,
            counted: false,
            armed: true,
            idle_since: None,
            places: &SPINNERS,
        }
    }

    /// This spell, counting in `places` instead of the process's: tests of
    /// the places must not share them with the other tests' threads.
    #[cfg(test)]
    fn counting_in(mut self, places: &'static AtomicUsize) -> Self {
        self.places = places;
        self
    }

    /// Starts a wait of the kind `history` keeps: under the adaptive
    /// policy, it spins unless the last waits of that kind ran long.
    pub fn begin(&mut self, history: &History) {
        self.reset();
        self.armed = !adaptive() || history.armed();
        self.idle_since = None;
    }

    /// The wait is over (work came): records in `history` whether it was
    /// short enough for spinning to catch. A wait that found work at once
    /// (no `again` since `begin`) counts as short.
    pub fn end(&mut self, history: &History) {
        let short = self
            .idle_since
            .take()
            .is_none_or(|since| since.elapsed() <= budget());
        history.record(short);
        self.reset();
    }

    /// Whether to yield once more rather than sleep. The clock starts at the
    /// first call after `new` or `reset`, so time spent working does not
    /// count.
    pub fn again(&mut self) -> bool {
        let budget = budget();
        if budget.is_zero() || self.never {
            return false;
        }
        let now = Instant::now();
        if self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        if !self.armed {
            return false;
        }
        let deadline = match self.deadline {
            Some(deadline) => deadline,
            None => {
                self.counted =
                    self.places.fetch_add(1, Ordering::Relaxed) < max_spinners() || self.first;
                if !self.counted {
                    self.places.fetch_sub(1, Ordering::Relaxed);
                    self.deadline = Some(now);
                    return false;
                }
                *self.deadline.insert(now + budget)
            }
        };
        if now < deadline {
            return true;
        }
        self.give_back();
        false
    }

    /// Starts a new spell (after work, or after sleeping).
    pub fn reset(&mut self) {
        self.give_back();
        self.deadline = None;
    }

    fn give_back(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.places.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// Gives the CPU to another runnable thread, if there is one.
pub(crate) fn yield_now() {
    crate::sync::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The adaptive rule, without spinning (an unarmed spell takes no
    /// place, so this cannot disturb the test of the places below).
    #[test]
    fn a_wait_spins_unless_the_last_of_its_kind_ran_long() {
        if budget().is_zero() || !adaptive() {
            eprintln!("spinning off or not adaptive: nothing to check");
            return;
        }
        let history = History::new();
        assert!(history.armed(), "a kind starts armed");
        let long_wait = |history: &History| {
            let mut spell = Spin::for_waiter();
            spell.begin(history);
            spell.idle_since = Some(Instant::now() - budget() * 2);
            spell.end(history);
        };

        // One wait past the budget is not enough to disarm its kind...
        long_wait(&history);
        assert!(history.armed(), "one long wait disarmed");
        // ...two in a row are.
        long_wait(&history);
        assert!(!history.armed());

        // So the next wait of that kind sleeps at once, taking no place.
        let mut next = Spin::for_waiter();
        next.begin(&history);
        assert!(!next.again(), "a disarmed wait does not spin");
        assert!(!next.counted);
        // It was woken at once: short, so the kind is armed again.
        next.end(&history);
        assert!(history.armed());

        // A short wait between long ones starts the count again.
        long_wait(&history);
        let mut short = Spin::for_waiter();
        short.begin(&history);
        short.end(&history);
        long_wait(&history);
        assert!(history.armed(), "long, short, long disarmed");

        // Work found before looking idle at all counts as short too.
        let other = History::new();
        let mut busy = Spin::for_loop();
        busy.begin(&other);
        busy.end(&other);
        assert!(other.armed());
    }

    /// It counts the process-wide places exactly, so no other test of this
    /// crate's unit tests may spin: none starts a loop or waits in a
    /// Waiter (keep it so; spinning tests belong in `tests/`).
    #[test]
    fn waiters_share_the_places_the_loop_always_spins_and_reset_gives_back() {
        if budget().is_zero() {
            eprintln!("{SPIN_ENV}=0: spinning is off, nothing to check");
            return;
        }
        // Places of this test's own: other tests' threads spin meanwhile.
        static PLACES: AtomicUsize = AtomicUsize::new(0);
        let max = max_spinners();
        let mut spells: Vec<Spin> = (0..max)
            .map(|_| {
                let mut spell = Spin::for_waiter().counting_in(&PLACES);
                assert!(spell.again(), "a waiter with a place left spins");
                spell
            })
            .collect();
        assert_eq!(PLACES.load(Ordering::Relaxed), max);

        let mut refused = Spin::for_waiter().counting_in(&PLACES);
        assert!(!refused.again(), "a waiter past the limit sleeps at once");
        assert!(!refused.again(), "and does not spin later in its spell");
        assert_eq!(PLACES.load(Ordering::Relaxed), max, "and takes no place");

        let mut the_loop = Spin::for_loop().counting_in(&PLACES);
        assert!(the_loop.again(), "the loop spins even with no place left");
        the_loop.reset();
        assert_eq!(PLACES.load(Ordering::Relaxed), max);

        // As a Waiter does before it runs a job: the place is free for others.
        spells[0].reset();
        assert_eq!(PLACES.load(Ordering::Relaxed), max - 1);
        let mut next = Spin::for_waiter().counting_in(&PLACES);
        assert!(
            next.again(),
            "a place given back is taken by the next waiter"
        );

        drop(next);
        drop(spells);
        assert_eq!(
            PLACES.load(Ordering::Relaxed),
            0,
            "dropped spells give back"
        );
    }
}
