//! `CalculatorInterface`: its server ([`CalculatorServer`]), which solves
//! equations and reports each to the printer it was made with, and the
//! blocking client for a peer's calculator ([`CalculatorClient`]).
//!
//! The report is a call back to the process that called `solveEquation`
//! (the printer is that process's object), made from the worker serving
//! the request: the runtime sends it to the caller's thread blocked in
//! `solveEquation`, which prints it, as the C++ calculator's report does.

use std::rc::Rc;

use multiprocess_thread_map::{DestroyOnDrop, ObjectSlot, RemoteObject, Result, ServeContext};

use crate::calculator_capnp::calculator_interface;
use crate::equation;
use crate::printer::PrinterClient;

/// What a served calculator holds: the printer it reports to. Dropping it
/// (on `destroy`) destroys that printer, from the thread serving `destroy`.
#[derive(Debug)]
struct CalculatorImpl {
    printer: PrinterClient,
}

/// The server of `CalculatorInterface`.
pub struct CalculatorServer {
    ctx: ServeContext,
    object: ObjectSlot<CalculatorImpl>,
}

impl CalculatorServer {
    /// Serves a calculator reporting to `printer` on the connection of `ctx`.
    /// Loop thread only (in a server method).
    pub fn client(ctx: ServeContext, printer: PrinterClient) -> calculator_interface::Client {
        capnp_rpc::new_client(CalculatorServer {
            ctx,
            object: ObjectSlot::new(CalculatorImpl { printer }),
        })
    }
}

impl calculator_interface::Server for CalculatorServer {
    async fn destroy(
        self: Rc<Self>,
        params: calculator_interface::DestroyParams,
        _: calculator_interface::DestroyResults,
    ) -> capnp::Result<()> {
        let object = self.object.clone();
        self.ctx
            .run(
                params.get()?.get_context(),
                "CalculatorInterface.destroy",
                move || {
                    drop(object.take());
                    Ok(())
                },
            )
            .await
    }

    async fn solve_equation(
        self: Rc<Self>,
        params: calculator_interface::SolveEquationParams,
        _: calculator_interface::SolveEquationResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let eqn = p.get_eqn()?.to_string()?;
        let object = self.object.clone();
        self.ctx
            .run(
                p.get_context(),
                "CalculatorInterface.solveEquation",
                move || object.get()?.printer.print(&equation::report(&eqn)),
            )
            .await
    }
}

/// A calculator of a peer, callable from any thread. Dropping it destroys
/// the peer's calculator.
#[derive(Debug)]
pub struct CalculatorClient(DestroyOnDrop<calculator_interface::Client>);

impl CalculatorClient {
    /// Takes ownership of a peer's calculator.
    pub fn new(object: RemoteObject<calculator_interface::Client>) -> Self {
        Self(DestroyOnDrop::new(
            object,
            "CalculatorInterface.destroy",
            crate::destroy_fn!(),
        ))
    }

    /// Has the peer solve `eqn`; it reports to its printer before this
    /// returns (a printer of this process runs the report on this thread).
    pub fn solve_equation(&self, eqn: &str) -> Result<()> {
        let eqn = eqn.to_string();
        self.0
            .call("CalculatorInterface.solveEquation", move |client, cx| {
                let mut request = client.solve_equation_request();
                {
                    let mut params = request.get();
                    cx.set_context(params.reborrow().init_context());
                    params.set_eqn(eqn.as_str());
                }
                let response = request.send().promise;
                async move {
                    response.await?;
                    Ok(())
                }
            })
    }

    /// Destroys the peer's calculator now, reporting failure.
    pub fn destroy(self) -> Result<()> {
        self.0.destroy()
    }
}
