//! `mptimeline DIR`: where a call's time goes, step by step.
//!
//! Reads the files a parent and its child wrote to `DIR` when run with
//! `MULTIPROCESS_TIMELINE=DIR` from a build with the `timeline` feature
//! (see `multiprocess_event_loop::timeline`), for example:
//!
//! ```text
//! cargo build --release -p stress --features timeline
//! mkdir /tmp/tl && MULTIPROCESS_TIMELINE=/tmp/tl target/release/mpbench callback
//! target/release/mptimeline /tmp/tl
//! ```
//!
//! It merges both processes' marks by time, cuts them into cycles (each
//! starts where the parent's thread enters a call), keeps the cycles that
//! pass the most common sequence of steps (the others were disturbed:
//! another thread's mark fell in between), drops the first tenth (warm-up),
//! and prints, for each step of that sequence, the median time since the
//! step before. Meant for scenarios whose parent makes one call at a time
//! (`call`, `callback`, `callback-saved`, ...).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use multiprocess_event_loop::timeline::Step;

/// One process's marks.
struct Process {
    pid: u32,
    ppid: u32,
    marks: Vec<(u64, u8)>,
}

fn read_process(path: &Path) -> Result<Process, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_process(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A timeline file's text: `pid P ppid Q`, then `NANOS STEP` per line.
fn parse_process(text: &str) -> Result<Process, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let fields: Vec<&str> = header.split_whitespace().collect();
    let (pid, ppid) = match fields.as_slice() {
        ["pid", pid, "ppid", ppid] => (pid.parse().ok(), ppid.parse().ok()),
        _ => (None, None),
    };
    let (Some(pid), Some(ppid)) = (pid, ppid) else {
        return Err("no `pid P ppid Q` first line".to_string());
    };
    let mut marks = Vec::new();
    for line in lines {
        let mut parts = line.split_whitespace();
        let nanos = parts.next().and_then(|n| n.parse().ok());
        let step = parts.next().and_then(|s| s.parse().ok());
        match (nanos, step) {
            (Some(nanos), Some(step)) => marks.push((nanos, step)),
            _ => return Err(format!("bad line {line:?}")),
        }
    }
    Ok(Process { pid, ppid, marks })
}

/// The parent and the child among the files in `dir`.
fn parent_and_child(dir: &Path) -> Result<(Process, Process), String> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("timeline-") && n.ends_with(".txt"))
        })
        .collect();
    paths.sort();
    let processes = paths
        .iter()
        .map(|path| read_process(path))
        .collect::<Result<Vec<_>, _>>()?;
    let [first, second] = <[Process; 2]>::try_from(processes).map_err(|processes| {
        format!(
            "{}: {} timeline files; expected two, a parent's and its child's (one run per directory)",
            dir.display(),
            processes.len()
        )
    })?;
    if second.ppid == first.pid {
        Ok((first, second))
    } else if first.ppid == second.pid {
        Ok((second, first))
    } else {
        Err("the two files are not of a parent and its child".to_string())
    }
}

/// A mark in the merged timeline: time, process (`'P'` or `'C'`), step code.
type Mark = (u64, char, u8);

/// Which process passed which step: what a cycle's shape is made of.
fn label(&(_, process, code): &Mark) -> (char, u8) {
    (process, code)
}

/// The median (nearest rank, as mpbench's) of values, at least one.
fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    stress::stats::percentile(values, 50).unwrap_or(0)
}

/// What [`analyse`] finds.
#[derive(Debug, PartialEq)]
struct Report {
    /// Cycles in the files.
    cycles: usize,
    /// Cycles that pass the most common sequence of steps.
    same_shape: usize,
    /// Of those, the ones measured (the first tenth dropped).
    kept: usize,
    /// Each step after the first: process (`'P'` or `'C'`), step code, and
    /// the median nanoseconds since the step before.
    steps: Vec<(char, u8, u64)>,
    /// The median nanoseconds from the first step of a cycle to its last.
    whole: u64,
}

fn analyse(parent: &Process, child: &Process) -> Result<Report, String> {
    let mut marks: Vec<Mark> = parent
        .marks
        .iter()
        .map(|&(t, s)| (t, 'P', s))
        .chain(child.marks.iter().map(|&(t, s)| (t, 'C', s)))
        .collect();
    marks.sort_unstable();
    let starts_cycle = |m: &Mark| m.1 == 'P' && m.2 == Step::CallEntry as u8;
    let mut cycles: Vec<&[Mark]> = Vec::new();
    let mut start = marks.iter().position(starts_cycle);
    while let Some(begin) = start {
        let end = marks[begin + 1..]
            .iter()
            .position(starts_cycle)
            .map(|i| begin + 1 + i);
        cycles.push(&marks[begin..end.unwrap_or(marks.len())]);
        start = end;
    }
    let mut shapes: HashMap<Vec<(char, u8)>, usize> = HashMap::new();
    for cycle in &cycles {
        *shapes.entry(cycle.iter().map(label).collect()).or_default() += 1;
    }
    // The most common shape; of two as common, the smaller (not whichever
    // the map yields first).
    let Some((shape, same_shape)) = shapes
        .into_iter()
        .max_by(|(a, m), (b, n)| m.cmp(n).then_with(|| b.cmp(a)))
    else {
        return Err("no call by the parent in the files".to_string());
    };
    let same: Vec<&[Mark]> = cycles
        .iter()
        .filter(|cycle| cycle.iter().map(label).eq(shape.iter().copied()))
        .copied()
        .collect();
    let kept = &same[same.len() / 10..];
    let Some(first) = kept.first() else {
        return Err("too few cycles".to_string());
    };
    let steps = (1..shape.len())
        .map(|i| {
            let mut deltas: Vec<u64> = kept.iter().map(|c| c[i].0 - c[i - 1].0).collect();
            (first[i].1, first[i].2, median(&mut deltas))
        })
        .collect();
    let mut whole: Vec<u64> = kept.iter().map(|c| c[c.len() - 1].0 - c[0].0).collect();
    Ok(Report {
        cycles: cycles.len(),
        same_shape,
        kept: kept.len(),
        steps,
        whole: median(&mut whole),
    })
}

fn run(dir: &Path) -> Result<(), String> {
    let (parent, child) = parent_and_child(dir)?;
    let report = analyse(&parent, &child)?;
    println!(
        "{} of {} cycles pass the same {} steps; the medians of the last {} (µs):",
        report.same_shape,
        report.cycles,
        report.steps.len() + 1,
        report.kept
    );
    println!("| # | process | step | since the step before |");
    println!("|---|---|---|---|");
    for (i, (process, code, nanos)) in report.steps.iter().enumerate() {
        let step = Step::from_code(*code).map_or("(unknown step)", Step::describe);
        let who = if *process == 'P' { "parent" } else { "child" };
        println!(
            "| {} | {who} | {step} | {:.2} |",
            i + 1,
            *nanos as f64 / 1000.0
        );
    }
    let sum: u64 = report.steps.iter().map(|(_, _, nanos)| nanos).sum();
    println!(
        "first to last step: median {:.2} µs (sum of the step medians {:.2})",
        report.whole as f64 / 1000.0,
        sum as f64 / 1000.0
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!(
            "usage: mptimeline DIR  (the files of one mpbench run built with --features timeline)"
        );
        return ExitCode::from(2);
    };
    match run(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mptimeline: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parent and child file of `cycles` calls: each step of the
    /// parent's and the child's takes the same time in every cycle, but
    /// `disturbed` cycles have an extra mark of the child in the middle.
    fn files(cycles: u64, disturbed: &[u64]) -> (String, String) {
        let mut parent = String::from("pid 10 ppid 1\n");
        let mut child = String::from("pid 11 ppid 10\n");
        for cycle in 0..cycles {
            let t = cycle * 100_000;
            parent += &format!("{} 1\n{} 2\n", t, t + 1_000);
            child += &format!("{} 22\n", t + 4_000);
            if disturbed.contains(&cycle) {
                child += &format!("{} 31\n", t + 4_500);
            }
            child += &format!("{} 10\n", t + 6_000);
            parent += &format!("{} 5\n", t + 10_000 + cycle % 3);
        }
        (parent, child)
    }

    #[test]
    fn the_medians_of_each_step_of_the_usual_cycles() {
        let (parent, child) = files(100, &[50, 70]);
        let parent = parse_process(&parent).expect("parent parses");
        let child = parse_process(&child).expect("child parses");
        let report = analyse(&parent, &child).expect("analysed");
        assert_eq!(report.cycles, 100);
        assert_eq!(report.same_shape, 98);
        assert_eq!(report.kept, 98 - 9);
        assert_eq!(
            report.steps,
            vec![
                ('P', Step::CallPickedUp as u8, 1_000),
                ('C', Step::Read as u8, 3_000),
                ('C', Step::ServeStart as u8, 2_000),
                ('P', Step::CallerWoken as u8, 4_001),
            ]
        );
        assert_eq!(report.whole, 10_001);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(parse_process("12 1\n").is_err());
        assert!(parse_process("pid 1 ppid 0\n12\n").is_err());
        let empty = parse_process("pid 1 ppid 0\n").expect("no marks is a file");
        assert!(analyse(&empty, &empty).is_err());
    }
}
