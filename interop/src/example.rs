//! The `mpexample` scenario, checked: what `mp-interop-client` runs.
//!
//! Like libmultiprocess's `mpexample`, [`run`] spawns a printer process and
//! a calculator process (each given its socket's fd number as its only
//! argument), runs the `construct` handshake with both, asks the printer
//! process for a printer, and asks the calculator process for a calculator
//! that reports to a printer of *this* process, which forwards every line
//! to the printer process. Then it solves equations, from two application
//! threads at once, and checks each step:
//!
//! - every `solveEquation` makes exactly one `print` call back to this
//!   process, and it runs on the very thread blocked in `solveEquation`
//!   (seen through a thread-local, so no other thread can pass for it);
//! - the report names the equation, and, if it has the Rust calculator's
//!   form `<eqn> = <value>`, the value is right;
//! - destroying the calculator destroys the forwarding printer, on the
//!   thread that destroyed the calculator (as libmultiprocess does);
//! - both children exit with status 0 once their connection is closed;
//! - the printer process printed every report on its stdout.
//!
//! The processes may be the C++ `mpcalculator`/`mpprinter` or the Rust
//! `mp-interop-calculator`/`mp-interop-printer`, in any mix.

use std::cell::RefCell;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use multiprocess::names::current_thread_name;
use multiprocess::{EventLoop, os_thread_id};

use crate::calculator::CalculatorInterface;
use crate::equation;
use crate::init::InitInterface;
use crate::printer::PrinterInterface;
use crate::process::spawn_with_fd;
use crate::watchdog::Watchdog;

/// The equations the main application thread solves by default.
pub const MAIN_EQUATIONS: &[&str] = &["1+2", "3*4", "10-12"];
/// The equations a second application thread solves meanwhile.
pub const SECOND_THREAD_EQUATIONS: &[&str] = &["6*7", "100-1"];

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The calculator program (`mpcalculator` or `mp-interop-calculator`).
    pub calculator: PathBuf,
    /// The printer program (`mpprinter` or `mp-interop-printer`).
    pub printer: PathBuf,
    /// Equations for the main application thread.
    pub main_equations: Vec<String>,
    /// Equations for a second application thread, solved concurrently (none:
    /// no second thread).
    pub second_thread_equations: Vec<String>,
}

impl Config {
    /// The default scenario with the given programs.
    pub fn new(calculator: impl Into<PathBuf>, printer: impl Into<PathBuf>) -> Self {
        Self {
            calculator: calculator.into(),
            printer: printer.into(),
            main_equations: MAIN_EQUATIONS.iter().map(|s| s.to_string()).collect(),
            second_thread_equations: SECOND_THREAD_EQUATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// What a successful run saw.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every report the calculator sent, in the order the equations were
    /// listed (main thread first).
    pub reports: Vec<String>,
    /// The printer process's stdout, line by line.
    pub printer_output: Vec<String>,
}

/// One call of the forwarding printer.
#[derive(Debug, Clone)]
struct PrintCall {
    text: String,
    tid: i64,
    thread: String,
}

/// What the forwarding printer saw, shared with the checks.
#[derive(Debug, Default)]
struct CallbackLog {
    prints: Mutex<Vec<PrintCall>>,
    destroyed_on: Mutex<Option<(i64, String)>>,
}

thread_local! {
    /// The texts the forwarding printer printed on this thread.
    static PRINTED_HERE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The printer this process passes to `makeCalculator`: records where each
/// call ran, then forwards it to the printer process (as `mpexample` hands
/// the calculator its printer process's printer, through itself).
struct ForwardingPrinter {
    forward: Option<Arc<dyn PrinterInterface>>,
    log: Arc<CallbackLog>,
}

impl PrinterInterface for ForwardingPrinter {
    fn print(&self, text: &str) -> multiprocess::Result<()> {
        self.log
            .prints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PrintCall {
                text: text.to_string(),
                tid: os_thread_id(),
                thread: current_thread_name(),
            });
        PRINTED_HERE.with(|p| p.borrow_mut().push(text.to_string()));
        match &self.forward {
            Some(printer) => printer.print(text),
            None => Ok(()),
        }
    }
}

impl Drop for ForwardingPrinter {
    fn drop(&mut self) {
        *self
            .log
            .destroyed_on
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((os_thread_id(), current_thread_name()));
        // Destroys the printer process's printer, from this thread.
        drop(self.forward.take());
    }
}

/// A child process, killed if still running when dropped (on failure).
struct ChildGuard<'w> {
    what: &'static str,
    child: Child,
    watchdog: Option<&'w Watchdog>,
    reaped: bool,
}

impl<'w> ChildGuard<'w> {
    fn spawn(
        what: &'static str,
        program: &Path,
        capture_stdout: bool,
        watchdog: Option<&'w Watchdog>,
    ) -> Result<(Self, std::os::unix::net::UnixStream), String> {
        let mut command = Command::new(program);
        if capture_stdout {
            command.stdout(Stdio::piped());
        }
        let (child, stream) = spawn_with_fd(&mut command)
            .map_err(|e| format!("cannot start the {what} `{}`: {e}", program.display()))?;
        if let Some(watchdog) = watchdog {
            watchdog.watch_child(child.id());
        }
        Ok((
            Self {
                what,
                child,
                watchdog,
                reaped: false,
            },
            stream,
        ))
    }

    fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for the child to exit (it should, its connection being
    /// closed): fails unless it exits with status 0.
    fn wait_success(mut self) -> Result<(), String> {
        let status = self.child.wait();
        self.reaped = true;
        if let Some(watchdog) = self.watchdog {
            watchdog.forget_child(self.child.id());
        }
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!(
                "the {} process exited with {status} after its connection closed",
                self.what
            )),
            Err(e) => Err(format!("cannot wait for the {} process: {e}", self.what)),
        }
    }
}

impl Drop for ChildGuard<'_> {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if let Some(watchdog) = self.watchdog {
                watchdog.forget_child(self.child.id());
            }
        }
    }
}

/// Reads the printer's stdout to its end, echoing each line to ours.
fn read_output(stdout: ChildStdout) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            crate::say(&line);
            lines.push(line);
        }
        lines
    })
}

/// Checks the calculator's report on `eqn`: it must name the equation, and
/// a Rust calculator's `<eqn> = <value>` must have the right value (the C++
/// calculator's report names the equation only).
pub fn check_report(eqn: &str, text: &str) -> Result<(), String> {
    let text = text.trim_end();
    if !text.contains(eqn) {
        return Err(format!(
            "the report for `{eqn}` does not mention it: {text:?}"
        ));
    }
    if let Some(value) = text.strip_prefix(&format!("{eqn} = ")) {
        let expected = equation::solve(eqn)
            .map_err(|e| format!("`{eqn}` cannot be solved ({e}), yet the report is {text:?}"))?;
        if value != expected.to_string() {
            return Err(format!(
                "wrong answer for `{eqn}`: {text:?}, expected {expected}"
            ));
        }
    }
    Ok(())
}

/// Solves `equations` on the calling thread, checking that each report ran
/// here; returns the reports.
fn solve_all(
    calculator: &dyn CalculatorInterface,
    log: &CallbackLog,
    equations: &[String],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<String>, String> {
    let me = os_thread_id();
    let thread = current_thread_name();
    let mut reports = Vec::new();
    for eqn in equations {
        PRINTED_HERE.with(|p| p.borrow_mut().clear());
        calculator
            .solve_equation(eqn)
            .map_err(|e| format!("solveEquation(\"{eqn}\") from {thread} failed: {e}"))?;
        let printed = PRINTED_HERE.with(|p| std::mem::take(&mut *p.borrow_mut()));
        match printed.as_slice() {
            [text] => {
                check_report(eqn, text)?;
                progress(&format!(
                    "solveEquation(\"{eqn}\") -> print({:?}) ran on {thread} (tid {me}), the thread blocked in solveEquation",
                    text.trim_end()
                ));
                reports.push(text.clone());
            }
            [] => {
                let elsewhere: Vec<String> = log
                    .prints
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .filter(|call| call.text.contains(eqn.as_str()))
                    .map(|call| format!("{} (tid {})", call.thread, call.tid))
                    .collect();
                return Err(format!(
                    "solveEquation(\"{eqn}\") returned, but its print callback did not run on {thread} (tid {me}), the thread blocked in it; it ran on: {elsewhere:?}"
                ));
            }
            many => {
                return Err(format!(
                    "solveEquation(\"{eqn}\") made {} print callbacks, expected one: {many:?}",
                    many.len()
                ));
            }
        }
    }
    Ok(reports)
}

/// Runs the scenario (see the module documentation); `progress` hears of
/// each step as it is checked. Children are registered with `watchdog`, so
/// that it kills them if it fires. Fails with a description of the first
/// check that failed.
pub fn run(
    config: &Config,
    watchdog: Option<&Watchdog>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Outcome, String> {
    let event_loop = EventLoop::start("interop-client")
        .map_err(|e| format!("cannot start the event loop: {e}"))?;

    // The printer first, then the calculator, as mpexample does.
    let (mut printer_child, printer_stream) =
        ChildGuard::spawn("printer", &config.printer, true, watchdog)?;
    let output = printer_child
        .take_stdout()
        .map(read_output)
        .ok_or("the printer's stdout was not captured")?;
    let (calculator_child, calculator_stream) =
        ChildGuard::spawn("calculator", &config.calculator, false, watchdog)?;
    progress(&format!(
        "spawned printer {} (pid {}) and calculator {} (pid {})",
        config.printer.display(),
        printer_child.child.id(),
        config.calculator.display(),
        calculator_child.child.id()
    ));

    // Each connection stays open while we hold an object of its peer's.
    let printer_init = multiprocess::connect::<dyn InitInterface>(&event_loop, printer_stream)
        .map_err(|e| format!("construct handshake with the printer failed: {e}"))?;
    let calculator_init =
        multiprocess::connect::<dyn InitInterface>(&event_loop, calculator_stream)
            .map_err(|e| format!("construct handshake with the calculator failed: {e}"))?;
    progress("construct: ThreadMaps exchanged with both processes");

    let printer = printer_init
        .make_printer()
        .map_err(|e| format!("makePrinter failed: {e}"))?;
    let log = Arc::new(CallbackLog::default());
    let calculator = calculator_init
        .make_calculator(Arc::new(ForwardingPrinter {
            forward: Some(printer),
            log: log.clone(),
        }))
        .map_err(|e| format!("makeCalculator failed: {e}"))?;
    progress("makePrinter, makeCalculator(our forwarding printer): ok");

    let reports = thread::scope(|scope| -> Result<Vec<String>, String> {
        let second = if config.second_thread_equations.is_empty() {
            None
        } else {
            let (calculator, log) = (&*calculator, &*log);
            let equations = &config.second_thread_equations;
            Some(
                thread::Builder::new()
                    .name("interop-app-2".into())
                    .spawn_scoped(scope, move || {
                        solve_all(calculator, log, equations, progress)
                    })
                    .map_err(|e| format!("cannot start a second application thread: {e}"))?,
            )
        };
        let mut reports = solve_all(&*calculator, &log, &config.main_equations, progress);
        if let Some(second) = second {
            let theirs = second
                .join()
                .map_err(|_| "the second application thread panicked".to_string())
                .and_then(|r| r);
            reports = reports.and_then(|mut ours| {
                ours.extend(theirs?);
                Ok(ours)
            });
        }
        reports
    })?;

    let me = (os_thread_id(), current_thread_name());
    // Our last handle: dropping it calls `destroy`, a blocking call, so the
    // calculator (and, through it, our forwarding printer) is destroyed
    // before `drop` returns.
    drop(calculator);
    match log
        .destroyed_on
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        Some(on) if on.0 == me.0 => progress(&format!(
            "Calculator.destroy destroyed our forwarding printer on {} (tid {}), the thread blocked in destroy",
            me.1, me.0
        )),
        Some(on) => {
            return Err(format!(
                "Calculator.destroy destroyed our forwarding printer on {} (tid {}), not on {} (tid {}), the thread blocked in destroy",
                on.1, on.0, me.1, me.0
            ));
        }
        None => {
            return Err(
                "Calculator.destroy returned, but our forwarding printer was not destroyed"
                    .to_string(),
            );
        }
    }

    drop(calculator_init);
    calculator_child.wait_success()?;
    progress("the calculator process exited with status 0 after we hung up");

    drop(printer_init);
    printer_child.wait_success()?;
    progress("the printer process exited with status 0 after we hung up");

    let printer_output = output
        .join()
        .map_err(|_| "the printer output reader panicked".to_string())?;
    for report in &reports {
        let line = report.trim_end();
        if !printer_output.iter().any(|out| out.contains(line)) {
            return Err(format!(
                "the printer process never printed {line:?}; its output: {printer_output:?}"
            ));
        }
    }
    progress(&format!(
        "the printer process printed all {} reports",
        reports.len()
    ));
    drop(event_loop);
    Ok(Outcome {
        reports,
        printer_output,
    })
}
