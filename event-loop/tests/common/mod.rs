//! The watchdog of this crate's tests (the test kit's cannot be used here:
//! it depends on this crate).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use multiprocess_event_loop::dump_waiters;

/// Runs `body` on a thread of its own and fails the test, naming what every
/// waiting thread waits for, if it has not finished within `limit`. A
/// failing `body` fails the test with its own message.
pub(crate) fn within(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let body = thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => body.join().expect("test body"),
        // The body panicked: its sender is gone; report its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = body.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "not finished after {limit:?}; waiting threads:\n{}",
            dump_waiters()
        ),
    }
}
