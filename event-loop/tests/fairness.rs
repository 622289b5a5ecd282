//! A task that never stops waking itself keeps the loop busy forever; the
//! loop must still read its sockets.

mod common;

use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::AsyncReadExt;
use multiprocess_event_loop::{EventLoop, LoopContext};

/// Wakes itself on every poll, until `stop` is set.
struct Busy {
    stop: Arc<AtomicBool>,
}

impl Future for Busy {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn sockets_are_read_while_a_task_keeps_the_loop_busy() {
    common::within(Duration::from_secs(60), || {
        let event_loop = EventLoop::start("fairness-loop").expect("loop");
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let (sender, received) = mpsc::channel();
        let (waiting, reading) = mpsc::channel();
        // Set by the test thread however the test ends: a loop kept busy for
        // good could not be joined when `event_loop` is dropped.
        let stop = Arc::new(AtomicBool::new(false));
        let busy_stop = stop.clone();
        event_loop
            .post(move || {
                LoopContext::with(|cx| {
                    cx.spawn(Busy { stop: busy_stop });
                    let (mut stream, _write) =
                        cx.stream(theirs).expect("register the socket").split();
                    cx.spawn(async move {
                        let mut byte = [0u8; 1];
                        let read = {
                            let mut read = stream.read_exact(&mut byte);
                            let mut waiting = Some(waiting);
                            // Tell the test thread to write only once the read
                            // found nothing: the byte must come through epoll.
                            futures::future::poll_fn(|cx| {
                                let poll = Pin::new(&mut read).poll(cx);
                                if poll.is_pending() {
                                    if let Some(waiting) = waiting.take() {
                                        let _ = waiting.send(());
                                    }
                                }
                                poll
                            })
                            .await
                        };
                        let _ = sender.send(read.map(|()| byte[0]));
                    });
                });
            })
            .expect("post");
        let started = reading.recv_timeout(Duration::from_secs(10));
        let read = started.map(|()| {
            (&ours).write_all(&[42]).expect("write");
            received.recv_timeout(Duration::from_secs(10))
        });
        stop.store(true, Ordering::Relaxed);
        let read = read
            .expect("the read started")
            .expect("the loop read the socket although a task kept it busy");
        assert_eq!(read.expect("read"), 42);
    });
}
