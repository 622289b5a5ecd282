//! The calculator of this process ([`Calculator`]): it solves equations
//! and reports each to the printer it was made with.
//!
//! The printer is usually the calling process's object: the report is then
//! a call back to that process, made from the worker serving
//! `solveEquation`, which the runtime sends to the caller's thread blocked
//! in `solveEquation`, as the C++ calculator's report does. Destroying the
//! calculator (the peer dropping its last handle: `destroy`) drops that
//! printer, from the thread serving `destroy`.

use std::sync::Arc;

use multiprocess::Result;

use crate::calculator::CalculatorInterface;
use crate::equation;
use crate::printer::PrinterInterface;

/// A calculator reporting to `printer`.
pub struct Calculator {
    printer: Arc<dyn PrinterInterface>,
}

impl Calculator {
    /// A calculator reporting every equation it solves to `printer`.
    pub fn new(printer: Arc<dyn PrinterInterface>) -> Self {
        Self { printer }
    }
}

impl CalculatorInterface for Calculator {
    fn solve_equation(&self, eqn: &str) -> Result<()> {
        self.printer.print(&equation::report(eqn))
    }
}
