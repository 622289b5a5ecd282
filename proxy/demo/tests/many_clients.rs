//! Many clients at once against one listening server (issue 15, item 6):
//! 64 `load-client` processes, each calling from 4 threads at once; every
//! client thread gets its own worker and its own answers; clients
//! SIGKILLed in the middle of a call free their workers while the others
//! carry on; once all have gone, the server's threads and descriptors are
//! back where they started and its memory within 8 MiB.

use std::collections::BTreeSet;
use std::time::Duration;

use mp_testkit::line_process::{LineProcess, TempDir};
use mp_testkit::watchdog::guard;
use multiprocess_demo::ProcessStats;

const BOUND: Duration = Duration::from_secs(120);
const CLIENTS: usize = 64;
const THREADS: usize = 4;
const CALLS: u32 = 20;
/// Clients killed in the middle of a call.
const VICTIMS: usize = 4;
/// How much the server's memory may grow, in KiB.
const RSS_SLACK_KIB: u64 = 8 * 1024;

struct Server {
    process: LineProcess,
    address: String,
}

impl Server {
    fn start(dir: &std::path::Path) -> Self {
        let address = format!("unix:{}", dir.join("load.sock").display());
        let mut process = LineProcess::start(env!("CARGO_BIN_EXE_load-server"), &[&address]);
        let line = process.line();
        assert_eq!(line, format!("listening {address}"));
        Self { process, address }
    }

    /// Waits until at most `count` workers are alive and joined.
    fn settle(&mut self, count: usize) {
        self.process.send(&format!("settle {count} 60000"));
        let line = self.process.line();
        assert!(
            line.starts_with("settled true "),
            "the server's workers did not drop to {count}: {line}"
        );
    }

    fn workers(&mut self) -> usize {
        self.process.send("workers");
        let line = self.process.line();
        line.strip_prefix("workers ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    }

    fn thread_names(&self) -> Vec<String> {
        multiprocess_demo::thread_names(self.process.pid())
    }

    fn stats(&self) -> ProcessStats {
        ProcessStats::read(Some(self.process.pid())).expect("read the server's /proc")
    }
}

/// A round's report of one client thread: its name, its worker, calls,
/// wrong answers.
#[derive(Debug)]
struct ThreadReport {
    thread: String,
    worker: String,
    calls: u32,
    wrong: u32,
}

fn parse_report(line: &str) -> ThreadReport {
    let parsed = (|| {
        let rest = line.strip_prefix("thread ")?;
        let (thread, rest) = rest.split_once(" worker ")?;
        let (worker, rest) = rest.rsplit_once(" calls ")?;
        let (calls, wrong) = rest.split_once(" wrong ")?;
        Some(ThreadReport {
            thread: thread.into(),
            worker: worker.into(),
            calls: calls.parse().ok()?,
            wrong: wrong.parse().ok()?,
        })
    })();
    parsed.unwrap_or_else(|| panic!("not a thread report: {line}"))
}

/// Reads one client's round: a report per thread, checked.
fn read_round(client: &mut LineProcess) -> Vec<ThreadReport> {
    let mut reports = Vec::new();
    loop {
        let line = client.line();
        if line == "round done" {
            break;
        }
        let report = parse_report(&line);
        assert_eq!(report.calls, CALLS, "{line}");
        assert_eq!(report.wrong, 0, "every answer is the thread's own: {line}");
        assert!(
            report
                .worker
                .ends_with(&format!("(from {})", report.thread)),
            "the worker serves this very thread: {line}"
        );
        reports.push(report);
    }
    assert_eq!(reports.len(), THREADS);
    reports
}

#[test]
fn sixty_four_clients_of_four_threads_each() {
    guard("sixty_four_clients_of_four_threads_each", BOUND, || {
        let dir = TempDir::new("mp-many", "64");
        let mut server = Server::start(dir.path());
        let start = |server: &Server| {
            let mut client = LineProcess::start(
                env!("CARGO_BIN_EXE_load-client"),
                &[&server.address, &THREADS.to_string(), &CALLS.to_string()],
            );
            assert_eq!(client.line(), "connected");
            client
        };
        // One client first, so that what the server starts once (and keeps)
        // is in the baseline.
        let mut first = start(&server);
        first.send("round");
        read_round(&mut first);
        first.finish();
        server.settle(0);
        let before = server.stats();
        let names_before = server.thread_names();

        let mut clients: Vec<LineProcess> = (0..CLIENTS).map(|_| start(&server)).collect();
        // Every client's threads call at once (each client's wait at a
        // barrier); the clients run side by side.
        for client in &mut clients {
            client.send("round");
        }
        let mut workers = BTreeSet::new();
        let mut first_round = Vec::new();
        for client in &mut clients {
            let reports = read_round(client);
            for report in &reports {
                assert!(
                    workers.insert(report.worker.clone()),
                    "a worker served two client threads: {}",
                    report.worker
                );
            }
            first_round.push(reports);
        }
        assert_eq!(workers.len(), CLIENTS * THREADS);
        assert_eq!(server.workers(), CLIENTS * THREADS);
        let during = server.stats();

        // Some clients are stopped in the middle of a call...
        let mut victims: Vec<LineProcess> = clients.drain(..VICTIMS).collect();
        for victim in &mut victims {
            victim.send("hold");
            let line = victim.line();
            assert!(line.starts_with("holding "), "{line}");
        }
        // ...and killed while the others call again.
        for client in &mut clients {
            client.send("round");
        }
        for victim in &mut victims {
            victim.child().kill().expect("SIGKILL a client");
            victim.child().wait().expect("reap it");
        }
        for (client, before) in clients.iter_mut().zip(&first_round[VICTIMS..]) {
            let again = read_round(client);
            for now in &again {
                let then = before
                    .iter()
                    .find(|then| then.thread == now.thread)
                    .unwrap_or_else(|| panic!("a thread that was not there: {now:?}"));
                assert_eq!(now.worker, then.worker, "a client thread keeps its worker");
            }
        }
        // The killed clients' workers, the one in the middle of a call too,
        // are gone.
        server.settle((CLIENTS - VICTIMS) * THREADS);

        for client in clients {
            client.finish();
        }
        server.settle(0);
        let after = server.stats();
        eprintln!("server before: {before}; with {CLIENTS} clients: {during}; after: {after}");
        let names_after = server.thread_names();
        assert_eq!(
            multiprocess_demo::threads_beyond(&names_before, &names_after),
            Vec::<String>::new(),
            "threads: {names_before:?} -> {names_after:?}"
        );
        assert_eq!(after.fds, before.fds, "descriptors: {before} -> {after}");
        assert!(
            after.rss_kib <= before.rss_kib + RSS_SLACK_KIB,
            "memory: {before} -> {after}"
        );
        server.process.finish();
    });
}

/// The server settles only once its clients' connections are closed, not
/// just their workers gone (`Listener::wait_connections`): a client that is
/// connected (with no worker, having made no call) keeps it unsettled until
/// it exits.
#[test]
fn settling_waits_for_connections_to_close() {
    guard("settling_waits_for_connections_to_close", BOUND, || {
        let dir = TempDir::new("mp-many", "settle");
        let mut server = Server::start(dir.path());
        let mut client = LineProcess::start(
            env!("CARGO_BIN_EXE_load-client"),
            &[&server.address, "1", "1"],
        );
        assert_eq!(client.line(), "connected");
        assert_eq!(server.workers(), 0, "the client has made no call");
        server.process.send("settle 0 200");
        let line = server.process.line();
        assert!(
            line.starts_with("settled false "),
            "settled with a connection open: {line}"
        );
        client.finish();
        server.settle(0);
        server.process.finish();
    });
}
