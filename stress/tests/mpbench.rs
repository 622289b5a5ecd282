//! End-to-end: the `mpbench` binary, across two real processes.
//!
//! Every wait is bounded: `mpbench` runs under a watchdog that kills it (and so, by EOF, its
//! child) after [`LIMIT`], and a test that drives a child itself runs under
//! [`watchdog::guard`], which aborts the test binary (the child then sees EOF) after [`LIMIT`].

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use mp_testkit::watchdog;
use stress::Options;
use stress::child::ChildProcess;
use stress::scenarios::{self, Scenario};
use stress::wait::SPIN_ENV;

const LIMIT: Duration = Duration::from_secs(60);
const MPBENCH: &str = env!("CARGO_BIN_EXE_mpbench");

/// Runs `mpbench ARGS` to completion, or kills it and fails after [`LIMIT`].
fn mpbench(args: &[&str]) -> Output {
    mpbench_with(args, &[])
}

/// [`mpbench`] with `vars` set in its environment (and its child's).
fn mpbench_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let child = Command::new(MPBENCH)
        .args(args)
        .envs(vars.iter().copied())
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

/// The fields of the contract line, in order.
const CONTRACT: [&str; 9] = [
    "scenario",
    "calls",
    "threads",
    "median_us",
    "p99_us",
    "calls_per_s",
    "ctx_switches_per_call",
    "cpu_us_per_call",
    "sleeps_per_call",
];

/// Checks that `line` is a contract line of scenario `name` with `calls` calls and `threads`
/// threads, whose numbers make sense together; returns its fields.
fn contract_line(line: &str, name: &str, calls: usize, threads: usize) -> HashMap<String, String> {
    let fields = fields(line);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, CONTRACT, "{line}");
    let map: HashMap<String, String> = fields.into_iter().collect();
    assert_eq!(map["scenario"], format!("\"{name}\""), "{line}");
    assert_eq!(map["calls"], calls.to_string(), "{line}");
    assert_eq!(map["threads"], threads.to_string(), "{line}");
    let median = number(&map, "median_us");
    let p99 = number(&map, "p99_us");
    assert!(median > 0.0 && p99 >= median, "median {median}, p99 {p99}");
    assert!(number(&map, "calls_per_s") > 0.0, "{line}");
    if cfg!(target_os = "linux") {
        // Both processes' CPU time over the measured calls: never negative, and no more than
        // every core of the machine busy for the whole wall time of the calls, give or take
        // the clock ticks (10 ms) of each reading: one second in all is ample slack.
        let cpu = number(&map, "cpu_us_per_call");
        let wall_us_per_call = 1e6 / number(&map, "calls_per_s");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        #[allow(clippy::cast_precision_loss)]
        let ceiling = wall_us_per_call * cores as f64;
        assert!(
            cpu.is_finite() && cpu >= 0.0 && cpu <= ceiling + 1e6 / calls.max(1) as f64,
            "cpu_us_per_call {cpu} (ceiling {ceiling}): {line}"
        );
    }
    let sleeps = number(&map, "sleeps_per_call");
    assert!(sleeps.is_finite() && sleeps >= 0.0, "{line}");
    map
}

/// Runs `mpbench NAME --json --calls 200 --warmup WARMUP` and checks its one JSON line: the
/// fields, in order, and values that make sense together.
///
/// Spinning is off (`MULTIPROCESS_WAIT_SPIN_US=0`): a thread that yields while it spins may
/// never switch out on an idle core, so only without it must every call block.
fn one_scenario_200_calls(name: &str, warmup: &str) {
    let output = mpbench_with(
        &[name, "--json", "--calls", "200", "--warmup", warmup],
        &[(SPIN_ENV, "0")],
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "one JSON line: {lines:?}");
    let map = contract_line(&lines[0], name, 200, 1);
    let median = number(&map, "median_us");
    // Sequential calls: half of them took at least the median each, so the run took at least
    // 100 medians. (No bound the other way: the two slowest calls may take any time on a
    // loaded machine.)
    let per_s = number(&map, "calls_per_s");
    assert!(
        per_s > 0.0 && per_s <= 2e6 / median * 1.01,
        "calls_per_s {per_s} vs median {median} us"
    );
    if cfg!(target_os = "linux") {
        // Each call blocks at least once on one side or the other: in `read`, in `epoll_wait`
        // or on a futex.
        let ctx = number(&map, "ctx_switches_per_call");
        assert!(ctx > 0.5, "ctx_switches_per_call {ctx}");
    }
    let sleeps = number(&map, "sleeps_per_call");
    match name {
        // No Waiter takes part: nothing can count a sleep.
        "raw" | "chain" | "chain-park" => assert_eq!(sleeps, 0.0, "{}", lines[0]),
        // Without spinning, the caller sleeps until its reply and the worker until its next
        // request: about two per call.
        "call" => assert!(sleeps > 0.5, "sleeps_per_call {sleeps}: {}", lines[0]),
        _ => {}
    }
}

#[test]
fn raw_200_calls_across_two_processes() {
    one_scenario_200_calls("raw", "20");
}

#[test]
fn chain_200_calls_across_two_processes() {
    // `call`'s hand-offs on plain threads, waiting as the runtime does, and parking.
    for name in ["chain", "chain-park"] {
        one_scenario_200_calls(name, "20");
    }
}

#[test]
fn floors_200_calls_spinning() {
    // `raw` and `chain` wait as the runtime does: with spinning on (the runtime's default
    // budget), the same contract.
    let output = mpbench_with(
        &["raw,chain", "--json", "--calls", "200", "--warmup", "20"],
        &[(SPIN_ENV, "100")],
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "two JSON lines: {lines:?}");
    for (line, name) in lines.iter().zip(["raw", "chain"]) {
        contract_line(line, name, 200, 1);
    }
}

#[test]
fn capnp_200_calls_across_two_processes() {
    // Timed in batches on the parent's event loop: the same JSON line all the same.
    one_scenario_200_calls("capnp", "50");
}

#[test]
fn capnp_callback_200_calls_across_two_processes() {
    // `capnp` with a call back to a function passed with each call, or once.
    for name in ["capnp-callback", "capnp-callback-saved"] {
        one_scenario_200_calls(name, "50");
    }
}

#[test]
fn call_200_calls_across_two_processes() {
    one_scenario_200_calls("call", "50");
}

#[test]
fn listen_200_calls_across_two_processes_beside_call() {
    // `call` over a listening unix socket and over TCP on loopback.
    for name in ["listen", "listen-tcp"] {
        one_scenario_200_calls(name, "50");
    }
    // In one run, beside `call`, in the order of the scenario list.
    let output = mpbench(&[
        "call,listen,listen-tcp",
        "--json",
        "--calls",
        "50",
        "--warmup",
        "5",
    ]);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, name) in lines.iter().zip(["call", "listen", "listen-tcp"]) {
        contract_line(line, name, 50, 1);
    }
}

#[test]
fn hand_written_baselines_200_calls_across_two_processes() {
    // `call`, `callback` and `payload` with the hand-written client and server that the
    // generated proxies are compared with.
    for name in ["call-hand", "callback-hand", "payload-hand"] {
        one_scenario_200_calls(name, "20");
    }
}

#[test]
fn all_prints_one_line_per_scenario_in_order_and_a_table_without_json() {
    let output = mpbench(&["all", "--calls", "100", "--warmup", "10", "--round", "30"]);
    let lines = stdout_lines(&output);
    let asked = Options {
        calls: Some(100),
        warmup: Some(10),
        round: 30,
    };
    let mut all = scenarios::all();
    // As the run does: `scale`'s thread count follows its calls.
    for scenario in &mut all {
        scenario.plan(&asked);
    }
    // The JSON lines, with `scale-resources` right after `scale`'s.
    let mut json = lines.iter().take_while(|l| !l.is_empty());
    for scenario in &all {
        let line = json.next().expect("a line per scenario");
        // Rounds of 30 (scaled for those with fewer calls) must add up to exactly 100.
        contract_line(line, scenario.name(), 100, scenario.threads());
        if scenario.name() == "scale" {
            let line = json.next().expect("scale's resources");
            assert!(line.contains("\"scenario\": \"scale-resources\""), "{line}");
        }
    }
    assert_eq!(json.next(), None, "{lines:?}");
    // Then a blank line and the table: a header and one row per scenario.
    let table = &lines[all.len() + 2..];
    assert!(table[0].starts_with("scenario"), "{lines:?}");
    for (row, scenario) in table[1..].iter().zip(&all) {
        assert!(row.starts_with(scenario.name()), "{row}");
    }
    // Then the notes: throughput of the payloads and the resources of scale.
    let notes = table[all.len() + 1..].join("\n");
    assert!(notes.contains("payload: "), "{notes}");
    assert!(notes.contains("raw-1mib: "), "{notes}");
    assert!(notes.contains("scale: server threads"), "{notes}");
}

#[test]
fn threads_prints_one_line_per_thread_count() {
    let output = mpbench(&["threads", "--json", "--calls", "96", "--warmup", "8"]);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, threads) in lines.iter().zip([1, 2, 8, 32]) {
        // `calls` counts every thread's calls.
        let map = contract_line(line, "threads", 96, threads);
        if cfg!(target_os = "linux") {
            let ctx = number(&map, "ctx_switches_per_call");
            assert!(ctx > 0.0, "{line}");
        }
    }
}

#[test]
fn newthread_times_first_calls_and_counts_no_switches() {
    let output = mpbench(&["newthread", "--json", "--calls", "30", "--warmup", "3"]);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let map = contract_line(&lines[0], "newthread", 30, 1);
    // The threads exit: their context switches cannot be counted.
    assert_eq!(map["ctx_switches_per_call"], "null");
}

/// The human output of one run of `mpbench NAME --calls 10 --warmup 2`: its JSON line is checked
/// and its throughput note returned.
fn throughput(name: &str) -> f64 {
    let output = mpbench(&[name, "--calls", "10", "--warmup", "2"]);
    let lines = stdout_lines(&output);
    contract_line(&lines[0], name, 10, 1);
    let prefix = format!("{name}: ");
    let note = lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no throughput note for {name}: {lines:?}"));
    let mb: f64 = note
        .split(" MB/s")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad note {note}"));
    assert!(note.contains("2097152 bytes per call"), "{note}");
    mb
}

#[test]
fn payload_and_raw_1mib_report_throughput() {
    // A megabyte each way: far above the 8 bytes of `raw`, on any machine.
    for name in ["payload", "raw-1mib"] {
        let mb = throughput(name);
        assert!(mb > 1.0, "{name}: {mb} MB/s");
    }
}

/// The fields of a `scale-resources` line, in order.
const RESOURCES: [&str; 6] = [
    "scenario",
    "server_threads_before",
    "server_threads_after",
    "server_rss_before_kib",
    "server_rss_peak_kib",
    "server_rss_after_kib",
];

#[cfg(target_os = "linux")]
#[test]
fn scale_releases_every_worker_and_its_memory() {
    // 100 threads of 10 calls, with small worker stacks for the child.
    let output = mpbench(&["scale", "--calls", "1000", "--worker-stack-kib", "256"]);
    let lines = stdout_lines(&output);
    let map = contract_line(&lines[0], "scale", 1000, 100);
    assert_eq!(map["ctx_switches_per_call"], "null");
    let fields = fields(&lines[1]);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, RESOURCES, "{}", lines[1]);
    let map: HashMap<String, String> = fields.into_iter().collect();
    assert_eq!(map["scenario"], "\"scale-resources\"");
    let before = number(&map, "server_threads_before");
    let after = number(&map, "server_threads_after");
    assert!(
        before >= 2.0,
        "the child's main and loop threads at least: {before}"
    );
    assert_eq!(
        after, before,
        "every worker made for the 100 threads is gone"
    );
    let rss_before = number(&map, "server_rss_before_kib");
    let rss_peak = number(&map, "server_rss_peak_kib");
    let rss_after = number(&map, "server_rss_after_kib");
    // The peak is taken during the calls, from a reset at `rss_before` (or, if the kernel
    // refuses the reset, over the child's lifetime): it cannot be below where the calls started.
    assert!(rss_before > 0.0 && rss_peak >= rss_before, "{}", lines[1]);
    assert!(
        (rss_after - rss_before).abs() <= 8.0 * 1024.0,
        "RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    // The human output says the same.
    assert!(
        lines.iter().any(|l| l.starts_with("scale: server threads")),
        "{lines:?}"
    );
}

/// A file in the temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("mpbench-{}-{name}", std::process::id())))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn all_plots_every_scenario_beside_the_floors() {
    let file = TempFile::new("all.svg");
    let output = mpbench(&[
        "all",
        "--json",
        "--calls",
        "30",
        "--warmup",
        "3",
        "--round",
        "10",
        "--plot",
        file.path(),
    ]);
    let lines = stdout_lines(&output);
    assert!(
        lines.iter().all(|l| l.starts_with('{')),
        "only JSON: {lines:?}"
    );
    let svg = std::fs::read_to_string(&file.0).expect("the plot was written");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    for name in scenarios::names() {
        assert!(
            svg.contains(&format!(">{name}")),
            "{name} is not in the plot"
        );
    }
}

#[test]
fn plotting_one_scenario_adds_the_floors() {
    let file = TempFile::new("call.svg");
    let output = mpbench(&[
        "call",
        "--json",
        "--calls",
        "50",
        "--warmup",
        "5",
        "--plot",
        file.path(),
        "--plot-scale",
        "log",
    ]);
    let lines = stdout_lines(&output);
    let names: Vec<String> = lines.iter().map(|l| fields(l)[0].1.clone()).collect();
    assert_eq!(names, ["\"raw\"", "\"chain\"", "\"capnp\"", "\"call\""]);
    let svg = std::fs::read_to_string(&file.0).expect("the plot was written");
    assert!(svg.starts_with("<svg") && svg.contains("log scale"));
    for name in ["raw", "chain", "capnp", "call"] {
        assert!(
            svg.contains(&format!(">{name}<")),
            "{name} is not in the plot"
        );
    }
}

#[test]
fn an_idle_pair_uses_under_one_percent_of_a_cpu() {
    // `idle` runs after the other scenarios and prints its own line. Two seconds keep the test
    // short; the clock ticks of the child's `/proc/PID/stat` (10 ms) are then at most half of
    // the 1% allowed.
    let output = mpbench(&[
        "idle,call",
        "--json",
        "--calls",
        "200",
        "--warmup",
        "20",
        "--idle-seconds",
        "2",
    ]);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    contract_line(&lines[0], "call", 200, 1);
    let fields = fields(&lines[1]);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["scenario", "seconds", "cpu_percent"], "{}", lines[1]);
    let map: HashMap<String, String> = fields.into_iter().collect();
    assert_eq!(map["scenario"], "\"idle\"", "{}", lines[1]);
    let seconds = number(&map, "seconds");
    assert!((2.0..30.0).contains(&seconds), "{}", lines[1]);
    if cfg!(target_os = "linux") {
        let percent = number(&map, "cpu_percent");
        assert!(
            percent.is_finite() && (0.0..1.0).contains(&percent),
            "an idle pair of processes used {percent}% of a CPU: {}",
            lines[1]
        );
    }
}

#[test]
fn bad_arguments_are_a_usage_error() {
    for args in [
        &["nope"][..],
        &[],
        &["raw", "--calls"],
        &["raw", "--calls", "0"],
        &["--child", "raw", "--fd", "1"],
        &["raw", "--plot"],
        &["raw", "--plot-scale", "cubic"],
        &["raw", "--worker-stack-kib"],
        &["raw", "--worker-stack-kib", "many"],
        &["idle", "--idle-seconds"],
        &["idle", "--idle-seconds", "-1"],
        &["idle,nope"],
    ] {
        let output = mpbench(args);
        assert!(!output.status.success(), "{args:?} should fail");
    }
}

/// Makes `n` calls of `scenario` against a child, then closes the socket: the child must exit,
/// and cleanly.
///
/// Runs under a watchdog: the socket's read timeout bounds only the scenarios that read it
/// themselves, not those whose event loop owns the socket.
fn child_exits_on_eof(mut scenario: Box<dyn Scenario>, n: usize) -> io::Result<()> {
    let name = scenario.name();
    let label = format!("child_exits_on_eof({name} x{}, {n})", scenario.threads());
    watchdog::guard(&label, LIMIT, || {
        let child = ChildProcess::spawn(Path::new(MPBENCH), name)?;
        let conn = child.connection()?;
        conn.set_read_timeout(Some(LIMIT))?;
        let mut client = scenario.client(conn)?;
        client.run(n, &mut Vec::new())?;
        drop(client);
        // `finish` waits at most EXIT_GRACE, then kills the child and reports TimedOut.
        let status = child.finish()?;
        assert!(status.success(), "{name} child exited with {status}");
        Ok(())
    })
}

#[test]
fn every_child_exits_on_eof() {
    for scenario in scenarios::all() {
        let label = format!("{} x{}", scenario.name(), scenario.threads());
        child_exits_on_eof(scenario, 50).unwrap_or_else(|e| panic!("{label}: {e}"));
    }
}

#[test]
fn idle_child_exits_on_eof() {
    for scenario in scenarios::all() {
        let label = format!("{} x{}", scenario.name(), scenario.threads());
        child_exits_on_eof(scenario, 0).unwrap_or_else(|e| panic!("{label}: {e}"));
    }
}
