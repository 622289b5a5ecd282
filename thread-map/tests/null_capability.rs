//! A capability pointer initialised through `AnyPointer::init_as` (rather
//! than set to a capability) is null on the wire, and the client it gives is
//! broken: a call on it fails with an error saying why. capnpc's
//! `init_pointer` for interface clients panics; the committed generated code
//! replaces it with this behaviour (see `mp-codegen`).

use capnp::any_pointer;
use multiprocess_thread_map::proxy_capnp::thread;

#[test]
fn an_initialised_capability_pointer_is_null_and_its_client_fails_calls() {
    let mut message = capnp::message::Builder::new_default();
    let root: any_pointer::Builder<'_> = message.init_root();
    let client: thread::Client = root.init_as();
    let reply = futures::executor::block_on(client.get_name_request().send().promise);
    let error = reply.err().expect("a call on a null capability fails");
    assert!(
        error.extra.contains("null capability"),
        "the error says why: {error}"
    );
    let root = message
        .get_root_as_reader::<any_pointer::Reader<'_>>()
        .expect("root");
    assert!(root.is_null(), "nothing was written for the capability");
}
