//! Loom model of a disconnect racing the response to an in-flight call.
//!
//! On the caller's side of a connection, an in-flight call is a `Reply` kept
//! in a table until its response arrives; when the connection dies the
//! tables are dropped, and a `Reply` dropped unsent delivers its `on_drop`
//! error (`Error::Disconnected`). Here one thread stands for the response
//! path and one for the disconnect path, each taking the `Reply` out of a
//! shared slot of that table, while the caller waits in its Waiter.
#![cfg(loom)]

use loom_tests::model;
use multiprocess_event_loop::sync::{Arc, Mutex, thread};
use multiprocess_event_loop::{Error, Reply, Waiter};

/// The loop's entry for one in-flight call.
type Pending = Arc<Mutex<Option<Reply<u32>>>>;

/// The response and a disconnect race for an in-flight call: the caller gets
/// exactly one outcome, the response (`Ok`) if the response path took the
/// `Reply`, `Error::Disconnected` if the disconnect path did, and it never
/// hangs.
///
/// Why it holds: the `Reply` is taken out of the table under its lock, so
/// exactly one path owns it; it is moved, never copied, and delivers once,
/// by `send` or by `Drop` (which delivers `on_drop` through the same path as
/// `send`: slot first, then `notified` under the Waiter's lock). The caller
/// looks at its slot before it sleeps and sleeps only while `notified` is
/// clear, so a delivery before or during the wait wakes it.
/// `--cfg loom_broken_reply` makes a dropped `Reply` fill the slot without
/// waking the waiter, and this model then deadlocks.
#[test]
fn disconnect_racing_a_response_delivers_exactly_one_outcome() {
    model(|| {
        let caller = Waiter::new("caller");
        let (slot, reply) = caller.reply_slot::<u32>(Error::Disconnected("connection lost".into()));
        let pending: Pending = Arc::new(Mutex::new(Some(reply)));

        let response = {
            let pending = pending.clone();
            thread::spawn(move || {
                let reply = pending.lock().take();
                reply.map(|reply| reply.send(Ok(7))).is_some()
            })
        };
        let disconnect = {
            let pending = pending.clone();
            thread::spawn(move || {
                // As `Connection::closed`: take the table out, drop it unlocked.
                let reply = pending.lock().take();
                let had_it = reply.is_some();
                drop(reply);
                had_it
            })
        };

        let outcome = caller.wait(&slot, || "the response".to_string());
        let responded = response.join().expect("response path panicked");
        let disconnected = disconnect.join().expect("disconnect path panicked");
        assert!(
            responded != disconnected,
            "exactly one path takes the Reply"
        );
        match outcome {
            Ok(value) => {
                assert_eq!(value, 7);
                assert!(responded);
            }
            Err(Error::Disconnected(message)) => {
                assert_eq!(message, "connection lost");
                assert!(disconnected);
            }
            Err(other) => panic!("unexpected error {other}"),
        }
        assert!(pending.lock().is_none());
        assert_eq!(caller.queued(), 0);
    });
}
