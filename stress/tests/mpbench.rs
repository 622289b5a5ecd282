//! End-to-end: the `mpbench` binary, across two real processes.
//!
//! Every wait is bounded: `mpbench` runs under a watchdog that kills it (and so, by EOF, its
//! child) after [`LIMIT`], and sockets get read timeouts.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use stress::child::ChildProcess;
use stress::scenarios;

const LIMIT: Duration = Duration::from_secs(60);
const MPBENCH: &str = env!("CARGO_BIN_EXE_mpbench");

/// Runs `mpbench ARGS` to completion, or kills it and fails after [`LIMIT`].
fn mpbench(args: &[&str]) -> Output {
    let child = Command::new(MPBENCH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpbench");
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(output) => output.expect("wait for mpbench"),
        Err(_) => {
            // SAFETY: `kill` takes plain integers; `pid` is our child, not yet reaped (the
            // waiting thread has not returned), so the number still names it.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("mpbench {args:?} did not finish within {LIMIT:?}; killed it");
        }
    }
}

/// The fields of one flat JSON object line, as raw text, in order.
fn fields(line: &str) -> Vec<(String, String)> {
    let body = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON object: {line}"));
    body.split(", ")
        .map(|field| {
            let (key, value) = field
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad field {field:?} in {line}"));
            (key.trim_matches('"').to_owned(), value.to_owned())
        })
        .collect()
}

fn number(map: &HashMap<String, String>, key: &str) -> f64 {
    let value = map.get(key).unwrap_or_else(|| panic!("no {key}"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {value}"))
}

fn stdout_lines(output: &Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "mpbench failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .expect("utf-8 output")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `mpbench NAME --json --calls 200 --warmup WARMUP` and checks its one JSON line: the
/// fields, in order, and values that make sense together.
fn one_scenario_200_calls(name: &str, warmup: &str) {
    let output = mpbench(&[name, "--json", "--calls", "200", "--warmup", warmup]);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "one JSON line: {lines:?}");
    let fields = fields(&lines[0]);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "scenario",
            "calls",
            "threads",
            "median_us",
            "p99_us",
            "calls_per_s",
            "ctx_switches_per_call"
        ]
    );
    let map: HashMap<String, String> = fields.into_iter().collect();
    assert_eq!(map["scenario"], format!("\"{name}\""));
    assert_eq!(map["calls"], "200");
    assert_eq!(map["threads"], "1");
    let median = number(&map, "median_us");
    let p99 = number(&map, "p99_us");
    assert!(median > 0.0 && p99 >= median, "median {median}, p99 {p99}");
    // 200 calls cannot take more than 200 * p99 (nor, being sequential, less than 200 * min).
    let per_s = number(&map, "calls_per_s");
    assert!(per_s >= 1e6 / p99 / 2.0, "calls_per_s {per_s} vs p99 {p99}");
    if cfg!(target_os = "linux") {
        // Each call blocks at least once on one side or the other: in `read`, in `epoll_wait`
        // or on a futex.
        let ctx = number(&map, "ctx_switches_per_call");
        assert!(ctx > 0.5, "ctx_switches_per_call {ctx}");
    }
}

#[test]
fn raw_200_calls_across_two_processes() {
    one_scenario_200_calls("raw", "20");
}

#[test]
fn capnp_200_calls_across_two_processes() {
    // Timed in batches on the parent's event loop: the same JSON line all the same.
    one_scenario_200_calls("capnp", "50");
}

#[test]
fn call_200_calls_across_two_processes() {
    one_scenario_200_calls("call", "50");
}

#[test]
fn all_prints_one_line_per_scenario_in_order_and_a_table_without_json() {
    let output = mpbench(&["all", "--calls", "100", "--warmup", "10", "--round", "30"]);
    let lines = stdout_lines(&output);
    let names = scenarios::names();
    for (line, name) in lines.iter().zip(&names) {
        let map: HashMap<String, String> = fields(line).into_iter().collect();
        assert_eq!(map["scenario"], format!("\"{name}\""));
        assert_eq!(
            map["calls"], "100",
            "rounds of 30 must add up to exactly 100"
        );
    }
    // Then a blank line and the table: a header and one row per scenario.
    assert_eq!(lines.len(), names.len() + 2 + names.len(), "{lines:?}");
    assert!(lines[names.len() + 1].starts_with("scenario"));
}

#[test]
fn bad_arguments_are_a_usage_error() {
    for args in [
        &["nope"][..],
        &[],
        &["raw", "--calls"],
        &["raw", "--calls", "0"],
        &["--child", "raw", "--fd", "1"],
    ] {
        let output = mpbench(args);
        assert!(!output.status.success(), "{args:?} should fail");
    }
}

/// Makes `n` calls of `name` against a child, then closes the socket: the child must exit, and
/// cleanly.
fn child_exits_on_eof(name: &str, n: usize) -> io::Result<()> {
    let child = ChildProcess::spawn(Path::new(MPBENCH), name)?;
    let conn = child.connection()?;
    conn.set_read_timeout(Some(LIMIT))?;
    let mut scenario = scenarios::find(name).expect("registered scenario");
    let mut client = scenario.client(conn)?;
    client.run(n, &mut Vec::new())?;
    drop(client);
    // `finish` waits at most EXIT_GRACE, then kills the child and reports TimedOut.
    let status = child.finish()?;
    assert!(status.success(), "{name} child exited with {status}");
    Ok(())
}

#[test]
fn every_child_exits_on_eof() {
    for name in scenarios::names() {
        child_exits_on_eof(name, 50).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn idle_child_exits_on_eof() {
    for name in scenarios::names() {
        child_exits_on_eof(name, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
