//! `PrinterInterface`: what a printer does ([`Printer`]), its server
//! ([`PrinterServer`], whose methods run on the worker thread the request's
//! `Context` names), a printer that writes lines to stdout ([`LinePrinter`]),
//! one that records them ([`PrintLog`]), and the blocking client for a
//! peer's printer ([`PrinterClient`], itself a [`Printer`], so a peer's
//! printer can be handed on to another process, as `mpexample` does).

use std::io::Write as _;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use multiprocess_thread_map::{DestroyOnDrop, ObjectSlot, RemoteObject, Result, ServeContext};

use crate::printer_capnp::printer_interface;

/// Something that prints lines; served to peers by [`PrinterServer`].
pub trait Printer: Send + Sync + 'static {
    /// Prints `text`. Runs on the thread the runtime picked for the request.
    fn print(&self, text: &str) -> Result<()>;
}

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

impl Printer for PrintLog {
    fn print(&self, text: &str) -> Result<()> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PrintedLine {
                text: text.to_string(),
                tid: multiprocess_event_loop::os_thread_id(),
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

impl Printer for LinePrinter {
    fn print(&self, text: &str) -> Result<()> {
        // The C++ calculator ends its messages with a newline: one line.
        let line = text.trim_end_matches('\n');
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}{line}", self.prefix)?;
        out.flush()?;
        Ok(())
    }
}

/// The server of `PrinterInterface`: `print` runs [`Printer::print`] on the
/// worker the request's `Context.thread` names (or, for a callback, on the
/// caller's thread waiting for it); `destroy` drops the printer there.
pub struct PrinterServer {
    ctx: ServeContext,
    object: ObjectSlot<Box<dyn Printer>>,
}

impl PrinterServer {
    /// Serves `printer` on the connection of `ctx`. Loop thread only (in a
    /// server method or in the code that builds a request).
    pub fn client(ctx: ServeContext, printer: Box<dyn Printer>) -> printer_interface::Client {
        capnp_rpc::new_client(PrinterServer {
            ctx,
            object: ObjectSlot::new(printer),
        })
    }
}

impl printer_interface::Server for PrinterServer {
    async fn destroy(
        self: Rc<Self>,
        params: printer_interface::DestroyParams,
        _: printer_interface::DestroyResults,
    ) -> capnp::Result<()> {
        let object = self.object.clone();
        self.ctx
            .run(
                params.get()?.get_context(),
                "PrinterInterface.destroy",
                move || {
                    drop(object.take());
                    Ok(())
                },
            )
            .await
    }

    async fn print(
        self: Rc<Self>,
        params: printer_interface::PrintParams,
        _: printer_interface::PrintResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let text = p.get_text()?.to_string()?;
        let object = self.object.clone();
        self.ctx
            .run(p.get_context(), "PrinterInterface.print", move || {
                object.get()?.print(&text)
            })
            .await
    }
}

/// A printer of a peer, callable from any thread: `print` blocks until the
/// peer has printed. Dropping it destroys the peer's printer.
#[derive(Debug)]
pub struct PrinterClient(DestroyOnDrop<printer_interface::Client>);

impl PrinterClient {
    /// Takes ownership of a peer's printer.
    pub fn new(object: RemoteObject<printer_interface::Client>) -> Self {
        Self(DestroyOnDrop::new(
            object,
            "PrinterInterface.destroy",
            crate::destroy_fn!(),
        ))
    }

    /// Has the peer print `text`.
    pub fn print(&self, text: &str) -> Result<()> {
        let text = text.to_string();
        self.0.call("PrinterInterface.print", move |client, cx| {
            let mut request = client.print_request();
            {
                let mut params = request.get();
                cx.set_context(params.reborrow().init_context());
                params.set_text(text.as_str());
            }
            let response = request.send().promise;
            async move {
                response.await?;
                Ok(())
            }
        })
    }

    /// Destroys the peer's printer now, reporting failure.
    pub fn destroy(self) -> Result<()> {
        self.0.destroy()
    }
}

impl Printer for PrinterClient {
    fn print(&self, text: &str) -> Result<()> {
        PrinterClient::print(self, text)
    }
}
