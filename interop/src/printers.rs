//! Printers of this process: one that writes lines to stdout
//! ([`LinePrinter`], what `mpprinter` serves) and one that records them
//! ([`PrintLog`]). Both implement the generated
//! [`PrinterInterface`], whose `print`
//! runs, served to a peer, on the worker thread the request's `Context`
//! names (or, called back during a call of this process, on the thread
//! waiting for it); a peer's printer implements it too.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use multiprocess::Result;

use crate::printer::PrinterInterface;

/// One line a [`PrintLog`] recorded, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedLine {
    /// The text, as received.
    pub text: String,
    /// The OS thread id of the thread that printed it.
    pub tid: i64,
}

/// A printer that only records the lines it is given, and the thread that
/// printed each, for whoever wants to check them.
#[derive(Debug, Default)]
pub struct PrintLog {
    lines: Mutex<Vec<PrintedLine>>,
}

impl PrintLog {
    /// A new, empty log.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<PrintedLine> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PrinterInterface for PrintLog {
    fn print(&self, text: &str) -> Result<()> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PrintedLine {
                text: text.to_string(),
                tid: multiprocess::os_thread_id(),
            });
        Ok(())
    }
}

/// Prints each text as a line on stdout after a prefix, as `mpprinter`
/// does, with its own name.
#[derive(Debug)]
pub struct LinePrinter {
    prefix: String,
}

impl LinePrinter {
    /// A printer writing `prefix` + text to stdout.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
}

impl PrinterInterface for LinePrinter {
    fn print(&self, text: &str) -> Result<()> {
        // The C++ calculator ends its messages with a newline: one line.
        let line = text.trim_end_matches('\n');
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}{line}", self.prefix)?;
        out.flush()?;
        Ok(())
    }
}
