//! Waiting the way the runtime waits, for plain threads: spin (yield) for a while, then sleep.
//!
//! The [`chain`](crate::scenarios::chain) scenario is the floor of a call's shape, and
//! [`raw`](crate::scenarios::raw) of every call, so their threads must wait as the runtime's
//! do, or the runtime beats its own floors (on an idle virtual machine, a sleeping thread woken
//! on another CPU costs more than a whole hand-off between spinning ones). This is the
//! runtime's policy (`multiprocess_event_loop::spin`, whose `Spin` is private to that crate),
//! copied:
//!
//! - A spell of spinning lasts at most the budget, `MULTIPROCESS_WAIT_SPIN_US`
//!   ([`SPIN_ENV`], default [`DEFAULT_SPIN_US`] µs, `0` never spins): the runtime's variable, so
//!   one setting governs both. The clock starts at the first look that finds nothing.
//! - At most [`max_spinners`] threads of a process spin at once (as many as there are CPUs). A
//!   loop thread always may ([`Role::Loop`]); any other ([`Role::Waiter`]) only while a place is
//!   left, otherwise it sleeps at once.
//! - Between looks the thread yields (`sched_yield`), leaving its CPU to any other runnable
//!   thread.
//! - Adaptive (unless `MULTIPROCESS_SPIN_POLICY=always`, [`SPIN_POLICY_ENV`]): a wait spins only
//!   if the thread's last wait of the same kind ([`History`]) ended within the budget, so that
//!   a thread whose waits have been long sleeps at once. The kinds are the runtime's: an
//!   application thread waiting for a reply; a worker waiting for its next request; a loop
//!   waiting while it expects something soon (the reply to a request it sent, the worker's
//!   answer); a loop waiting with nothing expected.
//!
//! The places here are counted apart from the runtime's: a process running a `chain` never
//! has runtime threads spinning at the same time (their loops are idle).
//!
//! A thread that really sleeps on a [`handoff`] wakes near its waker, as the runtime's do
//! (`multiprocess_event_loop::placement`, "wake near the waker", whose `WakePlace` is private
//! to that crate and copied here): it records its thread id and CPU as it goes to sleep, and
//! the first thread to hand it a value from another CPU narrows the sleeper's CPU mask to its
//! own before the wake-up, so the kernel wakes it there; once awake, the sleeper puts its own
//! mask back. Same switch as the runtime's: on when the process may use fewer than
//! [`WAKE_NEAR_BELOW_CPUS`] CPUs, or as `MULTIPROCESS_WAKE_NEAR` (`1`, `0`) says. A sleeper
//! woken through a socket (by the other process) is not narrowed, in the runtime nor here.
//!
//! What a look and a sleep are depends on what is awaited: a [`HandoffReceiver`] looks at its
//! queue and sleeps on a condition variable, as the runtime's Waiter does; a [`SocketReader`]
//! looks with a non-blocking `recv(2)` (`MSG_DONTWAIT`, which leaves the socket itself
//! blocking, so other threads' writes and the socket's timeouts are unchanged) and sleeps in a
//! blocking `read`, as a loop sleeps in `epoll_wait`. With [`Waits::Park`] both sleep at once:
//! what `chain-park` measures.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

use multiprocess_event_loop::placement::current_cpu;
pub use multiprocess_event_loop::placement::{WAKE_NEAR_BELOW_CPUS, WAKE_NEAR_ENV};
pub use multiprocess_event_loop::spin::{DEFAULT_SPIN_US, SPIN_ENV, SPIN_POLICY_ENV, max_spinners};
use parking_lot::{Condvar, Mutex};

/// How a scenario's threads wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waits {
    /// Spin within the budget and the places, then sleep: the runtime's way.
    Spin,
    /// Sleep at once: on the condition variable, or in a blocking `read`.
    Park,
}

/// Which of the runtime's threads a waiting thread stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An event loop's: always may spin.
    Loop,
    /// An application thread's or a worker's: spins only while a place is left.
    Waiter,
}

impl Waits {
    /// The spell of spinning one wait of a thread in `role` starts with, for a wait of the kind
    /// `history` keeps; `None`: sleep at once.
    pub fn spell(self, role: Role, history: &History) -> Option<Spin<'_>> {
        match self {
            Waits::Park => None,
            Waits::Spin => Some(Spin::new(&PROCESS, budget(), role).of_kind(history, adaptive())),
        }
    }
}

/// Whether the adaptive policy is in force (see [`SPIN_POLICY_ENV`]).
pub fn adaptive() -> bool {
    static ADAPTIVE: LazyLock<bool> = LazyLock::new(|| {
        std::env::var(SPIN_POLICY_ENV).map_or(true, |policy| policy.trim() != "always")
    });
    *ADAPTIVE
}

/// What one thread remembers of its waits of one kind: whether the last one ended within the
/// budget. Starts armed. Kept by the waiting thread.
#[derive(Debug)]
pub struct History(Cell<bool>);

impl History {
    /// A history whose next wait may spin.
    pub const fn new() -> Self {
        Self(Cell::new(true))
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// The spinning budget: `MULTIPROCESS_WAIT_SPIN_US` microseconds, or [`DEFAULT_SPIN_US`] if it is
/// unset or not a number (as the runtime reads it).
pub fn budget() -> Duration {
    static BUDGET: LazyLock<Duration> = LazyLock::new(|| {
        let micros = std::env::var(SPIN_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SPIN_US);
        Duration::from_micros(micros)
    });
    *BUDGET
}

/// The places of spinning threads, shared by the threads of one process (or of one test).
#[derive(Debug)]
pub struct Places {
    taken: AtomicUsize,
    max: usize,
}

impl Places {
    /// `max` places, none taken.
    pub const fn new(max: usize) -> Self {
        Self {
            taken: AtomicUsize::new(0),
            max,
        }
    }

    /// How many are taken now.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

/// This process's places: [`max_spinners`] of them.
static PROCESS: LazyLock<Places> = LazyLock::new(|| Places::new(max_spinners()));

/// One wait's spell of spinning: [`again`](Spin::again) says whether to yield once more or
/// sleep, [`end`](Spin::end) that the wait is over. Dropping it gives its place back.
#[derive(Debug)]
pub struct Spin<'a> {
    places: &'a Places,
    budget: Duration,
    /// Whether it may spin with every place taken (a loop's).
    first: bool,
    /// When the budget runs out; `None` before the first `again`.
    deadline: Option<Instant>,
    /// Whether it holds a place.
    counted: bool,
    /// Whether this wait may spin, from its kind's history (the adaptive policy).
    armed: bool,
    /// When the thread found it had nothing to do: the first `again`.
    idle_since: Option<Instant>,
    /// The history of its kind, which [`end`](Spin::end) updates.
    history: Option<&'a History>,
}

impl<'a> Spin<'a> {
    /// A spell of a thread in `role`, on `places`, of at most `budget`; armed, of no kind.
    pub fn new(places: &'a Places, budget: Duration, role: Role) -> Self {
        Self {
            places,
            budget,
            first: role == Role::Loop,
            deadline: None,
            counted: false,
            armed: true,
            idle_since: None,
            history: None,
        }
    }

    /// The spell of a wait of the kind `history` keeps: under the adaptive policy, it spins
    /// only if the last such wait was short.
    pub fn of_kind(mut self, history: &'a History, adaptive: bool) -> Self {
        self.armed = !adaptive || history.0.get();
        self.history = Some(history);
        self
    }

    /// The wait is over (what it waited for came): records in its kind's history whether it
    /// was short enough for spinning to catch. A wait that found it at once counts as short.
    pub fn end(self) {
        let short = self
            .idle_since
            .is_none_or(|since| since.elapsed() <= self.budget);
        if let Some(history) = self.history {
            history.0.set(short);
        }
    }

    /// Whether to yield once more rather than sleep; the budget's clock starts at the first call.
    pub fn again(&mut self) -> bool {
        if self.budget.is_zero() {
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
                self.counted = self.places.taken.fetch_add(1, Ordering::Relaxed) < self.places.max
                    || self.first;
                if !self.counted {
                    self.places.taken.fetch_sub(1, Ordering::Relaxed);
                    self.deadline = Some(now);
                    return false;
                }
                *self.deadline.insert(now + self.budget)
            }
        };
        if now < deadline {
            return true;
        }
        self.give_back();
        false
    }

    fn give_back(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.places.taken.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Spin<'_> {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// A channel from one thread to another whose receiver waits as the runtime's Waiter does: a
/// queue under a mutex, with a condition variable to sleep on and the [`WakePlace`] of the
/// receiving thread under the same lock.
pub fn handoff<T>() -> (HandoffSender<T>, HandoffReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
            place: WakePlace::default(),
        }),
        cv: Condvar::new(),
    });
    (
        HandoffSender {
            shared: shared.clone(),
        },
        HandoffReceiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
}

struct State<T> {
    queue: VecDeque<T>,
    sender_gone: bool,
    receiver_gone: bool,
    place: WakePlace,
}

/// The sending end of a [`handoff`]. Dropping it wakes the receiver, whose `recv` then returns
/// `None` once the queue is empty.
pub struct HandoffSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> HandoffSender<T> {
    /// Queues `value` and wakes the receiver; if the receiver sleeps on another CPU, it wakes
    /// on this one.
    ///
    /// # Errors
    ///
    /// The value back, if the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), T> {
        let mut state = self.shared.state.lock();
        if state.receiver_gone {
            return Err(value);
        }
        state.queue.push_back(value);
        state.place.waking();
        drop(state);
        self.shared.cv.notify_one();
        Ok(())
    }
}

impl<T> Drop for HandoffSender<T> {
    fn drop(&mut self) {
        self.shared.state.lock().sender_gone = true;
        self.shared.cv.notify_all();
    }
}

impl<T> std::fmt::Debug for HandoffSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffSender").finish_non_exhaustive()
    }
}

/// The receiving end of a [`handoff`]: one thread's.
pub struct HandoffReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> HandoffReceiver<T> {
    /// The next value: looks at the queue and yields while `spell` allows, then sleeps on the
    /// condition variable, where a sender may have it woken on its own CPU. `None` once the
    /// sender is gone and the queue is empty.
    pub fn recv(&self, mut spell: Option<Spin<'_>>) -> Option<T> {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(value) = state.queue.pop_front() {
                drop(state);
                if let Some(spin) = spell {
                    spin.end();
                }
                return Some(value);
            }
            if state.sender_gone {
                return None;
            }
            if spell.as_mut().is_some_and(Spin::again) {
                drop(state);
                std::thread::yield_now();
                state = self.shared.state.lock();
                continue;
            }
            state.place.going_to_sleep();
            self.shared.cv.wait(&mut state);
            // A sender may have narrowed this thread's mask: put it back with the lock let go,
            // so that senders do not wait for the system call.
            if let Some(own) = state.place.awake() {
                drop(state);
                // If it fails, the process lost CPUs meanwhile; the kernel has moved the thread.
                let _ = set_mask(0, &own);
                state = self.shared.state.lock();
            }
        }
    }
}

impl<T> Drop for HandoffReceiver<T> {
    fn drop(&mut self) {
        self.shared.state.lock().receiver_gone = true;
    }
}

impl<T> std::fmt::Debug for HandoffReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffReceiver").finish_non_exhaustive()
    }
}

/// Where the receiving thread of a [`handoff`] wakes: the runtime's `placement::WakePlace`,
/// kept under the hand-off's lock.
#[derive(Default)]
pub struct WakePlace {
    /// While the receiver sleeps: its thread id and the CPU it went to sleep on.
    asleep: Option<(libc::pid_t, Option<usize>)>,
    /// The receiver's own mask, while a sender has narrowed it.
    narrowed: Option<libc::cpu_set_t>,
}

impl std::fmt::Debug for WakePlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakePlace")
            .field("asleep", &self.asleep)
            .field("narrowed", &self.narrowed.is_some())
            .finish()
    }
}

impl WakePlace {
    /// The receiving thread is about to sleep (lock held).
    fn going_to_sleep(&mut self) {
        if wake_near_enabled() {
            self.record_sleeper();
        }
    }

    /// Records the calling thread as the sleeper, whatever the setting.
    fn record_sleeper(&mut self) {
        self.asleep = Some((os_tid(), current_cpu()));
    }

    /// A thread handing the receiver a value (lock held): if the receiver sleeps on another
    /// CPU, narrows it to this thread's CPU, once, before the caller wakes it. Leaves it alone
    /// if its mask has one CPU only (pinned by its user) or does not allow this one.
    fn waking(&mut self) {
        let Some((tid, slept_on)) = self.asleep.take() else {
            return;
        };
        let Some(here) = current_cpu() else { return };
        if slept_on == Some(here) {
            return;
        }
        let Some(only_here) = only(here) else { return };
        // `tid` cannot exit meanwhile: it sleeps under the lock the caller holds.
        let Some(own) = mask_of(tid) else { return };
        // SAFETY: `here` is below CPU_SETSIZE (`only` checked it); `own` is a valid cpu_set_t.
        if !unsafe { libc::CPU_ISSET(here, &own) } || unsafe { libc::CPU_COUNT(&own) } < 2 {
            return;
        }
        // The sleeper is off every run queue: this only changes its mask.
        if set_mask(tid, &only_here) {
            self.narrowed = Some(own);
        }
    }

    /// The receiving thread woke up (lock held): the mask to put back once the lock is let go,
    /// if a sender narrowed it.
    fn awake(&mut self) -> Option<libc::cpu_set_t> {
        self.asleep = None;
        self.narrowed.take()
    }
}

/// Whether a sender narrows a sleeping receiver to its own CPU: as `MULTIPROCESS_WAKE_NEAR`
/// says, or else when the process may use fewer than [`WAKE_NEAR_BELOW_CPUS`] CPUs (the
/// runtime's rule).
pub fn wake_near_enabled() -> bool {
    static ENABLED: LazyLock<bool> =
        LazyLock::new(
            || match std::env::var(WAKE_NEAR_ENV).as_deref().map(str::trim) {
                Ok("0") => false,
                Ok("1") => true,
                _ => max_spinners() < WAKE_NEAR_BELOW_CPUS,
            },
        );
    *ENABLED
}

/// The calling thread's id.
fn os_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// The CPU mask of thread `tid` (0: the calling thread).
fn mask_of(tid: libc::pid_t) -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data, for which all zeroes is the empty set.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask` is a valid cpu_set_t of the size given.
    let got = unsafe { libc::sched_getaffinity(tid, std::mem::size_of_val(&mask), &mut mask) };
    (got == 0).then_some(mask)
}

/// Sets the CPU mask of thread `tid` (0: the calling thread); whether it took.
fn set_mask(tid: libc::pid_t, mask: &libc::cpu_set_t) -> bool {
    // SAFETY: `mask` is a valid cpu_set_t of the size given.
    unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(mask), mask) == 0 }
}

/// The mask of `cpu` alone, if `cpu` can be in a mask at all.
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

/// A blocking socket read as the runtime's threads wait for one: each [`read`](Read::read)
/// is a wait of the kind `history` keeps, which tries without blocking and yields while its
/// spell allows, then blocks in `read`.
#[derive(Debug)]
pub struct SocketReader<'a> {
    conn: &'a UnixStream,
    waits: Waits,
    role: Role,
    history: &'a History,
}

impl<'a> SocketReader<'a> {
    /// Reads `conn` (left in blocking mode) as a thread in `role` waits, its waits of the kind
    /// `history` keeps.
    pub fn new(conn: &'a UnixStream, waits: Waits, role: Role, history: &'a History) -> Self {
        Self {
            conn,
            waits,
            role,
            history,
        }
    }
}

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut conn = self.conn;
        let Some(mut spin) = self.waits.spell(self.role, self.history) else {
            return conn.read(buf);
        };
        loop {
            match recv_now(self.conn, buf) {
                Ok(n) => {
                    spin.end();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !spin.again() {
                        break;
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        let read = conn.read(buf);
        if read.is_ok() {
            spin.end();
        }
        read
    }
}

/// One `recv(2)` with `MSG_DONTWAIT`: what is there, `WouldBlock` if nothing is.
fn recv_now(conn: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the descriptor is open for as long as `conn` is borrowed; `buf` is valid for
    // writes of `buf.len()` bytes.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn waiters_share_the_places_and_a_loop_always_spins() {
        let places = Places::new(2);
        let mut spells: Vec<Spin<'_>> = (0..2)
            .map(|_| {
                let mut spell = Spin::new(&places, LONG, Role::Waiter);
                assert!(spell.again(), "a waiter with a place left spins");
                spell
            })
            .collect();
        assert_eq!(places.taken(), 2);

        let mut refused = Spin::new(&places, LONG, Role::Waiter);
        assert!(!refused.again(), "a waiter past the limit sleeps at once");
        assert!(!refused.again(), "and does not spin later in its spell");
        assert_eq!(places.taken(), 2, "and takes no place");

        let mut the_loop = Spin::new(&places, LONG, Role::Loop);
        assert!(the_loop.again(), "a loop spins even with no place left");
        drop(the_loop);
        assert_eq!(places.taken(), 2);

        spells.pop();
        let mut next = Spin::new(&places, LONG, Role::Waiter);
        assert!(
            next.again(),
            "a place given back is taken by the next waiter"
        );
        drop(next);
        drop(spells);
        assert_eq!(places.taken(), 0, "dropped spells give back");
    }

    #[test]
    fn a_spell_ends_with_its_budget_and_gives_its_place_back() {
        let places = Places::new(1);
        let mut spell = Spin::new(&places, Duration::from_micros(1), Role::Waiter);
        let started = Instant::now();
        while spell.again() {
            assert!(started.elapsed() < LONG, "the spell outlives its budget");
        }
        assert_eq!(places.taken(), 0);
        let mut none = Spin::new(&places, Duration::ZERO, Role::Loop);
        assert!(!none.again(), "a zero budget never spins");
        assert_eq!(places.taken(), 0);
    }

    /// Ends `spell` as a wait that outlasted its budget.
    fn outlast(mut spell: Spin<'_>) {
        let started = Instant::now();
        while spell.again() {
            assert!(started.elapsed() < LONG, "the spell outlives its budget");
        }
        // Past the deadline `again` saw, whatever the clock's resolution.
        let past = Instant::now() + Duration::from_micros(10);
        while Instant::now() < past {}
        spell.end();
    }

    #[test]
    fn under_the_adaptive_policy_a_wait_spins_only_if_the_last_of_its_kind_was_short() {
        let places = Places::new(1);
        let budget = Duration::from_micros(200);
        let history = History::new();
        let spell = || Spin::new(&places, budget, Role::Waiter).of_kind(&history, true);

        // A wait that found its value at once is short: the next one spins.
        spell().end();
        let mut next = spell();
        assert!(next.again(), "armed after a short wait");
        next.end();
        assert_eq!(places.taken(), 0, "an ended spell gives its place back");

        // A wait that outlasted the budget: the next one sleeps at once, taking no place.
        outlast(spell());
        let mut unarmed = spell();
        assert!(!unarmed.again(), "a wait after a long one sleeps at once");
        assert_eq!(places.taken(), 0, "and takes no place");
        // Woken within the budget: short, so spinning is armed again.
        unarmed.end();
        assert!(spell().again(), "a short wait arms spinning again");

        // Under `always`, a long history does not matter.
        outlast(spell());
        let mut always = Spin::new(&places, budget, Role::Waiter).of_kind(&history, false);
        assert!(always.again(), "always spins");
    }

    #[test]
    fn a_handoff_delivers_what_was_sent_then_sees_the_sender_gone() {
        mp_testkit::watchdog::guard("handoff", LONG, || {
            for waits in [Waits::Spin, Waits::Park] {
                let (tx, rx) = handoff();
                let sender = std::thread::spawn(move || {
                    for i in 0..100u64 {
                        tx.send(i).expect("the receiver is alive");
                    }
                });
                let history = History::new();
                for i in 0..100u64 {
                    let spell = waits.spell(Role::Waiter, &history);
                    assert_eq!(rx.recv(spell), Some(i), "{waits:?}");
                }
                sender.join().expect("sender");
                assert_eq!(rx.recv(waits.spell(Role::Loop, &history)), None);
            }
        });
    }

    #[test]
    fn a_send_to_a_dropped_receiver_gives_the_value_back() {
        let (tx, rx) = handoff();
        drop(rx);
        assert_eq!(tx.send(7u64), Err(7));
    }

    #[test]
    fn a_socket_reader_reads_what_was_written_then_eof() {
        for waits in [Waits::Spin, Waits::Park] {
            let (a, b) = crate::scenarios::bounded_pair();
            let writer = std::thread::spawn(move || {
                let mut b = b;
                for i in 0..100u64 {
                    b.write_all(&i.to_le_bytes()).expect("write");
                }
            });
            let history = History::new();
            let mut reader = SocketReader::new(&a, waits, Role::Loop, &history);
            for i in 0..100u64 {
                let mut buf = [0u8; 8];
                reader.read_exact(&mut buf).expect("read");
                assert_eq!(u64::from_le_bytes(buf), i, "{waits:?}");
            }
            writer.join().expect("writer");
            let mut buf = [0u8; 8];
            assert_eq!(reader.read(&mut buf).expect("EOF"), 0, "{waits:?}");
        }
    }

    /// The CPUs of a mask, as a list.
    fn cpus(set: &libc::cpu_set_t) -> Vec<usize> {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: every index is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, set) })
            .collect()
    }

    /// The calling thread's CPU mask, as a list.
    fn affinity() -> Vec<usize> {
        cpus(&mask_of(0).expect("the calling thread's mask"))
    }

    /// Puts the calling thread on `cpu`, then gives it back its whole mask.
    fn move_to(cpu: usize) {
        let own = mask_of(0).expect("own mask");
        assert!(set_mask(0, &only(cpu).expect("a CPU")), "move to {cpu}");
        assert!(set_mask(0, &own), "own mask back");
    }

    #[test]
    fn a_sender_on_another_cpu_narrows_the_sleeper_which_gets_its_mask_back() {
        let inherited = affinity();
        let [first, second, ..] = inherited[..] else {
            // One CPU: nowhere else to wake, and `waking` never narrows.
            return;
        };
        mp_testkit::watchdog::guard("wake near", LONG, || {
            let place = Arc::new(Mutex::new(WakePlace::default()));
            let (tx, rx) = handoff::<()>();
            let sleeper = std::thread::spawn({
                let place = place.clone();
                move || {
                    move_to(first);
                    // As `HandoffReceiver::recv` does, whatever the setting.
                    place.lock().record_sleeper();
                    rx.recv(None).expect("woken");
                    if let Some(own) = place.lock().awake() {
                        assert!(set_mask(0, &own), "own mask back");
                    }
                    affinity()
                }
            });
            // Until the sleeper has recorded itself (bounded by the watchdog).
            let (tid, slept_on) = loop {
                if let Some(asleep) = place.lock().asleep {
                    break asleep;
                }
                std::thread::yield_now();
            };
            let own = cpus(&mask_of(tid).expect("the sleeper's mask"));
            let narrowed_to = std::thread::spawn({
                let place = place.clone();
                move || {
                    assert!(set_mask(0, &only(second).expect("a CPU")), "pin the waker");
                    place.lock().waking();
                    // A second waker finds the sleeper already claimed.
                    place.lock().waking();
                    let mask = cpus(&mask_of(tid).expect("the sleeper's mask"));
                    tx.send(()).expect("the sleeper waits");
                    mask
                }
            })
            .join()
            .expect("waker");
            if slept_on == Some(second) {
                assert_eq!(
                    narrowed_to, own,
                    "a sleeper on the waker's CPU stays as it is"
                );
            } else {
                assert_eq!(narrowed_to, [second], "narrowed to the waker's CPU");
            }
            let after = sleeper.join().expect("sleeper");
            assert_eq!(after, inherited, "the woken thread gets its own mask back");
        });
    }

    #[test]
    fn a_sleeping_receiver_is_woken_and_gets_its_mask_back() {
        // Through `recv` itself: whatever the setting and wherever the two threads run, the
        // receiver ends with the mask it had.
        let inherited = affinity();
        mp_testkit::watchdog::guard("sleep and wake", LONG, || {
            let (tx, rx) = handoff::<u64>();
            let (ready_tx, ready_rx) = handoff::<()>();
            let receiver = std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..50 {
                    ready_tx.send(()).expect("the sender waits");
                    got.push(rx.recv(None).expect("a value"));
                }
                (got, affinity())
            });
            for i in 0..50u64 {
                ready_rx.recv(None).expect("the receiver asks");
                tx.send(i).expect("the receiver waits");
            }
            let (got, after) = receiver.join().expect("receiver");
            assert_eq!(got, (0..50).collect::<Vec<_>>());
            assert_eq!(after, inherited);
        });
    }
}
