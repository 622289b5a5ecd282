//! `mpbench`: end-to-end IPC latency between two processes.
//!
//! ```text
//! mpbench SCENARIO [--json] [--calls N] [--warmup N] [--round N]
//! ```
//!
//! `SCENARIO` is a scenario name or `all` (every scenario, interleaved in rounds). Prints one
//! JSON object per scenario per line; without `--json`, a table follows. The hidden form
//! `mpbench --child SCENARIO --fd N` is the child process, serving over inherited descriptor N.

use std::io;
use std::os::fd::RawFd;
use std::process::ExitCode;

use stress::child::{self, CHILD_FLAG, FD_FLAG};
use stress::{Options, run, scenarios};

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
        "usage: mpbench SCENARIO [--json] [--calls N] [--warmup N] [--round N]\n\
         scenarios: all, {}\n\
         defaults: --calls 20000 --warmup 2000 --round 2000 (round: calls per scenario per turn with `all`)",
        scenarios::names().join(", ")
    )
}

fn bench_main(args: &[String]) -> Result<(), Failure> {
    let mut opts = Options::default();
    let mut json = false;
    let mut name = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--calls" => opts.calls = number(arg, args.next())?,
            "--warmup" => opts.warmup = number(arg, args.next())?,
            "--round" => opts.round = number(arg, args.next())?,
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
    if opts.calls == 0 || opts.round == 0 {
        return Err(Failure::Usage(
            "--calls and --round must be at least 1".into(),
        ));
    }
    let mut chosen = if name == "all" {
        scenarios::all()
    } else {
        vec![
            scenarios::find(name)
                .ok_or_else(|| Failure::Usage(format!("unknown scenario {name}")))?,
        ]
    };
    let exe = std::env::current_exe()?;
    let reports = run::run(&exe, &mut chosen, &opts)?;
    for report in &reports {
        println!("{}", report.to_json());
    }
    if !json {
        println!();
        print!("{}", run::table(&reports));
    }
    Ok(())
}

fn number(flag: &str, value: Option<&String>) -> Result<usize, Failure> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure::Usage(format!("{flag} needs a number")))
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
    // SAFETY: this is start-up of the child process: the parent left `fd` open across exec for
    // us alone, and nothing in this process has opened or adopted a descriptor since, so no
    // other owner of that number exists.
    let conn = unsafe { child::adopt_inherited_fd(fd) }?;
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
