//! Waiting the way the runtime waits, for plain threads: spin (yield) for a while, then sleep.
//!
//! The [`chain`](crate::scenarios::chain) scenario is the floor of a call's shape, so its
//! threads must wait as the runtime's do, or the runtime beats its own floor (a parked thread's
//! futex wake costs more than the whole hand-off of a spinning one). This is the runtime's
//! policy (`multiprocess_event_loop::spin`, whose `Spin` is private to that crate), copied:
//!
//! - A spell of spinning lasts at most the budget, `MULTIPROCESS_WAIT_SPIN_US`
//!   ([`SPIN_ENV`], default [`DEFAULT_SPIN_US`] µs, `0` never spins): the runtime's variable, so
//!   one setting governs both. The clock starts at the first look that finds nothing.
//! - At most [`max_spinners`] threads of a process spin at once (as many as there are CPUs). A
//!   loop thread always may ([`Role::Loop`]); any other ([`Role::Waiter`]) only while a place is
//!   left, otherwise it sleeps at once.
//! - Between looks the thread yields (`sched_yield`), leaving its CPU to any other runnable
//!   thread.
//!
//! The places here are counted apart from the runtime's: a process running a `chain` never
//! has runtime threads spinning at the same time (their loops are idle).
//!
//! What a look and a sleep are depends on what is awaited: [`recv`] looks with `try_recv` and
//! sleeps in a blocking `recv`; [`SocketReader`] looks with a non-blocking `recv(2)`
//! (`MSG_DONTWAIT`, which leaves the socket itself blocking, so other threads' writes and the
//! socket's timeouts are unchanged) and sleeps in a blocking `read`. With [`Waits::Park`] both
//! sleep at once: what `chain-park` measures.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, TryRecvError};
pub use multiprocess_event_loop::spin::{DEFAULT_SPIN_US, SPIN_ENV, max_spinners};

/// How a scenario's threads wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waits {
    /// Spin within the budget and the places, then sleep: the runtime's way.
    Spin,
    /// Sleep at once: a blocking `recv` (crossbeam's, which itself spins a few rounds before it
    /// parks on a futex) or a blocking `read`.
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
    /// The spell of spinning one wait of a thread in `role` starts with; `None`: sleep at once.
    pub fn spell(self, role: Role) -> Option<Spin<'static>> {
        match self {
            Waits::Park => None,
            Waits::Spin => Some(Spin::new(&PROCESS, budget(), role)),
        }
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
/// sleep. Dropping it gives its place back.
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
}

impl<'a> Spin<'a> {
    /// A spell of a thread in `role`, on `places`, of at most `budget`.
    pub fn new(places: &'a Places, budget: Duration, role: Role) -> Self {
        Self {
            places,
            budget,
            first: role == Role::Loop,
            deadline: None,
            counted: false,
        }
    }

    /// Whether to yield once more rather than sleep; the budget's clock starts at the first call.
    pub fn again(&mut self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let now = Instant::now();
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

/// Receives from `rx`: looks with `try_recv` and yields while `spell` allows, then blocks.
///
/// # Errors
///
/// [`RecvError`] once every sender is gone and the channel is empty.
pub fn recv<T>(rx: &Receiver<T>, spell: Option<Spin<'_>>) -> Result<T, RecvError> {
    if let Some(mut spin) = spell {
        loop {
            match rx.try_recv() {
                Ok(value) => return Ok(value),
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) if spin.again() => std::thread::yield_now(),
                Err(TryRecvError::Empty) => break,
            }
        }
    }
    rx.recv()
}

/// A blocking socket read as the runtime's threads wait for one: each [`read`](Read::read)
/// tries without blocking and yields while a fresh spell allows, then blocks in `read`.
#[derive(Debug)]
pub struct SocketReader<'a> {
    conn: &'a UnixStream,
    waits: Waits,
    role: Role,
}

impl<'a> SocketReader<'a> {
    /// Reads `conn` (left in blocking mode) as a thread in `role` waits.
    pub fn new(conn: &'a UnixStream, waits: Waits, role: Role) -> Self {
        Self { conn, waits, role }
    }
}

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(mut spin) = self.waits.spell(self.role) {
            loop {
                match recv_now(self.conn, buf) {
                    Ok(n) => return Ok(n),
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
        }
        let mut conn = self.conn;
        conn.read(buf)
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

    use crossbeam_channel::unbounded;

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

    #[test]
    fn recv_gets_what_was_sent_then_sees_the_senders_gone() {
        for waits in [Waits::Spin, Waits::Park] {
            let (tx, rx) = unbounded();
            let sender = std::thread::spawn(move || {
                for i in 0..100u64 {
                    tx.send(i).expect("the receiver is alive");
                }
            });
            for i in 0..100u64 {
                assert_eq!(recv(&rx, waits.spell(Role::Waiter)), Ok(i), "{waits:?}");
            }
            sender.join().expect("sender");
            assert_eq!(recv(&rx, waits.spell(Role::Loop)), Err(RecvError));
        }
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
            let mut reader = SocketReader::new(&a, waits, Role::Loop);
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
}
