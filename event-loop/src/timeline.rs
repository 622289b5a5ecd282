//! Timestamps at the steps of a call, to see where its time goes.
//!
//! Built only with the `timeline` feature (`cargo build --release -p stress
//! --features timeline`); without it [`mark`] is an empty inline function
//! and costs nothing. With it, a process started with
//! `MULTIPROCESS_TIMELINE=DIR` records a [`Step`] and a `CLOCK_MONOTONIC`
//! timestamp (one clock for every process on the machine) each time a
//! thread passes one, and writes them to `DIR/timeline-PID.txt` as it
//! exits. `mptimeline DIR` (in `stress`) merges the files of a parent and
//! its child and prints the median time of each step of a call.
//!
//! A mark costs a clock read and an atomic add (about 50 ns here), so
//! timed runs are a little slower than untimed ones; compare timelines
//! with timelines. Only the first 2²¹ marks of a process are kept.

/// A step of a call, in the order a call passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// A thread enters a blocking call (`RemoteObject::call`).
    CallEntry = 1,
    /// The loop picks the call up from the thread.
    CallPickedUp = 2,
    /// The loop has built and sent the request (into the write queue).
    RequestBuilt = 3,
    /// The loop has the response (the call's future is done).
    ResponseDone = 4,
    /// The calling thread has the reply.
    CallerWoken = 5,
    /// A request's server method starts on the loop (`ServeContext::run`).
    ServeStart = 10,
    /// The thread named by the request's `Context` is found.
    ThreadResolved = 11,
    /// The loop posts the request's job to that thread.
    PostedToThread = 12,
    /// The job starts on the thread.
    JobStart = 13,
    /// The job has returned; its outcome goes to the loop.
    JobEnd = 14,
    /// The loop has the job's outcome.
    OutcomeOnLoop = 15,
    /// The write queue starts writing what is queued.
    FlushStart = 20,
    /// The write queue has flushed (the `sendto` returned).
    FlushDone = 21,
    /// A read from a connection's socket returned bytes.
    Read = 22,
    /// A capability a request carried is adopted (`ServeContext::adopt`).
    Adopt = 30,
    /// A `RemoteObject` is dropped (its release is posted to the loop).
    RemoteObjectDropped = 31,
    /// A value goes to the cleanup thread (`drop_off_loop` on the loop).
    DroppedOffLoop = 32,
}

impl Step {
    /// Every step, for readers of the files.
    pub const ALL: [Step; 17] = [
        Step::CallEntry,
        Step::CallPickedUp,
        Step::RequestBuilt,
        Step::ResponseDone,
        Step::CallerWoken,
        Step::ServeStart,
        Step::ThreadResolved,
        Step::PostedToThread,
        Step::JobStart,
        Step::JobEnd,
        Step::OutcomeOnLoop,
        Step::FlushStart,
        Step::FlushDone,
        Step::Read,
        Step::Adopt,
        Step::RemoteObjectDropped,
        Step::DroppedOffLoop,
    ];

    /// The step recorded as `code` in a file.
    pub fn from_code(code: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|step| *step as u8 == code)
    }

    /// What the step is, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Step::CallEntry => "thread enters the call",
            Step::CallPickedUp => "loop picks the call up",
            Step::RequestBuilt => "loop has built the request",
            Step::ResponseDone => "loop has the response",
            Step::CallerWoken => "caller has the reply",
            Step::ServeStart => "server method starts",
            Step::ThreadResolved => "Context.thread found",
            Step::PostedToThread => "loop posts the job",
            Step::JobStart => "job starts on its thread",
            Step::JobEnd => "job ends",
            Step::OutcomeOnLoop => "loop has the outcome",
            Step::FlushStart => "write queue starts writing",
            Step::FlushDone => "write queue flushed",
            Step::Read => "socket read returns bytes",
            Step::Adopt => "capability adopted",
            Step::RemoteObjectDropped => "RemoteObject dropped",
            Step::DroppedOffLoop => "value sent to cleanup",
        }
    }
}

/// The environment variable naming the directory the files go to.
pub const TIMELINE_ENV: &str = "MULTIPROCESS_TIMELINE";

/// Records that the calling thread passes `step` (with the `timeline`
/// feature and [`TIMELINE_ENV`] set; otherwise nothing).
#[inline(always)]
pub fn mark(step: Step) {
    #[cfg(feature = "timeline")]
    recorder::mark(step);
    #[cfg(not(feature = "timeline"))]
    let _ = step;
}

#[cfg(feature = "timeline")]
mod recorder {
    // sync-facade: allow (instrumentation outside the modelled code: plain atomics in a static)
    use std::sync::OnceLock;
    // sync-facade: allow (as above)
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use super::{Step, TIMELINE_ENV};

    const CAPACITY: usize = 1 << 21;

    /// Each mark: the timestamp in nanoseconds, shifted left 8 bits, and
    /// the step's code in the low 8.
    static MARKS: [AtomicU64; CAPACITY] = [const { AtomicU64::new(0) }; CAPACITY];
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static DIR: OnceLock<Option<String>> = OnceLock::new();

    fn dir() -> &'static Option<String> {
        DIR.get_or_init(|| {
            let dir = std::env::var(TIMELINE_ENV).ok()?;
            // SAFETY: `write_file` is an `extern "C" fn()` that touches only
            // statics, so it may run at any point of the exit.
            if unsafe { libc::atexit(write_file) } != 0 {
                return None;
            }
            Some(dir)
        })
    }

    pub(super) fn mark(step: Step) {
        if dir().is_none() {
            return;
        }
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = (now.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(now.tv_nsec as u64);
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = MARKS.get(index) {
            slot.store((nanos << 8) | step as u64, Ordering::Relaxed);
        }
    }

    /// Writes `DIR/timeline-PID.txt`: a first line `pid PID ppid PPID`,
    /// then `NANOS STEP` per mark, in the order they were taken.
    extern "C" fn write_file() {
        use std::io::Write;
        let Some(dir) = DIR.get().and_then(|dir| dir.as_deref()) else {
            return;
        };
        let count = NEXT.load(Ordering::Relaxed).min(CAPACITY);
        let path = format!("{dir}/timeline-{}.txt", std::process::id());
        let Ok(file) = std::fs::File::create(&path) else {
            return;
        };
        let mut out = std::io::BufWriter::new(file);
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() };
        let _ = writeln!(out, "pid {} ppid {ppid}", std::process::id());
        for mark in &MARKS[..count] {
            let mark = mark.load(Ordering::Relaxed);
            let _ = writeln!(out, "{} {}", mark >> 8, mark & 0xff);
        }
        let _ = out.flush();
    }
}
