//! A task that never stops waking itself keeps the loop busy forever; the
//! loop must still read its sockets.

use std::cell::Cell;
use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::AsyncReadExt;
use multiprocess_event_loop::{EventLoop, LoopContext};

/// Wakes itself on every poll, until `stop` is set.
struct Busy {
    stop: Rc<Cell<bool>>,
}

impl Future for Busy {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.get() {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn sockets_are_read_while_a_task_keeps_the_loop_busy() {
    let event_loop = EventLoop::start("fairness-loop").expect("loop");
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let (sender, received) = mpsc::channel();
    let (waiting, reading) = mpsc::channel();
    event_loop
        .post(move || {
            LoopContext::with(|cx| {
                let stop = Rc::new(Cell::new(false));
                cx.spawn(Busy { stop: stop.clone() });
                let (mut stream, _write) = cx.stream(theirs).expect("register the socket").split();
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
                    stop.set(true);
                    let _ = sender.send(read.map(|()| byte[0]));
                });
            });
        })
        .expect("post");
    reading
        .recv_timeout(Duration::from_secs(10))
        .expect("the read started");
    (&ours).write_all(&[42]).expect("write");
    let read = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the loop read the socket although a task kept it busy");
    assert_eq!(read.expect("read"), 42);
}
