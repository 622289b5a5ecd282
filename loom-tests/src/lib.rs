//! Loom models of the hand-offs in `multiprocess-event-loop`.
//!
//! The models live in `tests/` and compile only under `--cfg loom`, where the
//! event loop's `sync` facade re-exports loom's locks, condition variables and
//! threads, so loom explores every interleaving of the code that ships. See
//! `README.md` in this crate for the commands.
//!
//! - `tests/mailbox.rs`: the loop's job queue and its `sleeping` wake-up
//!   protocol, with a thread standing in for the event loop; and the `sync`
//!   round trip through a [`Waiter`](multiprocess_event_loop::Waiter) reply.
//! - `tests/waiter.rs`: a thread blocked for its reply runs the jobs posted to
//!   it, nested waits, dropped replies, and a worker's `serve` racing `close`.
//! - `tests/disconnect.rs`: a disconnect racing the response to an in-flight
//!   call.
//!
//! The worker-lifecycle models need private items of
//! `multiprocess-thread-map` and live in its `src/loom_models.rs`.

/// Runs `f` under loom's model checker, exploring every interleaving of the
/// threads it spawns.
///
/// Like `loom::model`, but bounds preemptions to 2 unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise, as tokio runs its models: a bounded
/// search takes well under a second here, an unbounded one far longer, and
/// lost wake-ups like the ones these models look for need one or two
/// preemptions to show.
#[cfg(loom)]
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}
