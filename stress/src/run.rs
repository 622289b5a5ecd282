//! The measurement loop and its output.
//!
//! Each scenario gets its own child process. Calls run in interleaved rounds: `round` calls of
//! the first scenario, then `round` of the next, and so on until each has made `calls`, so that
//! noise on the machine (another build, a CPU frequency change) hits every scenario alike. The
//! warm-up is interleaved the same way and not recorded.
//!
//! Around each measured round we read the context-switch counters of every thread of both
//! processes (ours and that scenario's child). The other scenarios' threads are blocked
//! meanwhile, so they add nothing. Reading `/proc` happens outside the timed window.
//!
//! A round is one [`Client::run`]: for most scenarios the samples are timed here around each
//! call; a scenario whose calls run on another thread (`capnp`) times them itself and hands back
//! the round's samples. Wall time and context switches are counted around the whole round
//! either way.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::child::ChildProcess;
use crate::ctxsw;
use crate::scenarios::{Client, Scenario};
use crate::stats::{self, Summary};

/// How many calls to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Measured calls per scenario.
    pub calls: usize,
    /// Unmeasured calls per scenario before measuring.
    pub warmup: usize,
    /// Calls per scenario per round when several scenarios are interleaved. A single scenario
    /// runs in one round.
    pub round: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            calls: 20_000,
            warmup: 2_000,
            round: 2_000,
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
    /// not be read.
    pub ctx_switches: Option<u64>,
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
    /// };
    /// assert_eq!(
    ///     report.to_json(),
    ///     r#"{"scenario": "raw", "calls": 4, "threads": 1, "median_us": 2.000, "p99_us": 8.000, "calls_per_s": 200000.0, "ctx_switches_per_call": 2.500}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        format!(
            "{{\"scenario\": {}, \"calls\": {}, \"threads\": {}, \"median_us\": {}, \"p99_us\": {}, \"calls_per_s\": {}, \"ctx_switches_per_call\": {}}}",
            json_string(self.scenario),
            self.summary.count,
            self.threads,
            json_number(Some(micros(self.summary.median)), 3),
            json_number(Some(micros(self.summary.p99)), 3),
            json_number(Some(self.calls_per_s()), 1),
            json_number(self.ctx_switches_per_call(), 3),
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
    let round = if scenarios.len() > 1 {
        opts.round.max(1)
    } else {
        opts.calls.max(1)
    };
    let mut runs = Vec::with_capacity(scenarios.len());
    for scenario in scenarios.iter_mut() {
        let child = ChildProcess::spawn(exe, scenario.name())?;
        let client = scenario.client(child.connection()?)?;
        runs.push(Run {
            name: scenario.name(),
            threads: scenario.threads(),
            pids: [std::process::id(), child.pid()],
            child,
            client,
            samples: Vec::with_capacity(opts.calls),
            wall: Duration::ZERO,
            ctx_switches: Some(0),
        });
    }

    let mut warmed = 0;
    let mut discarded = Vec::with_capacity(round.min(opts.warmup));
    while warmed < opts.warmup {
        let n = round.min(opts.warmup - warmed);
        for run in &mut runs {
            discarded.clear();
            run.client.run(n, &mut discarded)?;
        }
        warmed += n;
    }
    let mut measured = 0;
    while measured < opts.calls {
        let n = round.min(opts.calls - measured);
        for run in &mut runs {
            run.measure(n)?;
        }
        measured += n;
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
        });
    }
    Ok(reports)
}

/// A scenario in progress.
struct Run {
    name: &'static str,
    threads: usize,
    pids: [u32; 2],
    child: ChildProcess,
    client: Client,
    samples: Vec<Duration>,
    wall: Duration,
    ctx_switches: Option<u64>,
}

impl Run {
    /// Makes and records `n` calls.
    fn measure(&mut self, n: usize) -> io::Result<()> {
        let before = ctxsw::switches(&self.pids).ok();
        let start = Instant::now();
        self.client.run(n, &mut self.samples)?;
        self.wall += start.elapsed();
        let after = ctxsw::switches(&self.pids).ok();
        self.ctx_switches = match (self.ctx_switches, before, after) {
            (Some(total), Some(before), Some(after)) => Some(total + after.saturating_sub(before)),
            _ => None,
        };
        Ok(())
    }
}

/// A human-readable table of `reports`, with each median relative to `raw`'s if it was run.
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
fn json_number(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "null".to_owned(),
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
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
        }
    }

    #[test]
    fn json_has_nulls_for_unknowns() {
        let json = report(10, Duration::ZERO, None).to_json();
        assert!(json.contains("\"calls_per_s\": null"), "{json}");
        assert!(json.contains("\"ctx_switches_per_call\": null"), "{json}");
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
    }
}
