//! The many-clients test's client (`tests/many_clients.rs`): connects to a
//! `load-server` and keeps THREADS application threads, which call it at
//! once, a round at a time.
//!
//! `load-client ADDRESS THREADS CALLS`; prints `connected`, then obeys
//! stdin, a line at a time:
//!
//! - `round`: every thread makes CALLS `echo` calls at once; prints, per
//!   thread, `thread ME worker W calls N wrong K` (K answers that were not
//!   this thread's own, or came from another worker than its first), then
//!   `round done`;
//! - `hold`: the first thread calls `hold`, whose callback (run on that
//!   thread, while the server's worker waits for it) prints `holding W`
//!   and never returns: the call stays in the middle of running until the
//!   process is killed.
//!
//! At the end of input it disconnects and exits with 0.

use std::io::BufRead;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Barrier};

use multiprocess::Address;
use multiprocess_demo::load::{Holding, Load};
use multiprocess_demo::say;

/// What an application thread is asked to do.
enum Job {
    Round,
    Hold,
}

/// One round of one thread: its own name, its worker, calls, wrong answers.
type Report = (String, String, u32, u32);

fn round(load: &dyn Load, calls: u32, barrier: &Barrier) -> Report {
    let me = multiprocess::names::current_thread_name();
    barrier.wait();
    let mut worker: Option<String> = None;
    let mut wrong = 0;
    for seq in 0..calls {
        match load.echo(&me, seq) {
            Ok(out) => {
                let first = worker.get_or_insert_with(|| out.worker.clone());
                if out.answer != format!("{me}#{seq}") || *first != out.worker {
                    wrong += 1;
                }
            }
            Err(e) => {
                say(&format!("error {me}: {e}"));
                wrong += 1;
            }
        }
    }
    (me, worker.unwrap_or_default(), calls, wrong)
}

fn main() {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [address, threads, calls] => match (
            address.parse::<Address>(),
            threads.parse::<usize>(),
            calls.parse::<u32>(),
        ) {
            (Ok(address), Ok(threads), Ok(calls)) if threads > 0 => Some((address, threads, calls)),
            _ => None,
        },
        _ => None,
    };
    let Some((address, threads, calls)) = parsed else {
        eprintln!("usage: load-client ADDRESS THREADS CALLS");
        std::process::exit(2);
    };
    let (_connection, load) = match multiprocess::connect_to::<dyn Load>(&address) {
        Ok(connected) => connected,
        Err(e) => {
            say(&format!("error cannot connect: {e}"));
            std::process::exit(1);
        }
    };
    let barrier = Arc::new(Barrier::new(threads));
    let (reports_tx, reports) = channel::<Report>();
    let mut jobs: Vec<Sender<Job>> = Vec::new();
    for i in 0..threads {
        let (job_tx, job_rx) = channel();
        let (load, barrier, reports_tx) = (load.clone(), barrier.clone(), reports_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("app-{i}"))
            .spawn(move || {
                while let Ok(job) = job_rx.recv() {
                    match job {
                        Job::Round => {
                            let _ = reports_tx.send(round(&*load, calls, &barrier));
                        }
                        Job::Hold => {
                            let during: Holding = Arc::new(|worker| {
                                say(&format!("holding {worker}"));
                                loop {
                                    std::thread::park();
                                }
                            });
                            if let Err(e) = load.hold(during) {
                                say(&format!("error hold: {e}"));
                            }
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => jobs.push(job_tx),
            Err(e) => {
                say(&format!("error cannot start a thread: {e}"));
                std::process::exit(1);
            }
        }
    }
    drop(reports_tx);
    say("connected");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "round" => {
                for job in &jobs {
                    let _ = job.send(Job::Round);
                }
                for _ in 0..threads {
                    let Ok((me, worker, calls, wrong)) = reports.recv() else {
                        say("error an application thread ended");
                        std::process::exit(1);
                    };
                    say(&format!(
                        "thread {me} worker {worker} calls {calls} wrong {wrong}"
                    ));
                }
                say("round done");
            }
            "hold" => {
                if let Some(job) = jobs.first() {
                    let _ = job.send(Job::Hold);
                }
            }
            other => say(&format!("error unknown command {other:?}")),
        }
    }
    // Dropping the senders ends the threads; the connection closes with
    // the process.
}
