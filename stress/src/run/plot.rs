//! The latencies of a run as a self-contained SVG: one row per report, a bar to the median and
//! a whisker to the p99, and a dashed line down the chart at the median of each floor (`raw`,
//! `chain`, `capnp`) measured in the same run, so the cost of each scenario over the floors
//! shows at a glance.
//!
//! The SVG is written by hand: rectangles, lines and text, no script, no external style or font.

use std::fmt::Write as _;

use super::{Report, micros};

/// The scenarios drawn as floors: the socket, the bare hand-offs, and capnp without them.
pub const FLOORS: [&str; 3] = ["raw", "chain", "capnp"];

/// How the latency axis is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    /// Logarithmic when the slowest p99 is over [`AUTO_LOG_RATIO`] times the fastest median.
    #[default]
    Auto,
    /// From 0, linear.
    Linear,
    /// Decades.
    Log,
}

impl Scale {
    /// `auto`, `linear` or `log`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stress::run::plot::Scale;
    ///
    /// assert_eq!(Scale::parse("log"), Some(Scale::Log));
    /// assert_eq!(Scale::parse("cubic"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "auto" => Some(Scale::Auto),
            "linear" => Some(Scale::Linear),
            "log" => Some(Scale::Log),
            _ => None,
        }
    }
}

/// [`Scale::Auto`] goes logarithmic above this ratio of slowest p99 to fastest median.
pub const AUTO_LOG_RATIO: f64 = 30.0;

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 150.0;
const VALUE_W: f64 = 190.0;
const TOP: f64 = 64.0;
const ROW_H: f64 = 26.0;
const BAR_H: f64 = 14.0;
const BOTTOM: f64 = 44.0;

/// The SVG document for `reports`, in their order; each median but `raw`'s is also given
/// relative to `raw`'s, when it was run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stress::{Report, stats::Summary};
/// use stress::run::plot::{self, Scale};
///
/// let us = Duration::from_micros;
/// let report = |scenario, median| Report {
///     scenario,
///     threads: 1,
///     summary: Summary { count: 10, min: us(1), median: us(median), p99: us(2 * median), max: us(90) },
///     wall: us(1000),
///     ctx_switches: None,
///     cpu: None,
///     sleeps: None,
///     bytes_per_call: None,
///     resources: None,
/// };
/// let svg = plot::svg(&[report("raw", 10), report("call", 40)], Scale::Auto);
/// assert!(svg.starts_with("<svg"));
/// assert!(svg.contains(">raw<") && svg.contains(">call<"));
/// ```
pub fn svg(reports: &[Report], scale: Scale) -> String {
    let mut rows: Vec<Row> = reports.iter().map(Row::of).collect();
    let raw = reports
        .iter()
        .find(|r| r.scenario == "raw")
        .map(|r| micros(r.summary.median))
        .filter(|m| *m > 0.0);
    for row in rows.iter_mut().filter(|r| r.label != "raw") {
        row.ratio = raw.map(|raw| row.median / raw);
    }
    let axis = Axis::fit(&rows, scale);
    let plot_w = WIDTH - LABEL_W - VALUE_W;
    let height = TOP + ROW_H * rows.len().max(1) as f64 + BOTTOM;
    let x = |us: f64| LABEL_W + plot_w * axis.fraction(us);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        out,
        "<title>mpbench: median and p99 latency per call, microseconds</title>"
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="20" font-size="15" font-weight="bold">mpbench: latency per call (µs, {} scale)</text>"##,
        axis.name()
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="38" fill="#555555">bar: median; whisker: p99; dashed: the floors' medians, measured in the same run</text>"##
    );

    // Grid and axis labels.
    let bottom = TOP + ROW_H * rows.len() as f64;
    for tick in axis.ticks() {
        let tx = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{bottom:.1}" stroke="#e4e4e4"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555555">{}</text>"##,
            bottom + 16.0,
            Axis::tick_label(tick)
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555555">µs per call</text>"##,
        LABEL_W + plot_w / 2.0,
        bottom + 34.0
    );

    // Rows: label, median bar, p99 whisker, values.
    for (i, row) in rows.iter().enumerate() {
        let mid = TOP + ROW_H * (i as f64 + 0.5);
        let (fill, weight) = if row.floor {
            ("#9e9e9e", "normal")
        } else {
            ("#3b76c4", "bold")
        };
        let x0 = x(axis.lo);
        let xm = x(row.median);
        let xp = x(row.p99);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="{weight}">{}</text>"##,
            LABEL_W - 8.0,
            mid + 4.0,
            escape(&row.label)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{BAR_H}" fill="{fill}"/>"##,
            mid - BAR_H / 2.0,
            (xm - x0).max(1.0)
        );
        let _ = writeln!(
            out,
            r##"<line x1="{xm:.1}" y1="{mid:.1}" x2="{xp:.1}" y2="{mid:.1}" stroke="#333333"/>"##
        );
        let _ = writeln!(
            out,
            r##"<line x1="{xp:.1}" y1="{:.1}" x2="{xp:.1}" y2="{:.1}" stroke="#333333"/>"##,
            mid - BAR_H / 2.0,
            mid + BAR_H / 2.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#333333">{} (p99 {}){}</text>"##,
            LABEL_W + plot_w + 8.0,
            mid + 4.0,
            number(row.median),
            number(row.p99),
            row.ratio
                .map_or_else(String::new, |r| format!(" {r:.1}× raw"))
        );
    }

    // The floors, down the whole chart.
    for row in rows.iter().filter(|r| r.floor) {
        let fx = x(row.median);
        let _ = writeln!(
            out,
            r##"<line x1="{fx:.1}" y1="{:.1}" x2="{fx:.1}" y2="{bottom:.1}" stroke="#777777" stroke-dasharray="4 3"/>"##,
            TOP - 8.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{fx:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#555555">{}</text>"##,
            TOP - 11.0,
            escape(&row.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One report, as drawn.
struct Row {
    label: String,
    median: f64,
    p99: f64,
    floor: bool,
    /// Median over `raw`'s median, for the other rows, when `raw` was run.
    ratio: Option<f64>,
}

impl Row {
    fn of(report: &Report) -> Row {
        Row {
            label: report.label(),
            median: micros(report.summary.median),
            p99: micros(report.summary.p99),
            floor: FLOORS.contains(&report.scenario),
            ratio: None,
        }
    }
}

/// The latency axis: `lo..hi` microseconds, linear or decades.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn fit(rows: &[Row], scale: Scale) -> Axis {
        let fastest = rows
            .iter()
            .map(|r| r.median)
            .filter(|m| *m > 0.0)
            .fold(f64::INFINITY, f64::min);
        let slowest = rows.iter().map(|r| r.p99.max(r.median)).fold(0.0, f64::max);
        let (fastest, slowest) = if fastest.is_finite() && slowest > 0.0 {
            (fastest, slowest)
        } else {
            (1.0, 10.0)
        };
        let log = match scale {
            Scale::Log => true,
            Scale::Linear => false,
            Scale::Auto => slowest / fastest > AUTO_LOG_RATIO,
        };
        if log {
            // From the decade below the fastest median to a little past the slowest p99, and
            // at least one decade wide.
            let lo = 10f64.powf(fastest.log10().floor());
            Axis {
                lo,
                hi: (slowest * 1.2).max(lo * 10.0),
                log,
            }
        } else {
            Axis {
                lo: 0.0,
                hi: nice_ceiling(slowest),
                log,
            }
        }
    }

    fn name(&self) -> &'static str {
        if self.log { "log" } else { "linear" }
    }

    /// Where `us` falls on the axis, from 0 (left) to 1 (right), clamped.
    fn fraction(&self, us: f64) -> f64 {
        let f = if self.log {
            (us.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (us - self.lo) / (self.hi - self.lo)
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Grid lines: each decade (log), or five even steps (linear).
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut ticks = vec![self.lo];
            while let Some(&last) = ticks.last() {
                if last * 10.0 > self.hi * 1.0001 {
                    break;
                }
                ticks.push(last * 10.0);
            }
            ticks
        } else {
            (0..=5).map(|i| self.hi * f64::from(i) / 5.0).collect()
        }
    }

    /// A grid line's label: no decimals unless it needs them.
    fn tick_label(tick: f64) -> String {
        if tick.fract() == 0.0 {
            format!("{tick:.0}")
        } else {
            number(tick)
        }
    }
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `x`.
fn nice_ceiling(x: f64) -> f64 {
    let decade = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * decade)
}

/// A latency in µs, with as many decimals as its size calls for.
fn number(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// Text escaped for XML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;
    use std::time::Duration;

    fn report(scenario: &'static str, threads: usize, median: u64, p99: u64) -> Report {
        let us = Duration::from_micros;
        Report {
            scenario,
            threads,
            summary: Summary {
                count: 10,
                min: us(1),
                median: us(median),
                p99: us(p99),
                max: us(p99),
            },
            wall: us(1000),
            ctx_switches: None,
            cpu: None,
            sleeps: None,
            bytes_per_call: None,
            resources: None,
        }
    }

    #[test]
    fn every_row_and_floor_is_drawn() {
        let reports = [
            report("raw", 1, 10, 20),
            report("chain", 1, 40, 90),
            report("capnp", 1, 20, 50),
            report("threads", 8, 60, 400),
            report("payload", 1, 2000, 5000),
        ];
        let svg = svg(&reports, Scale::Auto);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        for label in ["raw", "chain", "capnp", "threads x8", "payload"] {
            assert!(svg.contains(&format!(">{label}<")), "{label} missing");
        }
        assert_eq!(svg.matches("stroke-dasharray").count(), 3, "one per floor");
        assert!(svg.contains("log scale"), "payload is 200 times raw");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(svg.contains("200.0× raw"), "payload's ratio");
    }

    #[test]
    fn linear_when_asked_or_close() {
        let reports = [report("raw", 1, 10, 20), report("call", 1, 40, 90)];
        assert!(svg(&reports, Scale::Auto).contains("linear scale"));
        assert!(svg(&reports, Scale::Log).contains("log scale"));
    }

    #[test]
    fn axis_places_values() {
        let log = Axis {
            lo: 1.0,
            hi: 1000.0,
            log: true,
        };
        assert!((log.fraction(10.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(log.fraction(0.0), 0.0);
        assert_eq!(log.ticks(), [1.0, 10.0, 100.0, 1000.0]);
        let wider = Axis { hi: 5000.0, ..log };
        assert_eq!(wider.ticks(), [1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(Axis::tick_label(100.0), "100");
        assert_eq!(Axis::tick_label(0.0), "0");
        assert_eq!(Axis::tick_label(0.5), "0.50");
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"a<b>&"c""#), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
