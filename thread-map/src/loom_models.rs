//! Loom models of the thread-map hand-offs that need private items (the
//! worker lifecycle). Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p multiprocess-thread-map --release --lib`.
