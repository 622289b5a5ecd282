//! The example's three programs, all in Rust, in separate processes: the
//! client binary against the calculator and printer binaries, and the
//! library's clients against each child directly. Every test runs under a
//! watchdog; nothing sleeps.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_interop::example::{self, Config};
use mp_interop::init::InitInterface;
use mp_interop::init_capnp::init_interface;
use mp_interop::printer::PrinterInterface;
use mp_interop::printers::PrintLog;
use mp_interop::process::spawn_with_fd;
use mp_testkit::watchdog::guard;
use multiprocess::{Connection, Error, EventLoop, Interface, LoopHandle, os_thread_id};

const LIMIT: Duration = Duration::from_secs(60);
const CLIENT: &str = env!("CARGO_BIN_EXE_mp-interop-client");
const CALCULATOR: &str = env!("CARGO_BIN_EXE_mp-interop-calculator");
const PRINTER: &str = env!("CARGO_BIN_EXE_mp-interop-printer");

/// Connects to a child serving `InitInterface` on `stream`, keeping the
/// connection (to watch it) beside the generated client.
fn connect(event_loop: &LoopHandle, stream: UnixStream) -> (Connection, Arc<dyn InitInterface>) {
    let (connection, init) =
        Connection::connect::<init_interface::Client>(event_loop, stream).expect("construct");
    (
        connection,
        <dyn InitInterface as Interface>::from_remote(init),
    )
}

/// A child serving `InitInterface`, connected.
struct ChildPeer {
    init: Arc<dyn InitInterface>,
    connection: Connection,
    child: KillOnDrop,
    _event_loop: LoopHandle,
}

/// A child process killed if still running when dropped (a failed test).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl ChildPeer {
    fn spawn(exe: &str) -> Self {
        let event_loop = EventLoop::start("test-loop").expect("event loop");
        let mut command = Command::new(exe);
        command.stdout(Stdio::null());
        let (child, stream): (Child, UnixStream) =
            spawn_with_fd(&mut command).expect("spawn the child");
        let (connection, init) = connect(&event_loop, stream);
        Self {
            init,
            connection,
            child: KillOnDrop(child),
            _event_loop: event_loop,
        }
    }

    /// Hangs up and returns the child's exit status.
    fn hang_up(self) -> std::process::ExitStatus {
        let ChildPeer {
            init,
            connection,
            mut child,
            ..
        } = self;
        drop(init);
        drop(connection);
        child.0.wait().expect("wait for the child")
    }
}

/// A printer of this process that records where it ran and when it was
/// dropped; it fails to print texts containing `refuse`, if set.
struct LocalPrinter {
    lines: Arc<PrintLog>,
    dropped_on: Arc<Mutex<Option<i64>>>,
    refuse: Option<&'static str>,
}

impl LocalPrinter {
    fn new() -> (Self, Arc<PrintLog>, Arc<Mutex<Option<i64>>>) {
        let lines = PrintLog::new();
        let dropped_on = Arc::new(Mutex::new(None));
        (
            Self {
                lines: lines.clone(),
                dropped_on: dropped_on.clone(),
                refuse: None,
            },
            lines,
            dropped_on,
        )
    }
}

impl PrinterInterface for LocalPrinter {
    fn print(&self, text: &str) -> multiprocess::Result<()> {
        if let Some(refuse) = self.refuse
            && text.contains(refuse)
        {
            return Err(Error::failed(format!("refusing to print {text:?}")));
        }
        self.lines.print(text)
    }
}

impl Drop for LocalPrinter {
    fn drop(&mut self) {
        *self.dropped_on.lock().expect("lock") = Some(os_thread_id());
    }
}

#[test]
fn the_client_binary_passes_against_the_rust_children() {
    guard("client binary", LIMIT, || {
        let output = Command::new(CLIENT)
            .args([CALCULATOR, PRINTER])
            .env("MP_INTEROP_TIMEOUT_SECS", "50")
            .output()
            .expect("run mp-interop-client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "mp-interop-client failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        for expected in [
            "mp-interop-printer: 1+2 = 3",
            "mp-interop-printer: 6*7 = 42",
            "mp-interop-client: OK (5 equations solved",
            "the thread blocked in destroy",
        ] {
            assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
        }
    });
}

#[test]
fn the_client_binary_fails_clearly() {
    guard("client binary failures", LIMIT, || {
        let output = Command::new(CLIENT)
            .output()
            .expect("run without arguments");
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stderr).contains("Usage: mp-interop-client"));

        // A "calculator" that exits at once: the handshake fails, promptly.
        let output = Command::new(CLIENT)
            .args(["/bin/true", PRINTER])
            .env("MP_INTEROP_TIMEOUT_SECS", "20")
            .output()
            .expect("run with a calculator that exits");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("FAILED: construct handshake with the calculator failed"),
            "{stderr}"
        );
    });
}

#[test]
fn the_client_watchdog_ends_a_hung_run() {
    guard("client watchdog", LIMIT, || {
        // A "calculator" that never answers the handshake; it reads its
        // socket (fd number in $1) until the client hangs up, then exits.
        let dir = std::env::temp_dir().join(format!("mp-interop-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let hang = dir.join("hang.sh");
        std::fs::write(&hang, "#!/bin/sh\nexec cat <&\"$1\" >/dev/null\n")
            .expect("write the script");
        std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("make it executable");
        let output = Command::new(CLIENT)
            .arg(&hang)
            .arg(PRINTER)
            .env("MP_INTEROP_TIMEOUT_SECS", "2")
            .output()
            .expect("run mp-interop-client");
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(mp_interop::watchdog::WATCHDOG_EXIT),
            "{stderr}"
        );
        assert!(stderr.contains("WATCHDOG: not done after 2s"), "{stderr}");
    });
}

#[test]
fn the_example_run_checks_every_report() {
    guard("example run", LIMIT, || {
        let outcome =
            example::run(&Config::new(CALCULATOR, PRINTER), None, &|_| {}).expect("the run");
        assert_eq!(
            outcome.reports,
            [
                "1+2 = 3",
                "3*4 = 12",
                "10-12 = -2",
                "6*7 = 42",
                "100-1 = 99"
            ]
        );
        assert!(
            outcome
                .printer_output
                .iter()
                .any(|line| line == "mp-interop-printer: 10-12 = -2"),
            "{:?}",
            outcome.printer_output
        );
    });
}

#[test]
fn reports_run_on_the_thread_blocked_in_solve_equation() {
    guard("reports on the calling thread", LIMIT, || {
        let peer = ChildPeer::spawn(CALCULATOR);
        let (printer, lines, dropped_on) = LocalPrinter::new();
        let calculator = peer
            .init
            .make_calculator(Arc::new(printer))
            .expect("makeCalculator");
        let me = os_thread_id();
        calculator.solve_equation("2*21").expect("solve");
        calculator.solve_equation(" -5 - 6 ").expect("solve");
        calculator.solve_equation("x/2").expect("solve");
        let seen: Vec<(String, i64)> = lines
            .lines()
            .into_iter()
            .map(|line| (line.text, line.tid))
            .collect();
        assert_eq!(
            seen,
            [
                ("2*21 = 42".to_string(), me),
                ("-5 - 6 = -11".to_string(), me),
                (
                    "x/2: cannot solve: expected `a+b`, `a-b` or `a*b`".to_string(),
                    me
                ),
            ]
        );

        // Another application thread's reports run on that thread.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let them = os_thread_id();
                calculator.solve_equation("1+1").expect("solve");
                let last = lines.lines().pop().expect("a line");
                assert_eq!((last.text.as_str(), last.tid), ("1+1 = 2", them));
            });
        });

        // Destroying the calculator (dropping our last handle) destroys our
        // printer, on this thread.
        drop(calculator);
        assert_eq!(*dropped_on.lock().expect("lock"), Some(me));
        assert!(peer.hang_up().success(), "the calculator exits with 0");
    });
}

#[test]
fn a_failing_report_fails_solve_equation() {
    guard("a failing report", LIMIT, || {
        let peer = ChildPeer::spawn(CALCULATOR);
        let (mut printer, _lines, _dropped) = LocalPrinter::new();
        printer.refuse = Some("13");
        let calculator = peer
            .init
            .make_calculator(Arc::new(printer))
            .expect("makeCalculator");
        match calculator.solve_equation("6+7") {
            Err(Error::Failed(failure)) => {
                assert!(failure.message.contains("refusing to print"), "{failure:?}")
            }
            other => panic!("expected the printer's error, got {other:?}"),
        }
        // The connection and the worker are still fine.
        calculator
            .solve_equation("1+2")
            .expect("solve after a failure");
    });
}

#[test]
fn the_printer_child_prints_on_stdout() {
    guard("printer child output", LIMIT, || {
        let event_loop = EventLoop::start("test-loop").expect("event loop");
        let mut command = Command::new(PRINTER);
        command.stdout(Stdio::piped());
        let (mut child, stream) = spawn_with_fd(&mut command).expect("spawn");
        let stdout = child.stdout.take().expect("piped stdout");
        let (connection, init) = connect(&event_loop, stream);
        let printer = init.make_printer().expect("makePrinter");
        printer.print("hello").expect("print");
        std::thread::scope(|scope| {
            scope.spawn(|| printer.print("from another thread").expect("print"));
        });
        printer.print("with a newline\n").expect("print");
        drop(printer); // destroys the child's printer
        drop((init, connection));
        assert!(child.wait().expect("wait").success());
        let output = std::io::read_to_string(stdout).expect("read the output");
        assert_eq!(
            output,
            "mp-interop-printer: hello\nmp-interop-printer: from another thread\nmp-interop-printer: with a newline\n"
        );
    });
}

#[test]
fn each_child_refuses_the_other_role() {
    guard("roles", LIMIT, || {
        let printer = ChildPeer::spawn(PRINTER);
        let (local, _, _) = LocalPrinter::new();
        match printer.init.make_calculator(Arc::new(local)) {
            Err(Error::Failed(failure)) => assert!(
                failure
                    .message
                    .contains("mp-interop-printer does not implement InitInterface.makeCalculator"),
                "{failure:?}"
            ),
            Err(other) => panic!("expected a refusal, got {other:?}"),
            Ok(_) => panic!("expected a refusal, got an object"),
        }
        let calculator = ChildPeer::spawn(CALCULATOR);
        match calculator.init.make_printer() {
            Err(Error::Failed(failure)) => assert!(
                failure
                    .message
                    .contains("mp-interop-calculator does not implement InitInterface.makePrinter"),
                "{failure:?}"
            ),
            Err(other) => panic!("expected a refusal, got {other:?}"),
            Ok(_) => panic!("expected a refusal, got an object"),
        }
        assert!(printer.hang_up().success());
        assert!(calculator.hang_up().success());
    });
}

#[test]
fn a_killed_calculator_fails_calls_promptly() {
    guard("killed calculator", LIMIT, || {
        let mut peer = ChildPeer::spawn(CALCULATOR);
        let (printer, _, _) = LocalPrinter::new();
        let calculator = peer
            .init
            .make_calculator(Arc::new(printer))
            .expect("makeCalculator");
        calculator.solve_equation("1+2").expect("solve");
        peer.child.0.kill().expect("kill");
        peer.child.0.wait().expect("reap");
        assert!(
            peer.connection.wait_disconnected(LIMIT).is_some(),
            "the connection notices the death"
        );
        match calculator.solve_equation("1+2") {
            Err(e) => assert!(e.is_disconnected(), "{e:?}"),
            Ok(()) => panic!("a dead calculator solved an equation"),
        }
        // Dropping (and so destroying) it now fails quietly.
        drop(calculator);
    });
}

#[test]
fn children_refuse_bad_arguments() {
    guard("bad arguments", LIMIT, || {
        for exe in [CALCULATOR, PRINTER] {
            let name = Path::new(exe)
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a file name");
            for args in [&[][..], &["1", "2"][..], &["notanfd"][..], &["0"][..]] {
                let output = Command::new(exe)
                    .args(args)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run the child");
                assert_eq!(output.status.code(), Some(1), "{name} {args:?}");
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(stderr.contains(name), "{name} {args:?}: {stderr}");
            }
        }
    });
}
