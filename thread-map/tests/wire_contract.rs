//! The wire contract with libmultiprocess: `mp/proxy.capnp` must give the
//! same ids and layouts as the C++ library's. The ids below were read from
//! libmultiprocess's schema with `capnp compile -ocapnp`; ours produced an
//! identical listing.

use capnp::traits::HasTypeId;
use multiprocess_thread_map::proxy_capnp::{context, thread, thread_map};

#[test]
fn type_ids_match_libmultiprocess() {
    assert_eq!(thread_map::Client::TYPE_ID, 0xee5e_3717_9ad9_dc9d);
    assert_eq!(thread::Client::TYPE_ID, 0x81c1_e260_0d0b_56c5);
    assert_eq!(
        <context::Reader<'_> as HasTypeId>::TYPE_ID,
        0x9c44_e664_5d0b_22c6
    );
}

#[test]
fn context_layout_is_two_pointers() {
    // struct Context: 0 data words, 2 pointers (thread @0, callbackThread @1).
    let mut message = capnp::message::Builder::new_default();
    let context = message.init_root::<context::Builder<'_>>();
    let reader = context.into_reader();
    assert!(!reader.has_thread());
    assert!(!reader.has_callback_thread());
    let size = <context::Builder<'_> as capnp::traits::HasStructSize>::STRUCT_SIZE;
    assert_eq!((size.data, size.pointers), (0, 2));
}

#[test]
fn method_ordinals_match_libmultiprocess() {
    // makeThread @0, makePool @1, getName @0: the request carries the ordinal.
    let source = include_str!("../schema/mp/proxy.capnp");
    for declaration in [
        "makeThread @0 (name :Text) -> (result :Thread);",
        "makePool @1 (count :UInt32) -> ();",
        "getName @0 () -> (result: Text);",
        "thread @0 : Thread;",
        "callbackThread @1 : Thread;",
        "@0xcc316e3f71a040fb;",
    ] {
        assert!(
            source.contains(declaration),
            "proxy.capnp lost `{declaration}`"
        );
    }
}
