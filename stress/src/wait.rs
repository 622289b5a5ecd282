//! Waiting the way the runtime waits, for plain threads: spin (yield) for a while, then sleep.
//!
//! The [`chain`](crate::scenarios::chain) scenario is the floor of a call's shape, and
//! [`raw`](crate::scenarios::raw) of every call, so their threads must wait as the runtime's
//! do, or the runtime beats its own floors (on an idle virtual machine, a sleeping thread woken
//! on another CPU costs more than a whole hand-off between spinning ones). So they wait with the
//! runtime's own pieces, not a copy of them, and follow its policy whatever it becomes:
//!
//! - Spinning is the runtime's [`Spin`] (`multiprocess_event_loop::spin`): the same budget
//!   (`MULTIPROCESS_WAIT_SPIN_US`, [`SPIN_ENV`], default [`DEFAULT_SPIN_US`] µs, `0` never
//!   spins), the same cap of [`max_spinners`] spinning threads per process, for which a loop
//!   thread ([`Role::Loop`]) never waits and any other ([`Role::Waiter`]) sleeps at once when
//!   none is left, and the same adaptive policy (unless `MULTIPROCESS_SPIN_POLICY=always`,
//!   [`SPIN_POLICY_ENV`]), which keeps each kind of wait's [`History`]. The kinds are the
//!   runtime's: an application thread waiting for a reply; a worker waiting for its next
//!   request; a loop waiting while it expects something soon (the reply to a request it sent,
//!   the worker's answer); a loop waiting with nothing expected. The places are the ones the
//!   runtime's threads count in, which is harmless: while a floor runs, no runtime thread of
//!   its process spins (their loops, if any, are idle).
//! - A thread that really sleeps on a [`handoff`] wakes near its waker, with the runtime's
//!   [`WakePlace`] (`multiprocess_event_loop::placement`, "wake near the waker") under the
//!   hand-off's lock, as the runtime's Waiter keeps one under its own: the first thread to hand
//!   it a value from another CPU narrows the sleeper's CPU mask to its own before the wake-up,
//!   so the kernel wakes it there; once awake, the sleeper puts its own mask back. Same switch:
//!   on when the process may use fewer than [`WAKE_NEAR_BELOW_CPUS`] CPUs, or as
//!   `MULTIPROCESS_WAKE_NEAR` ([`WAKE_NEAR_ENV`]: `1`, `0`) says. A sleeper woken through a
//!   socket (by the other process) is not narrowed, in the runtime nor here.
//!
//! What this module adds is what a look and a sleep are, which depends on what is awaited: a
//! [`HandoffReceiver`] looks at its queue and sleeps on a condition variable, as the runtime's
//! Waiter does; a [`SocketReader`] looks with a non-blocking `recv(2)` (`MSG_DONTWAIT`, which
//! leaves the socket itself blocking, so other threads' writes and the socket's timeouts are
//! unchanged) and sleeps in a blocking `read`, as a loop sleeps in `epoll_wait`. Between looks
//! a spinning thread yields (`sched_yield`). With [`Waits::Park`] both sleep at once: what
//! `chain-park` measures.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

pub use multiprocess_event_loop::placement::{WAKE_NEAR_BELOW_CPUS, WAKE_NEAR_ENV, WakePlace};
pub use multiprocess_event_loop::spin::{
    DEFAULT_SPIN_US, History, SPIN_ENV, SPIN_POLICY_ENV, Spin, max_spinners,
};
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
    /// An event loop's: always may spin ([`Spin::for_loop`]).
    Loop,
    /// An application thread's or a worker's: spins only while a place is left
    /// ([`Spin::for_waiter`]).
    Waiter,
}

impl Waits {
    /// The spell of spinning one wait of a thread in `role` starts with, for a wait of the kind
    /// `history` keeps; `None`: sleep at once.
    pub fn spell(self, role: Role, history: &History) -> Option<Spell<'_>> {
        match self {
            Waits::Park => None,
            Waits::Spin => {
                let mut spin = match role {
                    Role::Loop => Spin::for_loop(),
                    Role::Waiter => Spin::for_waiter(),
                };
                spin.begin(history);
                Some(Spell { spin, history })
            }
        }
    }
}

/// One wait's spell of spinning: the runtime's [`Spin`], begun for a wait of the kind its
/// [`History`] keeps. [`again`](Spell::again) says whether to yield once more or sleep,
/// [`end`](Spell::end) that the wait is over. Dropping it gives its place back.
#[derive(Debug)]
pub struct Spell<'a> {
    spin: Spin,
    history: &'a History,
}

impl Spell<'_> {
    /// Whether to yield once more rather than sleep; the budget's clock starts at the first call.
    pub fn again(&mut self) -> bool {
        self.spin.again()
    }

    /// The wait is over (what it waited for came): records in its kind's history whether it
    /// was short enough for spinning to catch. A wait that found it at once counts as short.
    pub fn end(mut self) {
        self.spin.end(self.history);
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
            #[cfg(test)]
            woken_near: 0,
            #[cfg(test)]
            asleep: false,
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
    /// Where the receiving thread wakes: the runtime's rule.
    place: WakePlace,
    /// How many times the receiver woke narrowed to a sender's CPU.
    #[cfg(test)]
    woken_near: usize,
    /// Whether the receiver is blocked on the condition variable (set under
    /// the lock it releases as it blocks): tests send only then.
    #[cfg(test)]
    asleep: bool,
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
    pub fn recv(&self, mut spell: Option<Spell<'_>>) -> Option<T> {
        let mut state = self.shared.state.lock();
        loop {
            if let Some(value) = state.queue.pop_front() {
                drop(state);
                if let Some(spell) = spell {
                    spell.end();
                }
                return Some(value);
            }
            if state.sender_gone {
                return None;
            }
            if spell.as_mut().is_some_and(Spell::again) {
                drop(state);
                std::thread::yield_now();
                state = self.shared.state.lock();
                continue;
            }
            state.place.going_to_sleep();
            #[cfg(test)]
            {
                state.asleep = true;
            }
            self.shared.cv.wait(&mut state);
            #[cfg(test)]
            {
                state.asleep = false;
            }
            // A sender may have narrowed this thread's mask: put it back with the lock let go,
            // so that senders do not wait for the system call (as the runtime's Waiter does).
            let restore = state.place.awake();
            if restore.is_needed() {
                #[cfg(test)]
                {
                    state.woken_near += 1;
                }
                drop(state);
                restore.apply();
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
        let Some(mut spell) = self.waits.spell(self.role, self.history) else {
            return conn.read(buf);
        };
        loop {
            match recv_now(self.conn, buf) {
                Ok(n) => {
                    spell.end();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !spell.again() {
                        break;
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        let read = conn.read(buf);
        if read.is_ok() {
            spell.end();
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
    use std::time::Duration;

    use super::*;
    use crate::scenarios::raw_1cpu::{current_cpu_set, set_cpu_set};

    const LONG: Duration = Duration::from_secs(60);

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

    /// The CPU mask of the calling thread.
    fn own_mask() -> libc::cpu_set_t {
        current_cpu_set().expect("sched_getaffinity")
    }

    /// Sets the calling thread's CPU mask.
    fn set_own_mask(mask: &libc::cpu_set_t) {
        set_cpu_set(mask).expect("sched_setaffinity");
    }

    /// The mask of `cpu` alone.
    fn only(cpu: usize) -> libc::cpu_set_t {
        assert!(cpu < libc::CPU_SETSIZE as usize);
        // SAFETY: all zeroes is the empty set.
        let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below CPU_SETSIZE, as CPU_SET needs.
        unsafe { libc::CPU_SET(cpu, &mut mask) };
        mask
    }

    /// The calling thread's CPU mask, as a list.
    fn affinity() -> Vec<usize> {
        let set = own_mask();
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: every index is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }

    /// Puts the calling thread on `cpu`, then gives it back its whole mask.
    fn move_to(cpu: usize) {
        let own = own_mask();
        set_own_mask(&only(cpu));
        set_own_mask(&own);
    }

    #[test]
    fn a_receiver_asleep_on_another_cpu_wakes_near_the_sender_and_gets_its_mask_back() {
        let inherited = affinity();
        let [first, second, ..] = inherited[..] else {
            // One CPU: nowhere else to wake, and a sender never narrows.
            return;
        };
        const ROUNDS: usize = 20;
        mp_testkit::watchdog::guard("wake near", LONG, || {
            let (tx, rx) = handoff::<usize>();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
            let receiver = std::thread::spawn(move || {
                let mut masks = Vec::new();
                for round in 0..ROUNDS {
                    // Asleep on `first`, with the whole mask.
                    move_to(first);
                    ready_tx.send(()).expect("the sender waits");
                    assert_eq!(rx.recv(None), Some(round));
                    masks.push(affinity());
                }
                let woken_near = rx.shared.state.lock().woken_near;
                (woken_near, masks)
            });
            // The sender runs on `second` only (a thread of its own, so that no test thread is
            // left pinned), and sends once the receiver is asleep (the watchdog bounds the wait).
            let sender = std::thread::spawn(move || {
                set_own_mask(&only(second));
                for round in 0..ROUNDS {
                    ready_rx.recv().expect("the receiver asks");
                    while !tx.shared.state.lock().asleep {
                        std::thread::yield_now();
                    }
                    tx.send(round).expect("the receiver waits");
                }
            });
            sender.join().expect("sender");
            let (woken_near, masks) = receiver.join().expect("receiver");
            for mask in masks {
                assert_eq!(mask, inherited, "the woken receiver gets its own mask back");
            }
            if multiprocess_event_loop::placement::wake_near_enabled() {
                assert!(
                    woken_near > 0,
                    "never woken near the sender in {ROUNDS} rounds"
                );
            } else {
                assert_eq!(woken_near, 0, "woken near the sender with the rule off");
            }
        });
    }

    #[test]
    fn a_sleeping_receiver_is_woken_and_gets_its_mask_back() {
        // Whatever the setting and wherever the two threads run, the receiver ends with the
        // mask it had.
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
