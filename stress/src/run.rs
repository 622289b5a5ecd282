//! The measurement loop and its output.
//!
//! Each scenario gets its own child process. Calls run in interleaved rounds: a round of the
//! first scenario, then a round of the next, and so on until each has made its calls, so that
//! noise on the machine (another build, a CPU frequency change) hits every scenario alike. The
//! warm-up is interleaved the same way and not recorded. A scenario that makes fewer calls than
//! `--calls` (its [`Plan`]) makes proportionally smaller rounds, so it is spread over as many
//! rounds as the others; one whose plan says it cannot be split makes all its calls in one.
//!
//! Around each measured round we read the context-switch counters of every thread of both
//! processes (ours and that scenario's child). The other scenarios' threads are blocked
//! meanwhile, so they add nothing. Reading `/proc` happens outside the timed window.
//!
//! A round is one [`Client::run`]: for most scenarios the samples are timed here around each
//! call; a scenario whose calls run on another thread (`capnp`) times them itself and hands back
//! the round's samples, and a team of threads (`threads`) times each thread's calls on that
//! thread. Wall time and context switches are counted around the whole round either way.
//!
//! For a scenario that asks for it (`scale`), the child's threads and memory are read before
//! its first measured round and after its last ([`Resources`]), outside the timed window too;
//! each time, first waiting (bounded) for the child's thread count to come back down to what it
//! was once set up, as workers are released asynchronously.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::child::ChildProcess;
use crate::cpu;
use crate::ctxsw;
use crate::scenarios::{Client, Plan, Scenario};
use crate::stats::{self, Summary};

pub mod idle;
pub mod plot;
pub mod resources;

pub use resources::Resources;

/// Measured calls per scenario when `--calls` is not given (scenarios whose calls cost much
/// more plan fewer: see [`Scenario::plan`]).
pub const DEFAULT_CALLS: usize = 20_000;

/// Calls per scenario per round when `--round` is not given.
pub const DEFAULT_ROUND: usize = 2_000;

/// How many calls to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Measured calls per scenario; `None`: each scenario's default ([`DEFAULT_CALLS`] for
    /// most).
    pub calls: Option<usize>,
    /// Unmeasured calls per scenario before measuring; `None`: a tenth of each scenario's
    /// default calls.
    pub warmup: Option<usize>,
    /// Calls per scenario per round when several scenarios are interleaved (for a scenario
    /// making `--calls` calls; others scale it to their count). A single scenario runs in one
    /// round.
    pub round: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            calls: None,
            warmup: None,
            round: DEFAULT_ROUND,
        }
    }
}

/// The result of one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Application threads making calls.
    pub threads: usize,
    /// Per-call latencies.
    pub summary: Summary,
    /// Total time spent in measured calls (the sum of the measured rounds).
    pub wall: Duration,
    /// Context switches of both processes during the measured calls; `None` if `/proc` could
    /// not be read, or if the scenario's threads exit while measured.
    pub ctx_switches: Option<u64>,
    /// User plus system CPU time of both processes (all their threads) during the measured
    /// calls; `None` if `/proc` could not be read.
    pub cpu: Option<Duration>,
    /// Waiter sleeps of both processes during the measured calls
    /// ([`multiprocess_event_loop::waiter::sleeps`]); `None` if the child did not report its
    /// count.
    pub sleeps: Option<u64>,
    /// Bytes moved per call, both ways, for a scenario that moves a payload.
    pub bytes_per_call: Option<u64>,
    /// The child's threads and memory around the measured calls, for a scenario that watches
    /// them (the `SCENARIO-resources` JSON line).
    pub resources: Option<Resources>,
}

impl Report {
    /// Measured calls per second of wall time.
    pub fn calls_per_s(&self) -> f64 {
        count_f64(self.summary.count) / self.wall.as_secs_f64()
    }

    /// Context switches (both processes, all threads) per call.
    pub fn ctx_switches_per_call(&self) -> Option<f64> {
        self.ctx_switches
            .map(|n| count_f64(usize::try_from(n).unwrap_or(usize::MAX)))
            .map(|n| n / count_f64(self.summary.count))
    }

    /// CPU time (user plus system, both processes) per call, in microseconds.
    pub fn cpu_us_per_call(&self) -> Option<f64> {
        self.cpu
            .map(micros)
            .map(|us| us / count_f64(self.summary.count))
    }

    /// Waiter sleeps (both processes) per call.
    pub fn sleeps_per_call(&self) -> Option<f64> {
        self.sleeps
            .map(|n| count_f64(usize::try_from(n).unwrap_or(usize::MAX)))
            .map(|n| n / count_f64(self.summary.count))
    }

    /// Throughput in MB/s (10^6 bytes, both ways together), for a scenario that moves a
    /// payload.
    pub fn megabytes_per_s(&self) -> Option<f64> {
        self.bytes_per_call
            .map(|b| count_f64(usize::try_from(b).unwrap_or(usize::MAX)) * self.calls_per_s() / 1e6)
    }

    /// The name and, for scenarios with several threads or variants, the thread count: how
    /// the table and the plot label it.
    pub fn label(&self) -> String {
        if self.threads == 1 && self.scenario != "threads" {
            self.scenario.to_owned()
        } else {
            format!("{} x{}", self.scenario, self.threads)
        }
    }

    /// One JSON object, on one line, without a newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use stress::{Report, stats::Summary};
    ///
    /// let us = Duration::from_micros;
    /// let report = Report {
    ///     scenario: "raw",
    ///     threads: 1,
    ///     summary: Summary { count: 4, min: us(1), median: us(2), p99: us(8), max: us(8) },
    ///     wall: us(20),
    ///     ctx_switches: Some(10),
    ///     cpu: Some(us(30)),
    ///     sleeps: Some(6),
    ///     bytes_per_call: None,
    ///     resources: None,
    /// };
    /// assert_eq!(
    ///     report.to_json(),
    ///     r#"{"scenario": "raw", "calls": 4, "threads": 1, "median_us": 2.000, "p99_us": 8.000, "calls_per_s": 200000.0, "ctx_switches_per_call": 2.500, "cpu_us_per_call": 7.500, "sleeps_per_call": 1.500}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        format!(
            "{{\"scenario\": {}, \"calls\": {}, \"threads\": {}, \"median_us\": {}, \"p99_us\": {}, \"calls_per_s\": {}, \"ctx_switches_per_call\": {}, \"cpu_us_per_call\": {}, \"sleeps_per_call\": {}}}",
            json_string(self.scenario),
            self.summary.count,
            self.threads,
            json_number(Some(micros(self.summary.median)), 3),
            json_number(Some(micros(self.summary.p99)), 3),
            json_number(Some(self.calls_per_s()), 1),
            json_number(self.ctx_switches_per_call(), 3),
            json_number(self.cpu_us_per_call(), 3),
            json_number(self.sleeps_per_call(), 3),
        )
    }
}

/// Runs `scenarios`, each against its own child started as `exe --child NAME --fd N`.
///
/// # Errors
///
/// The first error of spawning a child, setting up a client or making a call; or a child that
/// does not exit cleanly at the end.
pub fn run(
    exe: &Path,
    scenarios: &mut [Box<dyn Scenario>],
    opts: &Options,
) -> io::Result<Vec<Report>> {
    let interleaved = scenarios.len() > 1;
    let mut runs = Vec::with_capacity(scenarios.len());
    for scenario in scenarios.iter_mut() {
        let plan = scenario.plan(opts);
        let round = round_of(&plan, opts, interleaved);
        let child = ChildProcess::spawn(exe, scenario.name())?;
        let client = scenario.client(child.connection()?)?;
        // The child with the connection up, before any warm-up.
        let baseline_threads = if scenario.watch_resources() {
            resources::threads(child.pid()).ok()
        } else {
            None
        };
        runs.push(Run {
            name: scenario.name(),
            threads: scenario.threads(),
            bytes_per_call: scenario.bytes_per_call(),
            plan,
            round,
            pids: [std::process::id(), child.pid()],
            child,
            client,
            samples: Vec::with_capacity(plan.calls),
            wall: Duration::ZERO,
            ctx_switches: scenario.counts_switches().then_some(0),
            cpu: Some(Duration::ZERO),
            sleeps: Some(0),
            baseline_threads,
            before: None,
            resources: None,
        });
    }

    let mut discarded = Vec::new();
    let mut warmed = vec![0; runs.len()];
    loop {
        let mut busy = false;
        for (run, warmed) in runs.iter_mut().zip(&mut warmed) {
            let n = run.round.min(run.plan.warmup - *warmed);
            if n > 0 {
                discarded.clear();
                run.client.run(n, &mut discarded)?;
                *warmed += n;
                busy = true;
            }
        }
        if !busy {
            break;
        }
    }
    for run in &mut runs {
        if let Some(baseline) = run.baseline_threads {
            run.before =
                resources::Before::take(run.pids[1], baseline, resources::SETTLE_LIMIT).ok();
        }
    }
    loop {
        let mut busy = false;
        for run in &mut runs {
            let n = run.round.min(run.plan.calls - run.samples.len());
            if n > 0 {
                run.measure(n)?;
                busy = true;
                if run.samples.len() == run.plan.calls {
                    // At once, so that releasing its threads does not overlap the next
                    // scenario's round.
                    if let Some(before) = run.before.take() {
                        run.resources = before.after(run.pids[1], resources::SETTLE_LIMIT).ok();
                    }
                }
            }
        }
        if !busy {
            break;
        }
    }

    let mut reports = Vec::with_capacity(runs.len());
    for mut run in runs {
        let summary = stats::summarize(&mut run.samples)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no calls were measured"))?;
        // The client first: it may own threads using the connection.
        drop(run.client);
        let status = run.child.finish()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "the {} child exited with {status}",
                run.name
            )));
        }
        reports.push(Report {
            scenario: run.name,
            threads: run.threads,
            summary,
            wall: run.wall,
            ctx_switches: run.ctx_switches,
            cpu: run.cpu,
            sleeps: run.sleeps,
            bytes_per_call: run.bytes_per_call,
            resources: run.resources,
        });
    }
    Ok(reports)
}

/// Calls per round for a scenario with `plan`: all of them alone or unsplittable; otherwise
/// `opts.round` scaled by the scenario's calls over `--calls`, so every scenario takes about
/// as many rounds.
fn round_of(plan: &Plan, opts: &Options, interleaved: bool) -> usize {
    if !interleaved || !plan.split {
        return plan.calls.max(plan.warmup).max(1);
    }
    let base = opts.calls.unwrap_or(DEFAULT_CALLS).max(1) as u128;
    let scaled = (plan.calls as u128 * opts.round.max(1) as u128).div_ceil(base);
    usize::try_from(scaled).unwrap_or(usize::MAX).max(1)
}

/// A scenario in progress.
struct Run {
    name: &'static str,
    threads: usize,
    bytes_per_call: Option<u64>,
    plan: Plan,
    /// Calls per round.
    round: usize,
    pids: [u32; 2],
    child: ChildProcess,
    client: Client,
    samples: Vec<Duration>,
    wall: Duration,
    /// `None` from the start for a scenario whose switches cannot be counted.
    ctx_switches: Option<u64>,
    /// `None` once a reading of `/proc/PID/stat` failed.
    cpu: Option<Duration>,
    /// `None` once the child did not report its sleeps.
    sleeps: Option<u64>,
    /// The child's threads once set up, for a scenario that watches its [`Resources`].
    baseline_threads: Option<usize>,
    before: Option<resources::Before>,
    resources: Option<Resources>,
}

impl Run {
    /// Makes and records `n` calls.
    fn measure(&mut self, n: usize) -> io::Result<()> {
        let counting = self.ctx_switches.is_some();
        let before = counting.then(|| ctxsw::switches(&self.pids).ok()).flatten();
        let sleeps_before = self.both_sleeps();
        let cpu_before = cpu::cpu(&self.pids).ok();
        let start = Instant::now();
        self.client.run(n, &mut self.samples)?;
        self.wall += start.elapsed();
        let cpu_after = cpu::cpu(&self.pids).ok();
        let sleeps_after = self.both_sleeps();
        self.sleeps = match (self.sleeps, sleeps_before, sleeps_after) {
            (Some(total), Some(before), Some(after)) => Some(total + after.saturating_sub(before)),
            _ => None,
        };
        let after = counting.then(|| ctxsw::switches(&self.pids).ok()).flatten();
        self.cpu = match (self.cpu, cpu_before, cpu_after) {
            (Some(total), Some(before), Some(after)) => Some(total + after.saturating_sub(before)),
            _ => None,
        };
        self.ctx_switches = match (self.ctx_switches, before, after) {
            (Some(total), Some(before), Some(after)) => Some(total + after.saturating_sub(before)),
            _ => None,
        };
        Ok(())
    }
}

impl Run {
    /// Waiter sleeps so far of this process and the child together.
    fn both_sleeps(&mut self) -> Option<u64> {
        let child = self.child.sleeps().ok()?;
        Some(multiprocess_event_loop::waiter::sleeps() + child)
    }
}

/// A human-readable table of `reports`, with each median relative to `raw`'s if it was run;
/// then, if any scenario moved a payload or watched the child's resources, a line for each:
/// throughput in MB/s, and threads and memory.
pub fn table(reports: &[Report]) -> String {
    let baseline = reports
        .iter()
        .find(|r| r.scenario == "raw")
        .map(|r| micros(r.summary.median));
    let mut out = format!(
        "{:<10} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>9}\n",
        "scenario",
        "calls",
        "threads",
        "min_us",
        "median_us",
        "p99_us",
        "calls/s",
        "ctxsw/call",
        "vs raw"
    );
    for r in reports {
        let ctx = r
            .ctx_switches_per_call()
            .map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}"));
        let ratio = baseline.filter(|b| *b > 0.0).map_or_else(String::new, |b| {
            format!("{:.2}x", micros(r.summary.median) / b)
        });
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>7} {:>10.2} {:>10.2} {:>10.2} {:>10.0} {:>12} {:>9}",
            r.scenario,
            r.summary.count,
            r.threads,
            micros(r.summary.min),
            micros(r.summary.median),
            micros(r.summary.p99),
            r.calls_per_s(),
            ctx,
            ratio,
        );
    }
    let mut notes = String::new();
    for r in reports {
        if let Some(mb) = r.megabytes_per_s() {
            let _ = writeln!(
                notes,
                "{}: {mb:.1} MB/s ({} bytes per call, both ways)",
                r.label(),
                r.bytes_per_call.unwrap_or(0)
            );
        }
        if let Some(resources) = &r.resources {
            let _ = writeln!(notes, "{}", resources.describe(r.scenario));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Counts are far below 2^53, where `f64` is exact.
#[allow(clippy::cast_precision_loss)]
fn count_f64(n: usize) -> f64 {
    n as f64
}

/// A JSON number with `decimals` places, or `null` for `None`, NaN and infinities (which JSON
/// cannot represent).
pub(crate) fn json_number(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "null".to_owned(),
    }
}

/// A JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(count: usize, wall: Duration, ctx: Option<u64>) -> Report {
        let us = Duration::from_micros;
        Report {
            scenario: "raw",
            threads: 1,
            summary: Summary {
                count,
                min: us(1),
                median: us(2),
                p99: us(3),
                max: us(4),
            },
            wall,
            ctx_switches: ctx,
            cpu: None,
            sleeps: None,
            bytes_per_call: None,
            resources: None,
        }
    }

    #[test]
    fn json_has_nulls_for_unknowns() {
        let json = report(10, Duration::ZERO, None).to_json();
        assert!(json.contains("\"calls_per_s\": null"), "{json}");
        assert!(json.contains("\"ctx_switches_per_call\": null"), "{json}");
        assert!(json.contains("\"cpu_us_per_call\": null"), "{json}");
        assert!(json.contains("\"sleeps_per_call\": null"), "{json}");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn table_compares_with_raw() {
        let mut chain = report(10, Duration::from_micros(100), Some(40));
        chain.scenario = "chain";
        chain.summary.median = Duration::from_micros(6);
        let table = table(&[report(10, Duration::from_micros(20), Some(40)), chain]);
        assert!(table.contains("1.00x"), "{table}");
        assert!(table.contains("3.00x"), "{table}");
        assert!(!table.contains("MB/s"), "{table}");
    }

    #[test]
    fn table_notes_throughput_and_resources() {
        let mut payload = report(100, Duration::from_secs(1), None);
        payload.scenario = "payload";
        payload.bytes_per_call = Some(2_000_000);
        let mut scale = report(10, Duration::from_secs(1), None);
        scale.scenario = "scale";
        scale.resources = Some(Resources {
            threads_before: 4,
            threads_after: 4,
            rss_before_kib: 1,
            rss_peak_kib: 3,
            rss_after_kib: 2,
        });
        let table = table(&[payload, scale]);
        assert!(table.contains("payload: 200.0 MB/s"), "{table}");
        assert!(
            table.contains("scale: server threads 4 before, 4 after"),
            "{table}"
        );
    }

    fn plan(calls: usize, split: bool) -> Plan {
        Plan {
            calls,
            warmup: calls / 10,
            split,
        }
    }

    #[test]
    fn rounds_scale_with_the_calls() {
        let opts = Options::default();
        assert_eq!(
            round_of(&plan(DEFAULT_CALLS, true), &opts, true),
            DEFAULT_ROUND
        );
        assert_eq!(round_of(&plan(200, true), &opts, true), 20);
        assert_eq!(round_of(&plan(3, true), &opts, true), 1);
        assert_eq!(round_of(&plan(10_000, false), &opts, true), 10_000);
        assert_eq!(round_of(&plan(200, true), &opts, false), 200);
        let asked = Options {
            calls: Some(100),
            round: 30,
            ..opts
        };
        assert_eq!(round_of(&plan(100, true), &asked, true), 30);
    }
}
