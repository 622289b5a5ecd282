//! Timers on the loop thread: a future that completes at a deadline.
//!
//! The loop keeps its timers in a heap, earliest first. Before each look at
//! its work it wakes the tasks whose deadline has passed (reading the clock
//! only while a timer is pending), and when it sleeps it sleeps no longer
//! than until the earliest deadline. A timer costs nothing while none is
//! pending.
//!
//! A [`Sleep`] dropped before its deadline marks its entry cancelled: the
//! entry is skipped when its deadline comes, and once cancelled entries
//! are most of the heap (and more than a few), the heap is rebuilt without
//! them, so that the heap holds at most about twice the sleeps pending,
//! however many were started and dropped (a deadline per accepted
//! connection, say, under a stream of short connections).

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// One pending timer.
struct Entry {
    deadline: Instant,
    /// Breaks ties: of two timers with one deadline, the first set fires first.
    seq: u64,
    waker: Waker,
    /// Set once the entry no longer counts: it fired, or its sleep let go.
    done: Rc<Cell<bool>>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that the heap's greatest entry is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A loop's pending timers. Loop thread only.
#[derive(Default)]
pub(crate) struct Timers {
    heap: RefCell<BinaryHeap<Entry>>,
    next_seq: Cell<u64>,
    /// Entries in the heap whose sleep let go of them.
    cancelled: Cell<usize>,
}

/// The heap is rebuilt without its cancelled entries once there are more
/// than this many of them, and they are at least half of it.
const COMPACT_ABOVE: usize = 64;

impl Timers {
    /// Wakes `waker` once `deadline` has passed; returns the entry's flag,
    /// for [`cancel`](Self::cancel).
    fn add(&self, deadline: Instant, waker: Waker) -> Rc<Cell<bool>> {
        let seq = self.next_seq.get();
        self.next_seq.set(seq.wrapping_add(1));
        let done = Rc::new(Cell::new(false));
        self.heap.borrow_mut().push(Entry {
            deadline,
            seq,
            waker,
            done: done.clone(),
        });
        done
    }

    /// Forgets the entry of flag `done`, unless it has fired already.
    fn cancel(&self, done: &Cell<bool>) {
        if done.replace(true) {
            return;
        }
        let cancelled = self.cancelled.get() + 1;
        self.cancelled.set(cancelled);
        let mut heap = self.heap.borrow_mut();
        if cancelled > COMPACT_ABOVE && cancelled * 2 >= heap.len() {
            heap.retain(|entry| !entry.done.get());
            self.cancelled.set(0);
        }
    }

    /// Whether no timer is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.borrow().is_empty()
    }

    /// Wakes the tasks whose deadline is at or before `now`.
    pub(crate) fn fire_due(&self, now: Instant) {
        loop {
            // The waker runs with the heap released: waking a task only
            // schedules it, but nothing here relies on that.
            let due = {
                let mut heap = self.heap.borrow_mut();
                match heap.peek() {
                    Some(entry) if entry.deadline <= now => heap.pop(),
                    _ => None,
                }
            };
            match due {
                Some(entry) if entry.done.replace(true) => {
                    self.cancelled.set(self.cancelled.get().saturating_sub(1));
                }
                Some(entry) => entry.waker.wake(),
                None => return,
            }
        }
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.borrow().peek().map(|entry| entry.deadline)
    }
}

/// A future that completes once its deadline has passed
/// ([`LoopContext::sleep_until`](crate::LoopContext::sleep_until)). For
/// tasks of the loop that made it: `!Send`.
pub struct Sleep {
    deadline: Instant,
    timers: Rc<Timers>,
    /// The waker last registered and its entry's flag, so that polling
    /// again with the same waker adds no entry, and another replaces it.
    registered: Option<(Waker, Rc<Cell<bool>>)>,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Sleep {
    pub(crate) fn new(timers: Rc<Timers>, deadline: Instant) -> Self {
        Self {
            deadline,
            timers,
            registered: None,
        }
    }

    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let known = self
            .registered
            .as_ref()
            .is_some_and(|(waker, done)| !done.get() && waker.will_wake(cx.waker()));
        if !known {
            if let Some((_, done)) = self.registered.take() {
                self.timers.cancel(&done);
            }
            let done = self.timers.add(self.deadline, cx.waker().clone());
            self.registered = Some((cx.waker().clone(), done));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((_, done)) = self.registered.take() {
            self.timers.cancel(&done);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Mutex;
    use crate::sync::global::{AtomicUsize, Ordering as AtomicOrdering};
    // sync-facade: allow (std::task::Wake needs std's Arc)
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    /// Counts its wakes, and records the order of several (by `id`).
    struct Recorder {
        id: usize,
        order: Arc<Mutex<Vec<usize>>>,
        wakes: AtomicUsize,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.wakes.fetch_add(1, AtomicOrdering::Relaxed);
            self.order.lock().push(self.id);
        }
    }

    fn recorder(id: usize, order: &Arc<Mutex<Vec<usize>>>) -> Arc<Recorder> {
        Arc::new(Recorder {
            id,
            order: order.clone(),
            wakes: AtomicUsize::new(0),
        })
    }

    #[test]
    fn due_timers_fire_earliest_first_and_later_ones_wait() {
        let timers = Timers::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let late = recorder(3, &order);
        timers.add(start + Duration::from_secs(60), Waker::from(late.clone()));
        timers.add(
            start + Duration::from_millis(20),
            Waker::from(recorder(2, &order)),
        );
        timers.add(
            start + Duration::from_millis(10),
            Waker::from(recorder(1, &order)),
        );
        // Same deadline as the second: set later, fires after it.
        timers.add(
            start + Duration::from_millis(20),
            Waker::from(recorder(4, &order)),
        );
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_millis(10))
        );
        timers.fire_due(start);
        assert!(order.lock().is_empty(), "nothing is due yet");
        timers.fire_due(start + Duration::from_millis(30));
        assert_eq!(*order.lock(), vec![1, 2, 4]);
        assert_eq!(late.wakes.load(AtomicOrdering::Relaxed), 0);
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_secs(60))
        );
        assert!(!timers.is_empty());
    }

    /// Sleeps started and dropped before their deadline do not pile up
    /// in the heap, and the one still pending fires.
    #[test]
    fn dropped_sleeps_are_forgotten_and_the_heap_stays_small() {
        let timers = Rc::new(Timers::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let waker = Waker::from(recorder(1, &order));
        let mut cx = Context::from_waker(&waker);
        let far = Instant::now() + Duration::from_secs(60);
        let mut kept = Sleep::new(timers.clone(), far);
        assert!(Pin::new(&mut kept).poll(&mut cx).is_pending());
        for _ in 0..10_000 {
            let mut dropped = Sleep::new(timers.clone(), far);
            assert!(Pin::new(&mut dropped).poll(&mut cx).is_pending());
        }
        let len = timers.heap.borrow().len();
        assert!(
            len <= 2 * COMPACT_ABOVE + 2,
            "{len} entries for one pending sleep"
        );
        timers.fire_due(far);
        assert_eq!(*order.lock(), vec![1], "the kept sleep fired, once");
        assert!(timers.is_empty());
    }

    #[test]
    fn a_sleep_registers_once_per_waker_and_completes_at_its_deadline() {
        let timers = Rc::new(Timers::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let waker = Waker::from(recorder(1, &order));
        let mut cx = Context::from_waker(&waker);
        let mut sleep = Sleep::new(timers.clone(), Instant::now() + Duration::from_secs(60));
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert_eq!(
            timers.heap.borrow().len(),
            1,
            "polled twice, registered once"
        );
        let mut past = Sleep::new(timers.clone(), Instant::now());
        assert!(Pin::new(&mut past).poll(&mut cx).is_ready());
        assert_eq!(
            timers.heap.borrow().len(),
            1,
            "a sleep already due registers nothing"
        );
    }
}
