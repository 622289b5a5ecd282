//! A read that returns less than it asked for has emptied the socket, and
//! the next read waits for the socket's next readiness without asking the
//! system (`ReadHalf::poll_read`). What must still hold: data written after
//! such a read wakes the reader, and after a read that filled its buffer the
//! rest is read at once, with no readiness event to wait for.

mod common;

use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::Duration;

use futures::AsyncReadExt;
use multiprocess_event_loop::{EventLoop, LoopContext, LoopHandle, ReadHalf};

/// Reads once into a buffer of `size` bytes; says on `waiting` when the
/// read found nothing and waits for the socket.
async fn read_once(stream: &mut ReadHalf, size: usize, waiting: &mpsc::Sender<()>) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    let mut told = false;
    let mut read = stream.read(&mut buf);
    let n = futures::future::poll_fn(|cx| {
        let poll = Pin::new(&mut read).poll(cx);
        if poll.is_pending() && !told {
            told = true;
            let _ = waiting.send(());
        }
        poll
    })
    .await
    .expect("read");
    buf.truncate(n);
    buf
}

/// What a reader on the loop reports: each read's bytes, and each time a
/// read found nothing and waited for the socket.
struct Reads {
    received: mpsc::Receiver<Vec<u8>>,
    waits: mpsc::Receiver<()>,
}

impl Reads {
    /// Registers `socket` with `event_loop` and reads it `count` times, 64
    /// bytes at most each.
    fn start(event_loop: &LoopHandle, socket: UnixStream, count: usize) -> Self {
        let (sender, received) = mpsc::channel();
        let (waiting, waits) = mpsc::channel();
        event_loop
            .post(move || {
                LoopContext::with(|cx| {
                    let (mut stream, write) =
                        cx.stream(socket).expect("register the socket").split();
                    cx.spawn(async move {
                        for _ in 0..count {
                            let _ = sender.send(read_once(&mut stream, 64, &waiting).await);
                        }
                        drop(write);
                    });
                });
            })
            .expect("post");
        Self { received, waits }
    }

    fn next(&self) -> Vec<u8> {
        self.received
            .recv_timeout(BOUND)
            .expect("a read never ended")
    }

    fn waited(&self, which: &str) {
        self.waits
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("the {which} read never waited"));
    }
}

/// How long a read may take.
const BOUND: Duration = Duration::from_secs(10);

#[test]
fn reads_after_a_short_read_wait_for_new_data_and_full_reads_go_on() {
    common::within(Duration::from_secs(60), || {
        let event_loop = EventLoop::start("short-reads-loop").expect("loop");
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        (&ours).write_all(&[1, 2, 3, 4, 5]).expect("write");
        // Short, then one that must be woken by the data written next, then
        // 100 bytes at once: a full read of 64, and the other 36 without
        // waiting.
        let reads = Reads::start(&event_loop, theirs, 4);
        assert_eq!(reads.next(), vec![1, 2, 3, 4, 5]);
        reads.waited("second");
        (&ours).write_all(&[6, 7, 8]).expect("write");
        assert_eq!(reads.next(), vec![6, 7, 8]);
        reads.waited("third");
        let hundred: Vec<u8> = (0..100).collect();
        (&ours).write_all(&hundred).expect("write");
        assert_eq!(reads.next(), hundred[..64].to_vec());
        assert_eq!(reads.next(), hundred[64..].to_vec());
        assert!(
            reads.waits.try_recv().is_err(),
            "the read after a full one waited for readiness"
        );
    });
}

/// The peer writes its last bytes and closes while the reader waits: the
/// loop most often sees both in one readiness event. The read of those
/// bytes is short, but the next one must still go to the socket and find
/// the end of the stream: no readiness edge would come to say so.
#[test]
fn the_end_of_the_stream_is_read_after_the_last_short_read() {
    common::within(Duration::from_secs(60), || {
        let event_loop = EventLoop::start("short-read-eof-loop").expect("loop");
        for round in 0..20u8 {
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            let reads = Reads::start(&event_loop, theirs, 2);
            reads.waited("first");
            (&ours).write_all(&[round, 1, 2]).expect("write");
            drop(ours);
            assert_eq!(reads.next(), vec![round, 1, 2]);
            assert_eq!(reads.next(), Vec::<u8>::new(), "the end of the stream");
        }
    });
}
