//! Hand-built Cap'n Proto RPC messages for tests that play a raw, possibly
//! hostile, peer: one that writes messages of its own making to a server's
//! socket, one by one, with whatever question ids, capability ids and cap
//! tables it likes (`tests/bad_input.rs`, and the limit tests through
//! `tests/limits_common`).
//!
//! Every builder returns the message; [`bytes`] serializes it (segment table
//! and segments) for writing. A typed parameter setter needs a client to put
//! in the message's cap table: the builders set placeholders
//! ([`placeholder_thread`], ...), and the descriptors actually sent are the
//! [`Cap`]s given to [`call`], in the order the capabilities are set.
//!
//! [`Raw`] is the socket such a test writes them to, and reads the server's
//! answers from.

use capnp::message::{Builder, HeapAllocator};
use capnp::traits::{HasTypeId, ImbueMut};
use capnp_rpc::rpc_capnp::{message, promised_answer};
use multiprocess_thread_map::proxy_capnp::{context, thread, thread_map};

use crate::probe_capnp::{init, int_fn, probe};

mod raw;
pub use raw::{Answer, Incoming, Raw};

/// The interface id of `Init`.
pub const INIT: u64 = <init::Client as HasTypeId>::TYPE_ID;
/// The interface id of `Probe`.
pub const PROBE: u64 = <probe::Client as HasTypeId>::TYPE_ID;
/// The interface id of `ThreadMap`.
pub const THREAD_MAP: u64 = <thread_map::Client as HasTypeId>::TYPE_ID;
/// The interface id of `Thread`.
pub const THREAD: u64 = <thread::Client as HasTypeId>::TYPE_ID;

/// A serialized message (segment table and segments).
pub fn bytes(message: &Builder<HeapAllocator>) -> Vec<u8> {
    let mut out = Vec::new();
    capnp::serialize::write_message(&mut out, message).expect("serialize");
    out
}

/// `Bootstrap`, as `question`.
pub fn bootstrap(question: u32) -> Builder<HeapAllocator> {
    let mut message = Builder::new_default();
    message
        .init_root::<message::Builder<'_>>()
        .init_bootstrap()
        .set_question_id(question);
    message
}

/// A capability descriptor in a call's cap table.
#[derive(Clone, Copy, Debug)]
pub enum Cap {
    /// One we host: the server imports it.
    SenderHosted(u32),
    /// A promise we host and may resolve later ([`resolve_to_error`]).
    SenderPromise(u32),
    /// One the server exported to us, passed back.
    ReceiverHosted(u32),
    /// The `result` (pointer field 0) of the server's answer to our
    /// question: pipelined, usable before the answer has come.
    ReceiverAnswer(u32),
}

/// A capability of the server's, by export id, or as the `result` (pointer
/// field 0) of the answer to one of our questions: messages built with
/// answers can be sent all at once, whatever ids the server will hand out.
#[derive(Clone, Copy, Debug)]
pub enum Ref {
    /// An export id the server gave us.
    Export(u32),
    /// The result of our question.
    Answer(u32),
}

impl From<u32> for Ref {
    fn from(id: u32) -> Self {
        Ref::Export(id)
    }
}

impl From<Ref> for Cap {
    fn from(r: Ref) -> Self {
        match r {
            Ref::Export(id) => Cap::ReceiverHosted(id),
            Ref::Answer(question) => Cap::ReceiverAnswer(question),
        }
    }
}

/// Points `answer` at the `result` of `question`.
fn promised_result(mut answer: promised_answer::Builder<'_>, question: u32) {
    answer.set_question_id(question);
    answer.init_transform(1).get(0).set_get_pointer_field(0);
}

/// Placeholder capabilities: a typed setter needs a client to put in the
/// cap table; the descriptors actually sent are the `Cap`s given to `call`.
struct NoThread;
impl thread::Server for NoThread {}
struct NoThreadMap;
impl thread_map::Server for NoThreadMap {}
struct NoIntFn;
impl int_fn::Server for NoIntFn {}

/// A `Thread` to set where the parameters want one; what the server sees
/// is the call's [`Cap`] in its place.
pub fn placeholder_thread() -> thread::Client {
    capnp_rpc::new_client(NoThread)
}

/// A `ThreadMap` to set where the parameters want one (see
/// [`placeholder_thread`]).
pub fn placeholder_thread_map() -> thread_map::Client {
    capnp_rpc::new_client(NoThreadMap)
}

/// An `IntFn` to set where the parameters want one (see
/// [`placeholder_thread`]).
pub fn placeholder_int_fn() -> int_fn::Client {
    capnp_rpc::new_client(NoIntFn)
}

/// Sets `Context.thread` (to a placeholder: the call's cap table says
/// which thread).
fn on_thread(mut context: context::Builder<'_>) {
    context.set_thread(placeholder_thread());
}

/// A `Call` message to the server's capability `target`; `fill` writes the
/// parameters, setting capabilities in the order of `caps`.
pub fn call(
    question: u32,
    target: impl Into<Ref>,
    interface_id: u64,
    method_id: u16,
    caps: &[Cap],
    fill: impl FnOnce(capnp::any_pointer::Builder<'_>),
) -> Builder<HeapAllocator> {
    let mut table: Vec<Option<Box<dyn capnp::private::capability::ClientHook>>> = Vec::new();
    let mut message = Builder::new_default();
    {
        let mut call = message.init_root::<message::Builder<'_>>().init_call();
        call.set_question_id(question);
        call.set_interface_id(interface_id);
        call.set_method_id(method_id);
        match target.into() {
            Ref::Export(id) => call.reborrow().init_target().set_imported_cap(id),
            Ref::Answer(q) => {
                promised_result(call.reborrow().init_target().init_promised_answer(), q)
            }
        }
        let mut params = call.init_params();
        {
            let mut content = params.reborrow().init_content();
            content.imbue_mut(&mut table);
            fill(content);
        }
        let mut descriptors = params.init_cap_table(caps.len() as u32);
        for (i, cap) in caps.iter().enumerate() {
            let mut descriptor = descriptors.reborrow().get(i as u32);
            match *cap {
                Cap::SenderHosted(id) => descriptor.set_sender_hosted(id),
                Cap::SenderPromise(id) => descriptor.set_sender_promise(id),
                Cap::ReceiverHosted(id) => descriptor.set_receiver_hosted(id),
                Cap::ReceiverAnswer(q) => promised_result(descriptor.init_receiver_answer(), q),
            }
        }
    }
    assert_eq!(table.len(), caps.len(), "one descriptor per capability set");
    message
}

/// `Init.construct(threadMap)`, our ThreadMap being `SenderHosted(our_map)`.
pub fn construct(question: u32, init: impl Into<Ref>, our_map: u32) -> Builder<HeapAllocator> {
    construct_with(question, init, Cap::SenderHosted(our_map))
}

/// `Init.construct(threadMap)` with any descriptor as the ThreadMap (one
/// the server never exported, say).
pub fn construct_with(question: u32, init: impl Into<Ref>, map: Cap) -> Builder<HeapAllocator> {
    call(question, init, INIT, 0, &[map], |content| {
        content
            .init_as::<init::construct_params::Builder<'_>>()
            .set_thread_map(placeholder_thread_map());
    })
}

/// `ThreadMap.makeThread(name)`.
pub fn make_thread(question: u32, map: impl Into<Ref>, name: &str) -> Builder<HeapAllocator> {
    call(question, map, THREAD_MAP, 0, &[], |content| {
        content
            .init_as::<thread_map::make_thread_params::Builder<'_>>()
            .set_name(name);
    })
}

/// `ThreadMap.makePool(count)`.
pub fn make_pool(question: u32, map: impl Into<Ref>, count: u32) -> Builder<HeapAllocator> {
    call(question, map, THREAD_MAP, 1, &[], |content| {
        content
            .init_as::<thread_map::make_pool_params::Builder<'_>>()
            .set_count(count);
    })
}

/// `Init.makeProbe(context)`, run on the worker `thread`.
pub fn make_probe(
    question: u32,
    init: impl Into<Ref>,
    thread: impl Into<Ref>,
) -> Builder<HeapAllocator> {
    make_probe_with(question, init, Some(thread.into().into()))
}

/// `Init.makeProbe(context)` with `Context.thread` = `thread`, any
/// descriptor (one that names no thread, say), or unset if `None`.
pub fn make_probe_with(
    question: u32,
    init: impl Into<Ref>,
    thread: Option<Cap>,
) -> Builder<HeapAllocator> {
    let caps: Vec<Cap> = thread.into_iter().collect();
    call(question, init, INIT, 1, &caps, |content| {
        let context = content
            .init_as::<init::make_probe_params::Builder<'_>>()
            .init_context();
        if thread.is_some() {
            on_thread(context);
        }
    })
}

/// A `Probe` call (`method`) on the worker `thread`, with `extra`
/// capabilities after it in the cap table; `fill` writes the parameters,
/// of schema type `P` (`Context.thread` included: [`on_thread`]).
fn on_worker<P: capnp::traits::Owned>(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
    method: u16,
    extra: &[Cap],
    fill: impl FnOnce(P::Builder<'_>),
) -> Builder<HeapAllocator> {
    let mut caps = vec![Cap::from(thread.into())];
    caps.extend_from_slice(extra);
    call(question, probe, PROBE, method, &caps, |content| {
        fill(content.init_as::<P::Builder<'_>>());
    })
}

/// `Probe.add(context, a, b)` on the worker `thread`.
pub fn add(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
    a: i32,
    b: i32,
) -> Builder<HeapAllocator> {
    on_worker::<probe::add_params::Owned>(question, probe, thread, 0, &[], |mut params| {
        on_thread(params.reborrow().init_context());
        params.set_a(a);
        params.set_b(b);
    })
}

/// `Probe.callFn(context, fn, arg)` on the worker `thread`, with our export
/// `callback_thread` as `Context.callbackThread` and our export `function`
/// as `fn`: the server calls `fn` back on our thread.
pub fn call_fn(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
    callback_thread: u32,
    function: u32,
    arg: i32,
) -> Builder<HeapAllocator> {
    let extra = [
        Cap::SenderHosted(callback_thread),
        Cap::SenderHosted(function),
    ];
    on_worker::<probe::call_fn_params::Owned>(question, probe, thread, 8, &extra, |mut params| {
        {
            let mut context = params.reborrow().init_context();
            context.set_thread(placeholder_thread());
            context.set_callback_thread(placeholder_thread());
        }
        params.set_fn(placeholder_int_fn());
        params.set_arg(arg);
    })
}

/// `Probe.whoami(context)` on the worker `thread`.
pub fn whoami(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
) -> Builder<HeapAllocator> {
    on_worker::<probe::whoami_params::Owned>(question, probe, thread, 1, &[], |params| {
        on_thread(params.init_context());
    })
}

/// A `Probe` method on a gate, for [`gate_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateMethod {
    /// `block(gate)` (method 2): blocks until the gate opens.
    Block,
    /// `open(gate)` (method 3).
    Open,
    /// `waitBlocked(gate, 1)` (method 4): returns once one call blocks on it.
    WaitBlocked,
}

/// `Probe.block(gate)`, `open(gate)` or `waitBlocked(gate, 1)`, run on the
/// worker `thread`.
pub fn gate_call(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
    method: GateMethod,
    gate: &str,
) -> Builder<HeapAllocator> {
    match method {
        GateMethod::Block => {
            on_worker::<probe::block_params::Owned>(question, probe, thread, 2, &[], |mut p| {
                on_thread(p.reborrow().init_context());
                p.set_gate(gate);
            })
        }
        GateMethod::Open => {
            on_worker::<probe::open_params::Owned>(question, probe, thread, 3, &[], |mut p| {
                on_thread(p.reborrow().init_context());
                p.set_gate(gate);
            })
        }
        GateMethod::WaitBlocked => on_worker::<probe::wait_blocked_params::Owned>(
            question,
            probe,
            thread,
            4,
            &[],
            |mut p| {
                on_thread(p.reborrow().init_context());
                p.set_gate(gate);
                p.set_count(1);
            },
        ),
    }
}

/// A `Probe` call with no `Context.thread` (so a pool worker runs it) and
/// our export `callback` as `Context.callbackThread`: `whoami` (method 1),
/// or `block(gate)` (method 2) if a gate is given.
pub fn pool_call(
    question: u32,
    probe: impl Into<Ref>,
    callback: u32,
    gate: Option<&str>,
) -> Builder<HeapAllocator> {
    let method = if gate.is_some() { 2 } else { 1 };
    call(
        question,
        probe,
        PROBE,
        method,
        &[Cap::SenderHosted(callback)],
        |content| match gate {
            Some(gate) => {
                let mut params = content.init_as::<probe::block_params::Builder<'_>>();
                params
                    .reborrow()
                    .init_context()
                    .set_callback_thread(placeholder_thread());
                params.set_gate(gate);
            }
            None => content
                .init_as::<probe::whoami_params::Builder<'_>>()
                .init_context()
                .set_callback_thread(placeholder_thread()),
        },
    )
}

/// `Probe.echo(context, data)` on the worker `thread`.
pub fn echo(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
    data: &[u8],
) -> Builder<HeapAllocator> {
    on_worker::<probe::echo_params::Owned>(question, probe, thread, 7, &[], |mut params| {
        on_thread(params.reborrow().init_context());
        params.set_data(data);
    })
}

/// `Probe.saveFn(context, fn)` on the worker `thread`, `fn` being our
/// export `function`.
pub fn save_fn(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
    function: u32,
) -> Builder<HeapAllocator> {
    let extra = [Cap::SenderHosted(function)];
    on_worker::<probe::save_fn_params::Owned>(question, probe, thread, 9, &extra, |mut params| {
        on_thread(params.reborrow().init_context());
        params.set_fn(placeholder_int_fn());
        params.set_has_fn(true);
    })
}

/// `Probe.callSavedFromNotifier(context, arg)` on the worker `thread`: the
/// server's notifier thread (serving no call of ours) calls the saved `fn`,
/// so it asks our ThreadMap for a thread first.
pub fn call_saved_from_notifier(
    question: u32,
    probe: impl Into<Ref>,
    thread: impl Into<Ref>,
) -> Builder<HeapAllocator> {
    on_worker::<probe::call_saved_from_notifier_params::Owned>(
        question,
        probe,
        thread,
        11,
        &[],
        |params| on_thread(params.init_context()),
    )
}

/// `Return` of the server's question `answer` (a call to one of our
/// exports) with an exception whose reason is `reason`.
pub fn return_exception(answer: u32, reason: &str) -> Builder<HeapAllocator> {
    let mut message = Builder::new_default();
    {
        let mut ret = message.init_root::<message::Builder<'_>>().init_return();
        ret.set_answer_id(answer);
        ret.init_exception().set_reason(reason);
    }
    message
}

/// `Resolve` of our promise `promise_id` to an exception.
pub fn resolve_to_error(promise_id: u32, reason: &str) -> Builder<HeapAllocator> {
    let mut message = Builder::new_default();
    {
        let mut resolve = message.init_root::<message::Builder<'_>>().init_resolve();
        resolve.set_promise_id(promise_id);
        resolve.init_exception().set_reason(reason);
    }
    message
}

/// `Abort` with `reason`: we are closing the connection.
pub fn abort(reason: &str) -> Builder<HeapAllocator> {
    let mut message = Builder::new_default();
    message
        .init_root::<message::Builder<'_>>()
        .init_abort()
        .set_reason(reason);
    message
}

/// `Finish` of `question`: sent before its `Return`, the peer cancels the
/// call.
pub fn finish(question: u32) -> Builder<HeapAllocator> {
    let mut message = Builder::new_default();
    message
        .init_root::<message::Builder<'_>>()
        .init_finish()
        .set_question_id(question);
    message
}

/// `Release` of `count` references to the server's export `id`.
pub fn release(id: u32, count: u32) -> Builder<HeapAllocator> {
    let mut message = Builder::new_default();
    {
        let mut release = message.init_root::<message::Builder<'_>>().init_release();
        release.set_id(id);
        release.set_reference_count(count);
    }
    message
}
