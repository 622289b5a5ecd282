//! What the cross-process test files share: the two ends a scenario runs
//! against (`mod common;` in each file; not every file uses every item).

#![allow(dead_code)]

use std::path::Path;

use mp_testkit::peer::Peer;

/// The `mp-child` binary Cargo built for these tests.
pub(crate) fn child_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mp-child"))
}

/// A peer in a child process (`mp-child`).
pub(crate) fn child() -> Peer {
    Peer::child(child_exe()).expect("spawn and connect to mp-child")
}

/// A peer served on its own event loop in this process.
pub(crate) fn in_process() -> Peer {
    Peer::in_process().expect("serve and connect in process")
}
