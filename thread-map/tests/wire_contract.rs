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

/// What libmultiprocess's `include/mp/proxy.capnp` (67302cd) declares, as
/// `capnp compile -ocapnp` lists it: each annotation's id, what it may be
/// applied to, and its value type. Schemas written for libmultiprocess
/// (Bitcoin Core's) name these annotations, so each must exist here with
/// the same id and targets for them to compile against our file unchanged.
const ANNOTATIONS: [(&str, u64, &[&str], &str); 7] = [
    ("include", 0xb899_f3c1_54fd_b458, &["file"], "text"),
    ("includeTypes", 0xbcec_1564_8e8a_0cf1, &["file"], "text"),
    (
        "wrap",
        0xe6f4_6079_b7b1_405e,
        &["struct", "interface"],
        "text",
    ),
    (
        "count",
        0xd026_82b3_19f6_9b38,
        &["struct", "interface", "param"],
        "int32",
    ),
    ("exception", 0x996a_1832_0099_2f88, &["param"], "text"),
    ("name", 0xb594_888f_63f4_dbb9, &["field", "method"], "text"),
    ("skip", 0x824c_08b8_2695_d8dd, &["field"], "void"),
];

const FILE_ID: u64 = 0xcc31_6e3f_71a0_40fb;
const COUNT_ID: u64 = 0xd026_82b3_19f6_9b38;

/// The schema capnp compiled our `proxy.capnp` into (the committed
/// `CodeGeneratorRequest` the generated Rust comes from).
fn compiled_nodes() -> capnp::message::Reader<capnp::serialize::OwnedSegments> {
    let bytes: &[u8] = include_bytes!("../src/generated/proxy.request.bin");
    capnp::serialize::read_message(bytes, capnp::message::ReaderOptions::new())
        .expect("proxy.request.bin is a capnp message")
}

fn short_name(node: capnp::schema_capnp::node::Reader<'_>) -> String {
    let full = node
        .get_display_name()
        .expect("display name")
        .to_str()
        .expect("UTF-8");
    full[node.get_display_name_prefix_length() as usize..].to_string()
}

#[test]
fn annotations_have_libmultiprocess_ids_and_targets() {
    use capnp::schema_capnp::{code_generator_request, node, type_};
    let message = compiled_nodes();
    let request = message
        .get_root::<code_generator_request::Reader<'_>>()
        .expect("root");
    let nodes = request.get_nodes().expect("nodes");
    assert!(nodes.iter().any(|n| n.get_id() == FILE_ID), "file id");
    for (name, id, targets, value_type) in ANNOTATIONS {
        let node = nodes
            .iter()
            .find(|n| n.get_scope_id() == FILE_ID && short_name(*n) == name)
            .unwrap_or_else(|| panic!("proxy.capnp has no annotation `{name}`"));
        assert_eq!(node.get_id(), id, "id of `{name}`");
        let node::Annotation(annotation) = node.which().expect("node kind") else {
            panic!("`{name}` is not an annotation");
        };
        let all = [
            ("file", annotation.get_targets_file()),
            ("const", annotation.get_targets_const()),
            ("enum", annotation.get_targets_enum()),
            ("enumerant", annotation.get_targets_enumerant()),
            ("struct", annotation.get_targets_struct()),
            ("field", annotation.get_targets_field()),
            ("union", annotation.get_targets_union()),
            ("group", annotation.get_targets_group()),
            ("interface", annotation.get_targets_interface()),
            ("method", annotation.get_targets_method()),
            ("param", annotation.get_targets_param()),
            ("annotation", annotation.get_targets_annotation()),
        ];
        let ours: Vec<&str> = all.iter().filter(|(_, on)| *on).map(|(t, _)| *t).collect();
        let mut theirs = targets.to_vec();
        theirs.sort_unstable();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort_unstable();
        assert_eq!(ours_sorted, theirs, "targets of `{name}`");
        let kind = match annotation
            .get_type()
            .expect("type")
            .which()
            .expect("type kind")
        {
            type_::Text(()) => "text",
            type_::Int32(()) => "int32",
            type_::Void(()) => "void",
            _ => "other",
        };
        assert_eq!(kind, value_type, "value type of `{name}`");
    }
}

#[test]
fn thread_map_and_context_carry_count_zero() {
    use capnp::schema_capnp::{code_generator_request, value};
    let message = compiled_nodes();
    let request = message
        .get_root::<code_generator_request::Reader<'_>>()
        .expect("root");
    for id in [
        thread_map::Client::TYPE_ID,
        <context::Reader<'_> as HasTypeId>::TYPE_ID,
    ] {
        let node = request
            .get_nodes()
            .expect("nodes")
            .iter()
            .find(|n| n.get_id() == id)
            .expect("node");
        let count = node
            .get_annotations()
            .expect("annotations")
            .iter()
            .find(|a| a.get_id() == COUNT_ID)
            .unwrap_or_else(|| panic!("{} has no $count", short_name(node)));
        let value::Int32(n) = count.get_value().expect("value").which().expect("kind") else {
            panic!("$count is not an Int32");
        };
        assert_eq!(n, 0, "{} $count(0)", short_name(node));
    }
}

#[test]
fn methods_have_libmultiprocess_ordinals_and_shapes() {
    use capnp::schema_capnp::{code_generator_request, field, node, type_};
    let message = compiled_nodes();
    let request = message
        .get_root::<code_generator_request::Reader<'_>>()
        .expect("root");
    let nodes = request.get_nodes().expect("nodes");
    let by_id = |id: u64| {
        nodes
            .iter()
            .find(|n| n.get_id() == id)
            .unwrap_or_else(|| panic!("no node {id:#x}"))
    };
    // Per interface, its methods in ordinal order: (name, params, results),
    // each field as (name, type).
    type Fields = &'static [(&'static str, &'static str)];
    type Methods = &'static [(&'static str, Fields, Fields)];
    let expected: [(u64, Methods); 2] = [
        (
            thread_map::Client::TYPE_ID,
            &[
                ("makeThread", &[("name", "text")], &[("result", "Thread")]),
                ("makePool", &[("count", "uint32")], &[]),
            ],
        ),
        (
            thread::Client::TYPE_ID,
            &[("getName", &[], &[("result", "text")])],
        ),
    ];
    let fields_of = |id: u64| -> Vec<(String, String)> {
        let node::Struct(s) = by_id(id).which().expect("kind") else {
            panic!("{id:#x} is not a struct");
        };
        s.get_fields()
            .expect("fields")
            .iter()
            .map(|f| {
                let name = f.get_name().expect("name").to_string().expect("UTF-8");
                let field::Slot(slot) = f.which().expect("field kind") else {
                    panic!("{name} is a group");
                };
                let ty = match slot.get_type().expect("type").which().expect("type kind") {
                    type_::Text(()) => "text".to_string(),
                    type_::Uint32(()) => "uint32".to_string(),
                    type_::Interface(i) => short_name(by_id(i.get_type_id())),
                    _ => "other".to_string(),
                };
                (name, ty)
            })
            .collect()
    };
    for (interface_id, methods) in expected {
        let node::Interface(interface) = by_id(interface_id).which().expect("kind") else {
            panic!("{interface_id:#x} is not an interface");
        };
        let ours = interface.get_methods().expect("methods");
        assert_eq!(ours.len() as usize, methods.len());
        // A method's ordinal is its index in the list.
        for (ordinal, (name, params, results)) in methods.iter().enumerate() {
            let method = ours.get(ordinal as u32);
            assert_eq!(
                method.get_name().expect("name").to_str().expect("UTF-8"),
                *name
            );
            let want = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
                fields
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect()
            };
            assert_eq!(
                fields_of(method.get_param_struct_type()),
                want(params),
                "{name} params"
            );
            assert_eq!(
                fields_of(method.get_result_struct_type()),
                want(results),
                "{name} results"
            );
        }
    }
    let context = fields_of(<context::Reader<'_> as HasTypeId>::TYPE_ID);
    assert_eq!(
        context,
        [("thread", "Thread"), ("callbackThread", "Thread")]
            .map(|(n, t)| (n.to_string(), t.to_string()))
    );
}
