//! `callback`: `Probe.callFn(f, i)`: the parent passes a closure `f` with
//! every call; the child's worker calls `f(i)` back once, which runs on the
//! parent's calling thread (blocked in its call), and returns its result.
//!
//! # Shape
//!
//! ```text
//!  parent                                         child
//!  app ──post──▶ loop ══ callFn(f) ════════════▶ loop ──post──▶ worker
//!  app ◀─post─── loop ◀═══════════ f.call(i) ═══ loop ◀─wake─── worker (blocked)
//!  app runs f ─▶ loop ══ f's result ═══════════▶ loop ──post──▶ worker
//!  app ◀─reply── loop ◀═ callFn's result ═══════ loop ◀─wake─── worker
//! ```
//!
//! One call and one callback per measured call: twice the hand-offs of
//! `call`, plus passing and releasing the closure's capability.
//!
//! `callback` goes through the generated proxies; `callback-hand` ([`HandCallback`]) makes the
//! same request with the hand-written client and server of [`hand`].

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use mp_testkit::probe::{IntFn, Probe};
use multiprocess_callbacks::Closure;

use super::hand::{self, HandProbe};
use super::runtime::{self, Parent};
use super::{Client, Scenario};

/// The `callback` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Callback;

impl Scenario for Callback {
    fn name(&self) -> &'static str {
        "callback"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-callback-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        let closure: IntFn = Arc::new(|x| Ok(x.wrapping_mul(2)));
        let mut seq = 0i32;
        let state = (probe, parent);
        Ok(Client::Each(Box::new(move || {
            let (probe, _parent): &(Arc<dyn Probe>, Parent) = &state;
            seq = seq.wrapping_add(1);
            let out = probe
                .call_fn(closure.clone(), seq)
                .map_err(runtime::to_io)?;
            super::check_reply(seq.wrapping_mul(2), out.result)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-callback-child-loop")
    }
}

/// The `callback-saved` scenario: the closure is passed once (`saveFn`), and each call
/// (`callSaved`) calls it back: `callback` without passing and releasing a capability per call.
#[derive(Clone, Copy, Debug, Default)]
pub struct SavedCallback;

impl Scenario for SavedCallback {
    fn name(&self) -> &'static str {
        "callback-saved"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let parent = Parent::connect(conn, "mpbench-callback-saved-loop")?;
        let probe = parent.init.make_probe().map_err(runtime::to_io)?;
        let closure: IntFn = Arc::new(|x| Ok(x.wrapping_mul(2)));
        probe.save_fn(Some(closure)).map_err(runtime::to_io)?;
        let mut seq = 0i32;
        let state = (probe, parent);
        Ok(Client::Each(Box::new(move || {
            let (probe, _parent): &(Arc<dyn Probe>, Parent) = &state;
            seq = seq.wrapping_add(1);
            let out = probe.call_saved(seq).map_err(runtime::to_io)?;
            super::check_reply(seq.wrapping_mul(2), out)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        runtime::serve(conn, "mpbench-callback-saved-child-loop")
    }
}

/// The `callback-hand` scenario: `callback` with the hand-written client and server.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandCallback;

impl Scenario for HandCallback {
    fn name(&self) -> &'static str {
        "callback-hand"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let probe = HandProbe::connect(conn, "mpbench-callback-hand-loop")?;
        let closure: Closure<i32, i32> = Arc::new(|x| x.wrapping_mul(2));
        let mut seq = 0i32;
        Ok(Client::Each(Box::new(move || {
            seq = seq.wrapping_add(1);
            let result = probe.call_fn(closure.clone(), seq)?;
            super::check_reply(seq.wrapping_mul(2), result)
        })))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        hand::serve(conn, "mpbench-callback-hand-child-loop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(Callback, &[50]);
    }

    #[test]
    fn saved_closure_client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(SavedCallback, &[50]);
    }

    #[test]
    fn hand_written_client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(HandCallback, &[50]);
    }
}
