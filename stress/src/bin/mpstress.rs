//! `mpstress`: three processes call each other under load and faults, and
//! every answer is checked.
//!
//! `cargo run --release -p stress --bin mpstress -- --duration 60s [--kill] [--threads N]`
//!
//! Process A (this one) spawns B and C (itself again, as children serving the
//! test kit's `Probe`). Application threads in A make randomized call trees:
//!
//! - plain calls, whose answers carry a unique id and must come back once, to
//!   the caller, computed on the caller's own worker (its thread id checked);
//! - recursions to depth 8 through B or C (`recurse`: the peer's worker calls
//!   our closure, which runs on our thread, which calls the peer again...),
//!   with a reentrant lock held across every call, and at random levels a
//!   call forwarded to the *other* child from inside the callback;
//! - closures stored in a child and called later from its worker and from a
//!   thread of it that serves no call;
//! - threads that exit mid-run, replaced by new ones.
//!
//! With `--kill`, a killer thread SIGKILLs B or C at random moments and
//! respawns it; callers must see `Disconnected` (never a hang) and move on
//! to the new child. A watchdog that sees no progress for 10 s prints every
//! thread and what it waits for, and exits non-zero. At the end one JSON
//! line reports what happened.

use std::cell::Cell;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use mp_testkit::peer::Peer;
use mp_testkit::probe::{IntFn, Probe};
use mp_testkit::probe_server::tid;
use multiprocess_thread_map::Error;
use parking_lot::ReentrantMutex;
use stress::run::resources;

/// One child, replaced when it is killed.
struct Child {
    generation: u64,
    probe: Arc<dyn Probe>,
    peer: Mutex<Option<Peer>>,
}

/// The two children, B and C.
struct Children {
    slots: [RwLock<Arc<Child>>; 2],
    generations: AtomicU64,
}

fn spawn_child(generation: u64) -> Result<Arc<Child>, Error> {
    let peer = Peer::child(&std::env::current_exe()?)?;
    let probe = peer.init.make_probe()?;
    Ok(Arc::new(Child {
        generation,
        probe,
        peer: Mutex::new(Some(peer)),
    }))
}

impl Children {
    fn start() -> Result<Self, Error> {
        Ok(Self {
            slots: [RwLock::new(spawn_child(0)?), RwLock::new(spawn_child(1)?)],
            generations: AtomicU64::new(2),
        })
    }

    fn spawn(&self) -> Result<Arc<Child>, Error> {
        spawn_child(self.generations.fetch_add(1, Ordering::SeqCst))
    }

    fn get(&self, which: usize) -> Arc<Child> {
        self.slots[which]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What the run counts.
#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    callbacks: AtomicU64,
    max_depth: AtomicU64,
    kills: AtomicU64,
    disconnected: AtomicU64,
    misrouted: AtomicU64,
    lost: AtomicU64,
    threads_started: AtomicU64,
}

fn stats() -> &'static Stats {
    static STATS: OnceLock<Stats> = OnceLock::new();
    STATS.get_or_init(Stats::default)
}

/// A small deterministic generator per thread (xorshift), seeded from the
/// thread's number, so a run's shape is reproducible with `--seed`.
struct Rng(Cell<u64>);

impl Rng {
    fn next(&self, below: u64) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x % below.max(1)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids (and tokens) are in `0..ID_RANGE`.
const ID_RANGE: i32 = 1_000_000;

fn unique_id() -> i32 {
    (NEXT_ID.fetch_add(1, Ordering::Relaxed) % ID_RANGE as u64) as i32
}

/// Records a failed check.
fn misrouted(what: &str) {
    stats().misrouted.fetch_add(1, Ordering::SeqCst);
    eprintln!("mpstress: MISROUTED: {what}");
}

/// An outcome of one operation: `Err` only for `Disconnected`, which with
/// `--kill` is expected; anything else is a failed check.
fn expect_ok<T>(result: Result<T, Error>, what: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(Error::Disconnected(_)) => {
            stats().disconnected.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => {
            misrouted(&format!("{what}: unexpected error {e}"));
            None
        }
    }
}

/// A plain call: the answer must carry our id and come from our worker.
fn plain_call(child: &Child, workers: &mut [(u64, i64); 2], which: usize) {
    let id = unique_id();
    let Some(sum) = expect_ok(child.probe.add(id, 1), "add") else {
        return;
    };
    stats().calls.fetch_add(1, Ordering::Relaxed);
    if sum != id + 1 {
        stats().lost.fetch_add(1, Ordering::SeqCst);
        misrouted(&format!("add({id}, 1) answered {sum}"));
    }
    let Some(me) = expect_ok(child.probe.whoami(), "whoami") else {
        return;
    };
    stats().calls.fetch_add(1, Ordering::Relaxed);
    let (generation, worker) = &mut workers[which];
    if *generation != child.generation {
        *generation = child.generation;
        *worker = me.tid;
    } else if *worker != me.tid {
        misrouted(&format!(
            "whoami moved from worker {} to {}",
            worker, me.tid
        ));
    }
}

/// `f(n)` for `recurse`: checks it runs on `caller` with the lock still
/// ours, sometimes forwards a call to the other child, then recurses.
fn level(
    child: Arc<Child>,
    other: Arc<Child>,
    caller: i64,
    lock: Arc<ReentrantMutex<()>>,
    forward_at: i32,
) -> IntFn {
    Arc::new(move |n| {
        stats().callbacks.fetch_add(1, Ordering::Relaxed);
        if tid() != caller {
            misrouted(&format!(
                "callback level {n} ran on {} instead of {caller}",
                tid()
            ));
        }
        // Held (again: the caller holds it too) across the call below.
        let Some(_held) = lock.try_lock() else {
            misrouted("the caller's reentrant lock was not ours inside the callback");
            return Ok(-1);
        };
        if n == forward_at {
            let id = unique_id();
            if let Some(sum) = expect_ok(other.probe.add(id, 2), "forwarded add") {
                stats().calls.fetch_add(1, Ordering::Relaxed);
                if sum != id + 2 {
                    misrouted(&format!("forwarded add({id}, 2) answered {sum}"));
                }
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let next = level(
            child.clone(),
            other.clone(),
            caller,
            lock.clone(),
            forward_at,
        );
        match child.probe.recurse(next, n - 1) {
            Ok(out) => {
                stats().calls.fetch_add(1, Ordering::Relaxed);
                Ok(out.result.wrapping_add(1))
            }
            Err(Error::Disconnected(_)) => {
                stats().disconnected.fetch_add(1, Ordering::Relaxed);
                Ok(-1)
            }
            Err(e) => {
                misrouted(&format!("nested recurse failed: {e}"));
                Ok(-1)
            }
        }
    })
}

/// A recursion `depth` deep through one child.
fn call_tree(children: &Children, rng: &Rng, which: usize) {
    let child = children.get(which);
    let other = children.get(1 - which);
    let depth = 1 + rng.next(8) as i32;
    let forward_at = rng.next(depth as u64 + 1) as i32;
    let lock = Arc::new(ReentrantMutex::new(()));
    let held = lock.lock();
    let f = level(child.clone(), other, tid(), lock.clone(), forward_at);
    let Some(result) = expect_ok(
        child.probe.recurse(f, depth).map(|out| out.result),
        "recurse",
    ) else {
        return;
    };
    stats().calls.fetch_add(1, Ordering::Relaxed);
    stats().max_depth.fetch_max(depth as u64, Ordering::Relaxed);
    if result != depth && result >= 0 {
        misrouted(&format!("recurse({depth}) answered {result}"));
    }
    drop(held);
}

/// A closure stored in the child, called later from its worker and from a
/// thread of it that serves no call.
fn stored_callback(child: &Child, rng: &Rng) {
    let me = tid();
    let token = unique_id();
    let f: IntFn = Arc::new(move |x| {
        stats().callbacks.fetch_add(1, Ordering::Relaxed);
        Ok(x.wrapping_add(token))
    });
    if expect_ok(child.probe.save_fn(Some(f)), "saveFn").is_none() {
        return;
    }
    let x = rng.next(1000) as i32;
    if let Some(result) = expect_ok(child.probe.call_saved(x), "callSaved") {
        stats().calls.fetch_add(1, Ordering::Relaxed);
        // Another thread may have saved its closure in between: the answer
        // is then someone else's token, which is not a routing error; but it
        // must be `x` plus some token. Only the callSavedFromNotifier path
        // below is checked for the thread.
        check_saved_answer("callSaved", x, result);
    }
    if rng.next(4) == 0
        && let Some((result, notifier)) = expect_ok(
            child
                .probe
                .call_saved_from_notifier(x)
                .map(|out| (out.result, out.tid)),
            "callSavedFromNotifier",
        )
    {
        stats().calls.fetch_add(1, Ordering::Relaxed);
        check_saved_answer("callSavedFromNotifier", x, result);
        if notifier == me {
            misrouted("a notifier thread of the child has our thread id");
        }
    }
}

/// Checks that a saved closure's answer to `x` is `x` plus a token: what
/// every closure [`stored_callback`] saves computes.
fn check_saved_answer(what: &str, x: i32, result: i32) {
    let token = result.wrapping_sub(x);
    if !(0..ID_RANGE).contains(&token) {
        misrouted(&format!(
            "{what}({x}) answered {result}, not {x} plus a token"
        ));
    }
}

/// One application thread: random operations until `ops` are done or the
/// run ends, then it exits (and is replaced).
fn application_thread(children: Arc<Children>, seed: u64, ops: u64, stop: Arc<AtomicBool>) {
    let rng = Rng(Cell::new(seed | 1));
    let mut workers = [(u64::MAX, 0i64); 2];
    for _ in 0..ops {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let which = rng.next(2) as usize;
        match rng.next(10) {
            0..=4 => plain_call(&children.get(which), &mut workers, which),
            5..=8 => call_tree(&children, &rng, which),
            _ => stored_callback(&children.get(which), &rng),
        }
    }
}

/// Kills B or C at random moments and puts a new child in its place.
fn killer(children: Arc<Children>, stopped: mpsc::Receiver<()>) {
    let rng = Rng(Cell::new(0x9e37_79b9_7f4a_7c15));
    loop {
        let pause = Duration::from_millis(300 + rng.next(1200));
        // Waits for the stop signal, at most `pause`: the pause is the
        // random moment, not a synchronisation.
        match stopped.recv_timeout(pause) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let which = rng.next(2) as usize;
        let old = children.get(which);
        if let Some(mut peer) = old.peer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            peer.kill_server();
            stats().kills.fetch_add(1, Ordering::SeqCst);
        }
        match children.spawn() {
            Ok(new) => {
                *children.slots[which]
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = new
            }
            Err(e) => eprintln!("mpstress: respawning a child failed: {e}"),
        }
    }
}

/// Aborts the run with a dump of every thread if the call count stops
/// moving for `limit`; the JSON line it prints then counts from `started`.
fn watchdog(limit: Duration, started: Instant, stopped: mpsc::Receiver<()>) {
    let mut last = (stats().calls.load(Ordering::SeqCst), Instant::now());
    loop {
        match stopped.recv_timeout(Duration::from_secs(1)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let calls = stats().calls.load(Ordering::SeqCst);
        if calls != last.0 {
            last = (calls, Instant::now());
            continue;
        }
        if last.1.elapsed() >= limit {
            // Our threads, then those of every live child (`Peer::child` registers them).
            let report = format!(
                "mpstress: HANG: no progress for {limit:?}; threads, ours then each child's:\n{}",
                mp_testkit::watchdog::dump_all()
            );
            eprintln!("{report}");
            // The threads are still running: no leak can be counted.
            println!("{}", summary(started.elapsed(), 1, 0, peak_rss_kib()));
            std::process::exit(2);
        }
    }
}

/// Threads of this process; 0 if `/proc` cannot be read.
fn os_threads() -> usize {
    resources::threads(std::process::id()).unwrap_or(0)
}

/// Peak resident memory of this process (`VmHWM`), KiB; 0 if `/proc` cannot be read.
fn peak_rss_kib() -> u64 {
    resources::memory(std::process::id()).map_or(0, |m| m.peak_kib)
}

fn summary(elapsed: Duration, hangs: u64, leaked: i64, peak: u64) -> String {
    let s = stats();
    format!(
        "{{\"duration_s\": {:.1}, \"calls\": {}, \"max_depth\": {}, \"callbacks\": {}, \"kills\": {}, \"disconnected\": {}, \"threads\": {}, \"hangs\": {}, \"lost\": {}, \"misrouted\": {}, \"leaked_threads\": {}, \"peak_rss_kib\": {}}}",
        elapsed.as_secs_f64(),
        s.calls.load(Ordering::SeqCst),
        s.max_depth.load(Ordering::SeqCst),
        s.callbacks.load(Ordering::SeqCst),
        s.kills.load(Ordering::SeqCst),
        s.disconnected.load(Ordering::SeqCst),
        s.threads_started.load(Ordering::SeqCst),
        hangs,
        s.lost.load(Ordering::SeqCst),
        s.misrouted.load(Ordering::SeqCst),
        leaked,
        peak,
    )
}

struct Options {
    duration: Duration,
    kill: bool,
    threads: usize,
    seed: u64,
}

fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "ms" => Some(Duration::from_millis(n)),
        _ => None,
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_secs(60),
        kill: false,
        threads: 8,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--duration" => {
                let text = value("--duration")?;
                options.duration =
                    parse_duration(&text).ok_or_else(|| format!("bad duration {text}"))?;
            }
            "--kill" => options.kill = true,
            "--threads" => {
                options.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--seed" => {
                options.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--help" | "-h" => {
                return Err(
                    "usage: mpstress [--duration 60s|10m] [--kill] [--threads N] [--seed N]"
                        .to_string(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    // Started with -ipcfd=N: this is B or C.
    match multiprocess_thread_map::take_ipc_fd() {
        Ok(Some(stream)) => {
            return match mp_testkit::serve_child(stream) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mpstress child: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("mpstress: {e}");
            return ExitCode::FAILURE;
        }
    }
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    multiprocess::install_tracing();
    let threads_at_start = os_threads();
    let started = Instant::now();
    let result = run(&options, started);
    let elapsed = started.elapsed();
    // Everything is dropped and joined by now: the loop threads, the workers
    // the children made here for their notifier threads, the children. (A
    // thread just joined may still be listed for a moment: see
    // `os_thread_count_settled`.)
    let threads_at_end = mp_testkit::probe_server::os_thread_count_settled(
        threads_at_start as u32,
        Duration::from_secs(5),
    );
    let leaked = i64::from(threads_at_end) - threads_at_start as i64;
    println!("{}", summary(elapsed, 0, leaked, peak_rss_kib()));
    let s = stats();
    if let Err(e) = result {
        eprintln!("mpstress: {e}");
        return ExitCode::FAILURE;
    }
    if s.misrouted.load(Ordering::SeqCst) > 0 || s.lost.load(Ordering::SeqCst) > 0 || leaked != 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The run that began at `started`.
fn run(options: &Options, started: Instant) -> Result<(), Error> {
    let children = Arc::new(Children::start()?);
    let stop = Arc::new(AtomicBool::new(false));
    let (stop_watchdog, watchdog_stopped) = mpsc::channel();
    let watchdog_thread = thread::Builder::new()
        .name("mpstress-watchdog".into())
        .spawn(move || watchdog(Duration::from_secs(10), started, watchdog_stopped))?;
    let (stop_killer, killer_stopped) = mpsc::channel();
    let killer_thread = if options.kill {
        let children = children.clone();
        Some(
            thread::Builder::new()
                .name("mpstress-killer".into())
                .spawn(move || killer(children, killer_stopped))?,
        )
    } else {
        None
    };
    let deadline = Instant::now() + options.duration;
    let mut seed = options.seed;
    let mut running: Vec<thread::JoinHandle<()>> = Vec::new();
    let (finished, finishing) = mpsc::channel::<()>();
    loop {
        // Keep `threads` application threads running; each exits after a
        // random number of operations and is replaced.
        running.retain(|t| !t.is_finished());
        while running.len() < options.threads {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let children = children.clone();
            let stop = stop.clone();
            let finished = finished.clone();
            let ops = 20 + (seed >> 33) % 200;
            let n = stats().threads_started.fetch_add(1, Ordering::Relaxed);
            running.push(
                thread::Builder::new()
                    .name(format!("app-{n}"))
                    .spawn(move || {
                        application_thread(children, seed, ops, stop);
                        let _ = finished.send(());
                    })?,
            );
        }
        // Sleep until a thread finishes or the run is over.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = finishing.recv_timeout(left);
    }
    stop.store(true, Ordering::SeqCst);
    let _ = stop_killer.send(());
    if let Some(killer) = killer_thread {
        let _ = killer.join();
    }
    for thread in running {
        let _ = thread.join();
    }
    let _ = stop_watchdog.send(());
    let _ = watchdog_thread.join();
    // Release the children (they exit when their connection closes).
    for which in 0..2 {
        let child = children.get(which);
        let peer = child.peer.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(child);
        if let Some(mut peer) = peer {
            peer.connection.disconnect();
            peer.wait_server_exit(Duration::from_secs(10));
        }
    }
    drop(children);
    Ok(())
}
