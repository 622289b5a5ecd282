//! The bootstrap object of the example's processes ([`ExampleInit`]): it
//! hands out printers or calculators depending on the process's [`Role`].

use std::sync::Arc;

use multiprocess::{Error, Result};

use crate::calculator::CalculatorInterface;
use crate::calculators::Calculator;
use crate::init::InitInterface;
use crate::printer::PrinterInterface;
use crate::printers::LinePrinter;

/// What a process of the example makes for its peers, as `mpprinter` makes
/// only printers and `mpcalculator` only calculators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `makePrinter` answers with a printer writing to this process's
    /// stdout; `makeCalculator` fails.
    Printer,
    /// `makeCalculator` answers with a calculator; `makePrinter` fails.
    Calculator,
}

impl Role {
    /// The program this role stands in for, in messages and printed lines.
    pub fn program(self) -> &'static str {
        match self {
            Role::Printer => "mp-interop-printer",
            Role::Calculator => "mp-interop-calculator",
        }
    }
}

/// The `InitInterface` a process of the example serves, in its role.
#[derive(Debug)]
pub struct ExampleInit {
    role: Role,
}

impl ExampleInit {
    /// Serves `role`; the printers it makes print to stdout.
    pub fn new(role: Role) -> Self {
        Self { role }
    }

    fn refuse(&self, method: &str) -> Error {
        Error::failed(format!(
            "{} does not implement InitInterface.{method}",
            self.role.program()
        ))
    }
}

impl InitInterface for ExampleInit {
    fn make_calculator(
        &self,
        print: Arc<dyn PrinterInterface>,
    ) -> Result<Arc<dyn CalculatorInterface>> {
        if self.role != Role::Calculator {
            return Err(self.refuse("makeCalculator"));
        }
        Ok(Arc::new(Calculator::new(print)))
    }

    fn make_printer(&self) -> Result<Arc<dyn PrinterInterface>> {
        if self.role != Role::Printer {
            return Err(self.refuse("makePrinter"));
        }
        Ok(Arc::new(LinePrinter::new(format!(
            "{}: ",
            self.role.program()
        ))))
    }
}
