//! A connection's outgoing messages, written in order, as many per system
//! call as are waiting.
//!
//! capnp-rpc hands the network one message at a time. Written one by one
//! and flushed after each (as `capnp_futures::write_queue` does), two
//! messages produced in the same turn of the loop cost two `sendto`s here
//! and two reads, and two turns of the peer's loop, there. That happens on
//! the critical path of a callback: the server of a callback releases the
//! caller's `Context.callbackThread` or the closure just before it returns,
//! so a `Release` and a `Return` leave together. This queue writes every
//! message already queued into the connection's buffer before it flushes,
//! so they go out in one write, and never waits for more: a message alone
//! is written as soon as the loop runs the queue.
//!
//! Loop thread only, like the connection it serves.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};

use capnp_futures::serialize::AsOutputSegments;
use futures::channel::oneshot;
use futures::io::{AsyncWrite, AsyncWriteExt};
use multiprocess_event_loop::timeline::{self, Step};

enum Item<M> {
    /// A message, and who learns that it was written.
    Message(M, oneshot::Sender<()>),
    /// The end of the queue: messages queued before it are written, then
    /// the queue's task ends with this result.
    Done(capnp::Result<()>, oneshot::Sender<()>),
}

struct State<M> {
    items: VecDeque<Item<M>>,
    /// The queue's task, waiting for an item.
    waker: Option<Waker>,
    /// Set once the task has ended: nothing queued later is written.
    ended: bool,
}

/// The producers' end of a write queue. Cloning it is cheap.
pub(crate) struct Sender<M> {
    state: Rc<RefCell<State<M>>>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<M> Sender<M> {
    fn push(&self, item: Item<M>) -> bool {
        let mut state = self.state.borrow_mut();
        if state.ended {
            return false;
        }
        state.items.push_back(item);
        if let Some(waker) = state.waker.take() {
            drop(state);
            waker.wake();
        }
        true
    }

    /// Queues `message`; the future resolves once it has been written (and
    /// flushed), or fails if the queue ends first.
    pub(crate) fn send(&mut self, message: M) -> impl Future<Output = capnp::Result<()>> + 'static {
        let (written, receiver) = oneshot::channel();
        let queued = self.push(Item::Message(message, written));
        async move {
            if !queued {
                return Err(ended());
            }
            receiver.await.map_err(|_| ended())
        }
    }

    /// Ends the queue once what is queued now is written; the queue's task
    /// then returns `result`. The future resolves when that has happened.
    pub(crate) fn terminate(
        &mut self,
        result: capnp::Result<()>,
    ) -> impl Future<Output = capnp::Result<()>> + 'static {
        let (done, receiver) = oneshot::channel();
        let queued = self.push(Item::Done(result, done));
        async move {
            if !queued {
                return Err(ended());
            }
            receiver.await.map_err(|_| ended())
        }
    }
}

fn ended() -> capnp::Error {
    capnp::Error::disconnected("the connection's write queue has ended".to_string())
}

/// Marks the queue ended when its task goes (returns, fails or is dropped),
/// so that later sends fail at once instead of waiting forever.
struct EndOnDrop<M>(Rc<RefCell<State<M>>>);

impl<M> Drop for EndOnDrop<M> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.0.borrow_mut();
            state.ended = true;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the borrow: their senders' waiters see the end.
        drop(items);
    }
}

/// A write queue over `writer`: returns the producers' [`Sender`] and the
/// task that writes, which runs until [`Sender::terminate`] is called or a
/// write fails.
///
/// `writer` should buffer (a `BufWriter`): the task writes every message
/// that is waiting into it, then flushes once.
pub(crate) fn write_queue<W, M>(
    mut writer: W,
) -> (Sender<M>, impl Future<Output = capnp::Result<()>>)
where
    W: AsyncWrite + Unpin,
    M: AsOutputSegments,
{
    let state = Rc::new(RefCell::new(State {
        items: VecDeque::new(),
        waker: None,
        ended: false,
    }));
    let sender = Sender {
        state: state.clone(),
    };
    // Made before the task first runs, so that dropping it unpolled ends
    // the queue too.
    let end = EndOnDrop(state.clone());
    let task = async move {
        let _end = end;
        // The messages of one flush, kept until it is done; reused.
        let mut written = Vec::new();
        loop {
            let first = std::future::poll_fn(|cx| {
                let mut state = state.borrow_mut();
                match state.items.pop_front() {
                    Some(item) => Poll::Ready(item),
                    None => {
                        state.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            })
            .await;
            // Let the tasks the loop already has ready run first: a server
            // task whose worker has just answered queues its `Return` right
            // behind the `Release` its job's end queued, and both then go
            // out together. One more turn of the loop's batch, no system
            // call, and no waiting for anything that is not already ready.
            crate::drain::yield_now().await;
            timeline::mark(Step::FlushStart);
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Item::Message(message, notify) => {
                        capnp_futures::serialize::write_message(&mut writer, &message).await?;
                        written.push((message, notify));
                        next = state.borrow_mut().items.pop_front();
                    }
                    Item::Done(result, done) => {
                        writer.flush().await?;
                        drop(written);
                        let _ = done.send(());
                        return result;
                    }
                }
            }
            writer.flush().await?;
            timeline::mark(Step::FlushDone);
            for (message, notify) in written.drain(..) {
                // The message's memory goes first, then its sender hears.
                drop(message);
                let _ = notify.send(());
            }
        }
    };
    (sender, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::pin::Pin;
    use std::task::Context;

    /// A writer that records each flush's bytes.
    #[derive(Default)]
    struct Recorder {
        buffer: Vec<u8>,
        flushes: Rc<RefCell<Vec<Vec<u8>>>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.buffer.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            let bytes = std::mem::take(&mut self.buffer);
            self.flushes.borrow_mut().push(bytes);
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    type Message = capnp::message::Builder<capnp::message::HeapAllocator>;

    /// A queue over a [`Recorder`]: its sender, its task, and the bytes of
    /// each flush.
    #[allow(clippy::type_complexity)]
    fn recorded_queue() -> (
        Sender<Message>,
        Pin<Box<dyn Future<Output = capnp::Result<()>>>>,
        Rc<RefCell<Vec<Vec<u8>>>>,
    ) {
        let flushes = Rc::new(RefCell::new(Vec::new()));
        let recorder = Recorder {
            flushes: flushes.clone(),
            ..Recorder::default()
        };
        let (sender, task) = write_queue(recorder);
        (sender, Box::pin(task), flushes)
    }

    fn message(value: u64) -> Message {
        let mut builder = capnp::message::Builder::new_default();
        builder
            .set_root::<capnp::text::Owned>(value.to_string().as_str())
            .expect("set");
        builder
    }

    #[test]
    fn messages_queued_together_are_flushed_together_and_in_order() {
        let (mut sender, mut task, flushes) = recorded_queue();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(sender.send(message(1)));
        let mut second = Box::pin(sender.send(message(2)));
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert!(
            flushes.borrow().is_empty(),
            "the queue lets ready tasks run first"
        );
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert_eq!(flushes.borrow().len(), 1, "two queued messages, one flush");
        assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert!(matches!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        let mut third = Box::pin(sender.send(message(3)));
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            flushes.borrow().len(),
            2,
            "a message alone is flushed alone"
        );
        assert!(matches!(third.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        let mut done = Box::pin(sender.terminate(Ok(())));
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert!(matches!(task.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert!(matches!(done.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert!(
            sender
                .send(message(4))
                .now_or_never()
                .is_some_and(|r| r.is_err())
        );
    }

    #[test]
    fn the_bytes_are_the_messages_in_order() {
        let (mut sender, mut task, flushes) = recorded_queue();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let a = message(7);
        let b = message(8);
        let mut expected = Vec::new();
        capnp::serialize::write_message(&mut expected, &a).expect("write");
        capnp::serialize::write_message(&mut expected, &b).expect("write");
        let _first = sender.send(a);
        let _second = sender.send(b);
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert_eq!(*flushes.borrow(), vec![expected]);
    }

    #[test]
    fn sends_fail_once_the_task_is_gone() {
        let (mut sender, task) = write_queue::<_, capnp::message::Builder<_>>(Recorder::default());
        let pending = sender.send(message(1));
        drop(task);
        assert!(pending.now_or_never().is_some_and(|r| r.is_err()));
        assert!(
            sender
                .send(message(2))
                .now_or_never()
                .is_some_and(|r| r.is_err())
        );
    }
}
