//! This crate's concurrency primitives: the event-loop crate's facade, so
//! that loom can swap them all at once under `cfg(loom)`.

pub(crate) use multiprocess_event_loop::sync::*;
