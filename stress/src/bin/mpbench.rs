//! `mpbench`: end-to-end IPC latency between two processes.
//!
//! ```text
//! mpbench SCENARIO [--json] [--calls N] [--warmup N] [--round N] [--worker-stack-kib N]
//!                  [--plot FILE.svg] [--plot-scale auto|linear|log] [--idle-seconds N]
//! ```
//!
//! `SCENARIO` is a scenario name, a comma-separated list of them, or `all` (every scenario);
//! several scenarios run interleaved in rounds. Prints one JSON object per scenario (per variant:
//! `threads` has one per thread count) per line, and after `scale`'s, its `scale-resources`
//! line; without `--json`, a table follows. `idle` (not part of `all`: it takes 10 s) runs after
//! the others and prints its own line. The hidden form
//! `mpbench --child SCENARIO --fd N` is the child process, serving over inherited descriptor N.
//!
//! `--worker-stack-kib N` reaches the child through the environment variable
//! [`WORKER_STACK_ENV`], which the child reads before serving (setting it by hand does the same).

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use stress::child::{self, CHILD_FLAG, FD_FLAG};
use stress::run::idle;
use stress::run::plot::{self, Scale};
use stress::run::{DEFAULT_CALLS, DEFAULT_ROUND};
use stress::scenarios::{self, newthread, paced, payload, scale};
use stress::{Options, run};

/// The environment variable that carries `--worker-stack-kib` to the child.
const WORKER_STACK_ENV: &str = "MPBENCH_WORKER_STACK_KIB";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some(CHILD_FLAG) {
        child_main(&args[1..])
    } else {
        bench_main(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("mpbench: {msg}\n\n{}", usage());
            ExitCode::from(2)
        }
        Err(Failure::Io(e)) => {
            eprintln!("mpbench: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn usage() -> String {
    format!(
        "usage: mpbench SCENARIO [--json] [--calls N] [--warmup N] [--round N] [--worker-stack-kib N]\n\
         \x20                [--plot FILE.svg] [--plot-scale auto|linear|log] [--idle-seconds N]\n\
         scenarios: all, {names};\n\
         \x20          {idle} (not in all: a connected pair making no call, its CPU use);\n         \x20          or several, comma-separated (raw,chain,capnp,call), interleaved\n\
         \n\
         --calls N     measured calls per scenario (per variant); default {DEFAULT_CALLS}, except:\n\
         \x20             newthread {newthread} (each call starts a thread), payload and raw-1mib {payload}\n\
         \x20             (1 MiB each way per call), scale {scale} (in {per_thread}-call threads: 1000 threads),\n\
         \x20             paced-1ms {paced_1ms} and paced-10ms {paced_10ms} (2 s of calls)\n\
         --warmup N    unmeasured calls first; default a tenth of the default calls (scale: none)\n\
         --round N     calls per scenario per turn with several scenarios; default {DEFAULT_ROUND},\n\
         \x20             scaled down for scenarios that make fewer calls (scale: one turn)\n\
         --json        only the JSON lines, no table\n\
         --worker-stack-kib N\n\
         \x20             stack size of the child's worker threads (default: the platform's)\n\
         --plot FILE.svg\n\
         \x20             also draw median and p99 per scenario as an SVG; the floors raw, chain\n\
         \x20             and capnp are added to the run if not in it\n\
         --plot-scale auto|linear|log\n\
         \x20             latency axis of the plot (auto: log if the spread is wide)\n\
         --idle-seconds N\n\
         \x20             how long {idle} makes no call; default {idle_seconds}\n\
         \n\
         JSON: {{\"scenario\", \"calls\", \"threads\", \"median_us\", \"p99_us\", \"calls_per_s\",\n\
         \x20      \"ctx_switches_per_call\", \"cpu_us_per_call\", \"sleeps_per_call\"}} per scenario\n\
         \x20      (per call, both processes: every context switch, yields of spinning threads\n\
         \x20      included; user+system CPU time; Waiter waits that really slept; ctx_switches_per_call\n\
         \x20      is null where unknown: newthread and scale, whose threads exit); {{\"scenario\": \"idle\",\n\
         \x20      \"seconds\", \"cpu_percent\"}} for idle; after scale's, {{\"scenario\": \"scale-resources\", \"server_threads_before\",\n\
         \x20      \"server_threads_after\", \"server_rss_before_kib\", \"server_rss_peak_kib\",\n\
         \x20      \"server_rss_after_kib\"}}: the child's threads and resident memory around the run",
        names = scenarios::names().join(", "),
        newthread = newthread::DEFAULT_CALLS,
        payload = payload::DEFAULT_CALLS,
        scale = scale::DEFAULT_CALLS,
        per_thread = scale::CALLS_PER_THREAD,
        paced_1ms = paced::Paced::ONE_MS.default_calls(),
        paced_10ms = paced::Paced::TEN_MS.default_calls(),
        idle = idle::NAME,
        idle_seconds = idle::DEFAULT_SECONDS,
    )
}

fn bench_main(args: &[String]) -> Result<(), Failure> {
    let mut opts = Options::default();
    let mut json = false;
    let mut name = None;
    let mut worker_stack_kib = None;
    let mut plot_file = None;
    let mut plot_scale = Scale::Auto;
    let mut idle_seconds = idle::DEFAULT_SECONDS;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--calls" => opts.calls = Some(number(arg, args.next())?),
            "--warmup" => opts.warmup = Some(number(arg, args.next())?),
            "--round" => opts.round = number(arg, args.next())?,
            "--idle-seconds" => {
                idle_seconds = u64::try_from(number(arg, args.next())?)
                    .map_err(|_| Failure::Usage("--idle-seconds is too large".into()))?;
            }
            "--worker-stack-kib" => worker_stack_kib = Some(number(arg, args.next())?),
            "--plot" => {
                let file = args
                    .next()
                    .ok_or_else(|| Failure::Usage("--plot needs a file name".into()))?;
                plot_file = Some(PathBuf::from(file));
            }
            "--plot-scale" => {
                plot_scale = args.next().and_then(|s| Scale::parse(s)).ok_or_else(|| {
                    Failure::Usage("--plot-scale needs auto, linear or log".into())
                })?;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            flag if flag.starts_with('-') => {
                return Err(Failure::Usage(format!("unknown option {flag}")));
            }
            scenario if name.is_none() => name = Some(scenario),
            extra => return Err(Failure::Usage(format!("unexpected argument {extra}"))),
        }
    }
    let name = name.ok_or_else(|| Failure::Usage("no scenario given".into()))?;
    if opts.calls == Some(0) || opts.round == 0 {
        return Err(Failure::Usage(
            "--calls and --round must be at least 1".into(),
        ));
    }
    // `idle` makes no calls: it is not a `Scenario`, and runs after the others.
    let want_idle = name.split(',').any(|n| n == idle::NAME);
    let rest: Vec<&str> = name.split(',').filter(|n| *n != idle::NAME).collect();
    let mut chosen = if rest.is_empty() {
        Vec::new()
    } else {
        scenarios::select(&rest.join(","))
    };
    if !rest.is_empty() && chosen.is_empty() {
        return Err(Failure::Usage(format!("unknown scenario {name}")));
    }
    if plot_file.is_some() {
        // A plot shows every scenario beside the floors measured in the same run.
        let missing: Vec<_> = plot::FLOORS
            .iter()
            .filter(|floor| !chosen.iter().any(|s| s.name() == **floor))
            .filter_map(|floor| scenarios::find(floor))
            .collect();
        chosen.splice(0..0, missing);
    }
    if let Some(kib) = worker_stack_kib {
        if kib.checked_mul(1024).is_none() {
            return Err(Failure::Usage(format!(
                "--worker-stack-kib {kib} is too large"
            )));
        }
        // SAFETY: no other thread exists yet (nothing above spawns one), so nothing can read the
        // environment while it changes. The children inherit it.
        unsafe { std::env::set_var(WORKER_STACK_ENV, kib.to_string()) };
    }
    let exe = std::env::current_exe()?;
    let reports = if chosen.is_empty() {
        Vec::new()
    } else {
        run::run(&exe, &mut chosen, &opts)?
    };
    for report in &reports {
        println!("{}", report.to_json());
        if let Some(resources) = &report.resources {
            println!("{}", resources.to_json(report.scenario));
        }
    }
    let idled = if want_idle {
        let idled = idle::run(&exe, std::time::Duration::from_secs(idle_seconds))?;
        println!("{}", idled.to_json());
        Some(idled)
    } else {
        None
    };
    if let Some(file) = &plot_file {
        std::fs::write(file, plot::svg(&reports, plot_scale))?;
    }
    if !json {
        println!();
        if !reports.is_empty() {
            print!("{}", run::table(&reports));
        }
        if let Some(idled) = idled {
            let percent = idled
                .cpu_percent()
                .map_or_else(|| "n/a".to_owned(), |p| format!("{p:.3}%"));
            println!(
                "{}: {percent} of one CPU over {:.1} s without a call (both processes)",
                idle::NAME,
                idled.wall.as_secs_f64()
            );
        }
        if let Some(file) = &plot_file {
            println!("\nplot: {}", file.display());
        }
    }
    Ok(())
}

fn number(flag: &str, value: Option<&String>) -> Result<usize, Failure> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure::Usage(format!("{flag} needs a number")))
}

/// The worker stack size the parent asked for with `--worker-stack-kib`, in bytes.
fn worker_stack_from_env() -> Result<Option<usize>, Failure> {
    let Some(value) = std::env::var_os(WORKER_STACK_ENV) else {
        return Ok(None);
    };
    value
        .to_str()
        .and_then(|v| v.parse::<usize>().ok())
        .and_then(|kib| kib.checked_mul(1024))
        .map(Some)
        .ok_or_else(|| Failure::Usage(format!("{WORKER_STACK_ENV} must be a number of KiB")))
}

/// `--child SCENARIO --fd N`: serve until the parent closes the socket.
fn child_main(args: &[String]) -> Result<(), Failure> {
    let [name, flag, fd] = args else {
        return Err(Failure::Usage(format!(
            "expected {CHILD_FLAG} SCENARIO {FD_FLAG} N"
        )));
    };
    if flag != FD_FLAG {
        return Err(Failure::Usage(format!(
            "expected {FD_FLAG} N after the scenario"
        )));
    }
    let fd: RawFd = fd
        .parse()
        .map_err(|_| Failure::Usage(format!("{FD_FLAG} needs a descriptor number")))?;
    let mut scenario =
        scenarios::find(name).ok_or_else(|| Failure::Usage(format!("unknown scenario {name}")))?;
    if let Some(bytes) = worker_stack_from_env()? {
        multiprocess_thread_map::set_worker_stack_size(bytes);
    }
    // SAFETY: this is start-up of the child process: the parent left `fd` open across exec for
    // us alone, and nothing in this process has opened or adopted a descriptor since, so no
    // other owner of that number exists.
    let conn = unsafe { child::adopt_inherited_fd(fd) }?;
    child::report_sleeps()?;
    match scenario.serve(conn) {
        // A parent that died mid-call is the end of the run, not the child's failure.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        result => Ok(result?),
    }
}
