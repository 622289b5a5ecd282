//! Fails when committed generated code is stale: run `cargo run -p mp-codegen`.

use std::fs;

#[test]
fn schemas_did_not_change_since_generation() {
    let root = mp_codegen::workspace_root();
    for target in mp_codegen::TARGETS {
        let committed = fs::read_to_string(target.stamp_path(&root)).unwrap_or_else(|e| {
            panic!(
                "{}: no stamp ({e}); run `cargo run -p mp-codegen`",
                target.schema
            )
        });
        let current = target
            .current_stamp(&root)
            .expect("schema sources readable");
        assert_eq!(
            committed, current,
            "{} changed since its Rust code was generated: run `cargo run -p mp-codegen`",
            target.schema
        );
    }
}

#[test]
fn committed_rust_matches_committed_request() {
    let root = mp_codegen::workspace_root();
    for target in mp_codegen::TARGETS {
        let request = fs::read(target.request_path(&root)).expect("committed request");
        let fresh = target.generate_rust(&request).expect("capnpc runs");
        let committed = fs::read_to_string(target.rust_path(&root)).expect("committed Rust");
        assert!(
            fresh == committed,
            "{} differs from what capnpc generates: run `cargo run -p mp-codegen`",
            target.rust_path(&root).display()
        );
    }
}

#[test]
fn committed_rust_has_no_panicking_bodies() {
    // capnpc's panicking init_pointer bodies are all replaced: nothing a
    // program reaches through the generated code panics for want of one.
    let root = mp_codegen::workspace_root();
    for target in mp_codegen::TARGETS {
        let committed = fs::read_to_string(target.rust_path(&root)).expect("committed Rust");
        let path = target.rust_path(&root);
        assert!(
            !committed.contains(mp_codegen::CAPNPC_INIT_POINTER),
            "{}: an interface client keeps capnpc's panicking init_pointer",
            path.display()
        );
        assert!(
            !committed.contains("unimplemented!(") && !committed.contains("panic!("),
            "{} has code that panics when reached",
            path.display()
        );
    }
}

#[test]
fn stale_stamp_is_detected() {
    // The check above must be able to fail: a changed byte changes the stamp.
    let a = mp_codegen::fnv1a64(b"interface Thread { getName @0 () -> (result: Text); }");
    let b = mp_codegen::fnv1a64(b"interface Thread { getName @1 () -> (result: Text); }");
    assert_ne!(a, b);
}
