//! `InitInterface`, the bootstrap interface of the example's processes: its
//! server ([`InitServer`]), which hands out printers or calculators
//! depending on the process's [`Role`], and the blocking client
//! ([`InitClient`]).

use std::os::unix::net::UnixStream;
use std::rc::Rc;

use multiprocess_thread_map::{Connection, LoopHandle, RemoteObject, Result, ServeContext};

use crate::calculator::{CalculatorClient, CalculatorServer};
use crate::init_capnp::init_interface;
use crate::printer::{LinePrinter, Printer, PrinterClient, PrinterServer};

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

/// The server of `InitInterface` for one connection.
pub struct InitServer {
    ctx: ServeContext,
    role: Role,
}

impl InitServer {
    /// The bootstrap builder for [`Connection::serve`]: serves `role`; the
    /// printers it makes print to stdout.
    pub fn bootstrap(
        role: Role,
    ) -> impl FnOnce(ServeContext) -> capnp::capability::Client + Send + 'static {
        move |ctx| {
            let client: init_interface::Client = capnp_rpc::new_client(InitServer { ctx, role });
            client.client
        }
    }

    fn refuse(&self, method: &str) -> capnp::Error {
        capnp::Error::failed(format!(
            "{} does not implement InitInterface.{method}",
            self.role.program()
        ))
    }
}

impl init_interface::Server for InitServer {
    async fn construct(
        self: Rc<Self>,
        params: init_interface::ConstructParams,
        mut results: init_interface::ConstructResults,
    ) -> capnp::Result<()> {
        let peer = params.get()?.get_thread_map()?;
        let ours = self.ctx.construct(peer).map_err(|e| e.to_capnp())?;
        results.get().set_thread_map(ours);
        Ok(())
    }

    async fn make_calculator(
        self: Rc<Self>,
        params: init_interface::MakeCalculatorParams,
        mut results: init_interface::MakeCalculatorResults,
    ) -> capnp::Result<()> {
        if self.role != Role::Calculator {
            return Err(self.refuse("makeCalculator"));
        }
        let p = params.get()?;
        let printer = PrinterClient::new(self.ctx.adopt(p.get_print()?).map_err(|e| e.to_capnp())?);
        // Nothing to build, but served on the worker `Context.thread` names,
        // as libmultiprocess serves every method taking a Context: an unknown
        // thread fails the call, and it waits its turn behind that thread's
        // other calls.
        let printer = self
            .ctx
            .run(p.get_context(), "InitInterface.makeCalculator", move || {
                Ok(printer)
            })
            .await?;
        results
            .get()
            .set_result(CalculatorServer::client(self.ctx.clone(), printer));
        Ok(())
    }

    async fn make_printer(
        self: Rc<Self>,
        params: init_interface::MakePrinterParams,
        mut results: init_interface::MakePrinterResults,
    ) -> capnp::Result<()> {
        if self.role != Role::Printer {
            return Err(self.refuse("makePrinter"));
        }
        let prefix = format!("{}: ", self.role.program());
        let printer = self
            .ctx
            .run(
                params.get()?.get_context(),
                "InitInterface.makePrinter",
                move || Ok(LinePrinter::new(prefix)),
            )
            .await?;
        results
            .get()
            .set_result(PrinterServer::client(self.ctx.clone(), Box::new(printer)));
        Ok(())
    }
}

/// The `InitInterface` of a peer, callable from any thread.
#[derive(Debug)]
pub struct InitClient(pub RemoteObject<init_interface::Client>);

impl InitClient {
    /// Connects to a peer serving `InitInterface` on `stream` and runs the
    /// `construct` handshake (exchanging ThreadMaps).
    pub fn connect(
        event_loop: &LoopHandle,
        stream: UnixStream,
    ) -> Result<(Connection, InitClient)> {
        let (connection, init) = Connection::connect::<init_interface::Client>(event_loop, stream)?;
        Ok((connection, InitClient(init)))
    }

    /// Asks the peer for a printer.
    pub fn make_printer(&self) -> Result<PrinterClient> {
        self.0
            .call("InitInterface.makePrinter", |init, cx| {
                let mut request = init.make_printer_request();
                cx.set_context(request.get().init_context());
                let response = request.send().promise;
                let adopter = cx.adopter();
                async move { adopter.adopt(response.await?.get()?.get_result()?) }
            })
            .map(PrinterClient::new)
    }

    /// Asks the peer for a calculator that reports to `printer`, which this
    /// process serves: the peer's reports run it on the thread that called
    /// `solveEquation`.
    pub fn make_calculator(&self, printer: Box<dyn Printer>) -> Result<CalculatorClient> {
        self.0
            .call("InitInterface.makeCalculator", move |init, cx| {
                let mut request = init.make_calculator_request();
                {
                    let mut params = request.get();
                    cx.set_context(params.reborrow().init_context());
                    params.set_print(PrinterServer::client(cx.serve_context(), printer));
                }
                let response = request.send().promise;
                let adopter = cx.adopter();
                async move { adopter.adopt(response.await?.get()?.get_result()?) }
            })
            .map(CalculatorClient::new)
    }
}
