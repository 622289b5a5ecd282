//! The server of the `Probe` test interface: plain implementations of the
//! traits generated from `schema/probe.capnp` (module [`crate::probe`]), and
//! the helpers tests use beside them (gates, thread counts, the log of
//! destroyed Counters).
//!
//! Every method runs where the generated server puts it: on the worker
//! thread the request's `Context` names.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use multiprocess::capnp::capability::FromClientHook;
use multiprocess::raw::ServeContext;
use multiprocess::{Connection, Error, Interface, LoopHandle, Result};

use crate::probe::{
    CallFnOutput, CallSavedFromNotifierOutput, Counter, CounterDropsOutput, Init, IntFn, Probe,
    RecurseOutput, StatsOutput, ThreadInfo,
};

/// Serves the test kit's `Init` to the peer on `stream`, on `event_loop`:
/// what `mp-child`, the demo's child and in-process peers run.
///
/// Unlike [`multiprocess::serve`], it makes the `Init` for the connection
/// once the connection exists, so that `Probe.disconnect` can close it.
pub fn serve(event_loop: &LoopHandle, stream: UnixStream) -> Result<Connection> {
    Connection::serve(event_loop, stream, bootstrap)
}

/// The bootstrap capability a connection served by the test kit gives its
/// peer (an `Init` that knows its connection), for `Connection::serve` and
/// its variants. Loop thread only.
pub fn bootstrap(ctx: ServeContext) -> multiprocess::capnp::capability::Client {
    let init: Arc<dyn Init> = Arc::new(ProbeInit { ctx: ctx.clone() });
    multiprocess::capnp::capability::Client::new(
        <dyn Init as Interface>::to_capnp(&init, &ctx).into_client_hook(),
    )
}

/// The test kit's `Init`, one per connection: hands out Probes.
pub struct ProbeInit {
    /// The connection this `Init` serves (for `Probe.disconnect`).
    ctx: ServeContext,
}

impl Init for ProbeInit {
    fn make_probe(&self) -> Result<Arc<dyn Probe>> {
        Ok(Arc::new(ProbeImpl {
            ctx: self.ctx.clone(),
            saved: Mutex::new(None),
            notifier: Mutex::new(None),
        }))
    }
}

/// The calling thread's OS thread id.
pub fn tid() -> i64 {
    multiprocess::os_thread_id()
}

/// One `Counter` implementation dropped in this process.
#[derive(Debug, Clone)]
struct CounterDrop {
    /// The Counter's id (as `makeCounter` returned it).
    id: u64,
    /// The OS thread id of the thread that dropped it.
    tid: i64,
    /// That thread's name, read as it dropped the Counter (the thread may
    /// be gone by the time a test looks).
    thread: Option<String>,
}

/// The `Counter` implementations dropped in this process, in order, with a
/// condition variable signalled at each drop.
#[derive(Default)]
struct CounterDropLog {
    drops: Mutex<Vec<CounterDrop>>,
    cv: Condvar,
}

fn counter_drop_log() -> &'static CounterDropLog {
    static DROPS: OnceLock<CounterDropLog> = OnceLock::new();
    DROPS.get_or_init(Default::default)
}

impl CounterDropLog {
    fn record(&self, drop: CounterDrop) {
        self.drops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(drop);
        self.cv.notify_all();
    }

    fn snapshot(&self) -> Vec<CounterDrop> {
        self.drops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The drops so far, once `done` holds for them (or after `timeout`,
    /// whatever they are).
    fn wait_until(
        &self,
        done: impl Fn(&[CounterDrop]) -> bool,
        timeout: Duration,
    ) -> Vec<CounterDrop> {
        let deadline = Instant::now().checked_add(timeout);
        let mut drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        while !done(&drops) {
            drops = match deadline {
                None => self.cv.wait(drops).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    self.cv
                        .wait_timeout(drops, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        drops.clone()
    }
}

/// The thread ids on which this process destroyed Counters, once there
/// are more than `seen` (or after `timeout`, however many there are).
///
/// Every Counter of the process counts, including those of other tests
/// running in parallel: to follow one Counter, use
/// [`local_counter_drops_of`].
pub fn local_counter_drops_after(seen: usize, timeout: Duration) -> Vec<i64> {
    counter_drop_log()
        .wait_until(|drops| drops.len() > seen, timeout)
        .iter()
        .map(|drop| drop.tid)
        .collect()
}

/// The threads (OS thread id, and name if it has one) on which this
/// process destroyed the Counter `id` (see [`Counter::id`]), once it has
/// been destroyed (or after `timeout`: then empty). A Counter is destroyed
/// once, so more than one entry is a bug.
pub fn local_counter_drops_of(id: u64, timeout: Duration) -> Vec<(i64, Option<String>)> {
    counter_drop_log()
        .wait_until(|drops| drops.iter().any(|drop| drop.id == id), timeout)
        .into_iter()
        .filter(|drop| drop.id == id)
        .map(|drop| (drop.tid, drop.thread))
        .collect()
}

/// The implementation behind a served `Counter`: its drop is logged.
struct CounterImpl {
    /// Unique in this process: names the Counter in the drop log.
    id: u64,
    value: std::sync::atomic::AtomicI32,
}

impl CounterImpl {
    fn new() -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            value: Default::default(),
        }
    }
}

impl Drop for CounterImpl {
    fn drop(&mut self) {
        counter_drop_log().record(CounterDrop {
            id: self.id,
            tid: tid(),
            thread: std::thread::current().name().map(str::to_string),
        });
    }
}

impl Counter for CounterImpl {
    fn increment(&self) -> Result<i32> {
        // The peer decides how often to call: wrap, as `fetch_add` does,
        // rather than overflow.
        Ok(self
            .value
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .wrapping_add(1))
    }

    fn id(&self) -> Result<u64> {
        Ok(self.id)
    }
}

/// The thread ids on which the peer behind `probe` destroyed the Counter
/// `id` (see [`Counter::id`]): empty while it lives, one entry once
/// destroyed (more would be a bug).
pub fn counter_drops_of(probe: &dyn Probe, id: u64) -> Result<Vec<i64>> {
    let CounterDropsOutput { tids, ids } = probe.counter_drops()?;
    if tids.len() != ids.len() {
        return Err(Error::Protocol(format!(
            "counterDrops: {} tids but {} ids",
            tids.len(),
            ids.len()
        )));
    }
    Ok(ids
        .iter()
        .zip(tids)
        .filter(|&(dropped, _)| *dropped == id)
        .map(|(_, tid)| tid)
        .collect())
}

/// The test kit's `Probe`.
struct ProbeImpl {
    /// The connection served (for `disconnect`).
    ctx: ServeContext,
    /// The closure `saveFn` kept.
    saved: Mutex<Option<IntFn>>,
    /// The thread `callSavedFromNotifier` calls from, started on first use.
    notifier: Mutex<Option<Notifier>>,
}

impl ProbeImpl {
    fn saved(&self) -> Result<IntFn> {
        self.saved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::failed("no closure saved"))
    }
}

impl Probe for ProbeImpl {
    fn add(&self, a: i32, b: i32) -> Result<i32> {
        Ok(a.wrapping_add(b))
    }

    fn whoami(&self) -> Result<ThreadInfo> {
        Ok(ThreadInfo {
            tid: tid(),
            name: multiprocess::names::current_thread_name(),
        })
    }

    fn block(&self, gate: &str) -> Result<()> {
        gates().block(gate)
    }

    fn open(&self, gate: &str) -> Result<()> {
        gates().open(gate);
        Ok(())
    }

    fn wait_blocked(&self, gate: &str, count: u32) -> Result<()> {
        gates().wait_blocked(gate, count)
    }

    fn fail(&self, message: &str, panic: bool) -> Result<()> {
        if panic {
            panic!("{message}");
        }
        // A method may fail with any kind of error, a disconnection or an
        // invalid thread of its own (from a call it made further on), say:
        // the caller must still see a remote error.
        Err(if let Some(rest) = message.strip_prefix("disconnected:") {
            Error::Disconnected(rest.to_string())
        } else if let Some(rest) = message.strip_prefix("invalid-thread:") {
            Error::InvalidThread(rest.to_string())
        } else {
            Error::failed(message)
        })
    }

    fn stats(&self) -> Result<StatsOutput> {
        Ok(StatsOutput {
            workers: u32::try_from(multiprocess::live_workers()).unwrap_or(u32::MAX),
            os_threads: os_thread_count(),
        })
    }

    fn echo(&self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(data.to_vec())
    }

    fn call_fn(&self, f: IntFn, arg: i32) -> Result<CallFnOutput> {
        Ok(CallFnOutput {
            result: f(arg)?,
            tid: tid(),
        })
    }

    fn save_fn(&self, f: Option<IntFn>) -> Result<()> {
        let old = std::mem::replace(
            &mut *self.saved.lock().unwrap_or_else(|p| p.into_inner()),
            f,
        );
        // Released outside the lock: dropping the peer's closure posts to
        // the loop.
        drop(old);
        Ok(())
    }

    fn call_saved(&self, arg: i32) -> Result<i32> {
        self.saved()?(arg)
    }

    fn call_saved_from_notifier(&self, arg: i32) -> Result<CallSavedFromNotifierOutput> {
        let callback = self.saved()?;
        let mut notifier = self.notifier.lock().unwrap_or_else(|p| p.into_inner());
        if notifier.is_none() {
            *notifier = Some(Notifier::start().map_err(Error::from)?);
        }
        let notifier = notifier
            .as_ref()
            .ok_or_else(|| Error::failed("no notifier"))?;
        notifier.run(move || {
            callback(arg).map(|result| CallSavedFromNotifierOutput { result, tid: tid() })
        })?
    }

    fn stop_notifier(&self) -> Result<()> {
        let stopped = self
            .notifier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(stopped);
        Ok(())
    }

    fn saved_fn_count(&self) -> Result<u32> {
        Ok(u32::from(
            self.saved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some(),
        ))
    }

    fn recurse(&self, f: IntFn, depth: i32) -> Result<RecurseOutput> {
        Ok(RecurseOutput {
            result: f(depth)?,
            tid: tid(),
        })
    }

    fn disconnect(&self, then_block_on: &str) -> Result<()> {
        self.ctx.disconnect();
        // Answer only once the connection is gone, so the answer cannot
        // overtake the disconnect.
        self.ctx.wait_disconnected(GATE_LIMIT);
        if then_block_on.is_empty() {
            Ok(())
        } else {
            gates().block(then_block_on)
        }
    }

    fn make_counter(&self) -> Result<Arc<dyn Counter>> {
        Ok(Arc::new(CounterImpl::new()))
    }

    fn counter_drops(&self) -> Result<CounterDropsOutput> {
        let drops = counter_drop_log().snapshot();
        Ok(CounterDropsOutput {
            tids: drops.iter().map(|drop| drop.tid).collect(),
            ids: drops.iter().map(|drop| drop.id).collect(),
        })
    }
}

/// A thread of the server that serves no call, to invoke kept closures from.
struct Notifier {
    jobs: Option<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    fn start() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let thread = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (reply, result) = std::sync::mpsc::channel();
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::failed("notifier stopped"))?;
        jobs.send(Box::new(move || {
            let _ = reply.send(job());
        }))
        .map_err(|_| Error::failed("notifier stopped"))?;
        result
            .recv_timeout(GATE_LIMIT)
            .map_err(|_| Error::failed("notifier did not answer"))
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Gates that `block` waits on and `open` opens (process-wide).
#[derive(Default)]
struct Gates {
    state: Mutex<HashMap<String, (bool, u32)>>,
    cv: Condvar,
}

fn gates() -> &'static Gates {
    static GATES: OnceLock<Gates> = OnceLock::new();
    GATES.get_or_init(Gates::default)
}

/// How long a gate waits before failing the call (a safety bound: tests
/// open their gates or disconnect long before).
const GATE_LIMIT: Duration = Duration::from_secs(60);

impl Gates {
    fn block(&self, gate: &str) -> Result<()> {
        let deadline = Instant::now() + GATE_LIMIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.entry(gate.to_string()).or_default().1 += 1;
        self.cv.notify_all();
        loop {
            if state.get(gate).is_some_and(|g| g.0) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::failed(format!("gate {gate} was never opened")));
            }
            state = self
                .cv
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(g) = state.get_mut(gate) {
            g.1 -= 1;
        }
        Ok(())
    }

    fn open(&self, gate: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.entry(gate.to_string()).or_default().0 = true;
        self.cv.notify_all();
    }

    fn wait_blocked(&self, gate: &str, count: u32) -> Result<()> {
        let deadline = Instant::now() + GATE_LIMIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.get(gate).map_or(0, |g| g.1) < count {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::failed(format!(
                    "fewer than {count} calls blocked on {gate}"
                )));
            }
            state = self
                .cv
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }
}

/// Opens `gate` in this process (for tests whose server runs in-process and
/// whose connection is gone).
pub fn open_gate(gate: &str) {
    gates().open(gate);
}

/// Number of OS threads of this process.
pub fn os_thread_count() -> u32 {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count() as u32)
        .unwrap_or(0)
}

/// This process's OS thread count once it has come down to `expected`, or
/// as it is after `timeout`: for leak checks after threads were joined.
///
/// A joined thread can still be listed in `/proc/self/task` for a moment:
/// the kernel wakes its joiner as the thread releases its memory, before it
/// removes the thread from the process (seen on a loaded machine: a loop
/// thread joined by `LoopHandle::drop` still listed, running, right after).
/// So a count above `expected` is read again until the deadline; a thread
/// that really leaked stays and fails the check.
pub fn os_thread_count_settled(expected: u32, timeout: Duration) -> u32 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let count = os_thread_count();
        if count <= expected || std::time::Instant::now() >= deadline {
            return count;
        }
        // The task's removal has no blocking wait; this polls the kernel's
        // bookkeeping, it does not order our own threads.
        std::thread::sleep(Duration::from_millis(1));
    }
}
