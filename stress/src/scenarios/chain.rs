//! `chain`: the four cross-thread hand-offs the runtime makes per call, with plain threads,
//! in-process channels and blocking socket I/O, each thread waiting the way the runtime's
//! threads wait; no capnp, no event loop. The floor of [`call`](super::call)'s shape.
//!
//! # Shape
//!
//! ```text
//!  parent                                   child
//!  app ──(1) chan──▶ loop ══ socket ══▶ loop ──(2) chan──▶ worker
//!  app ◀─(4) chan─── loop ◀═ socket ═══ loop ◀─(3) chan─── worker
//! ```
//!
//! - Parent: the application thread (the one timing the call) sends the request over a channel
//!   to the parent's "loop" thread (hand-off 1), which writes it to the socket, reads the reply
//!   and hands it to the application thread over a second channel (hand-off 4).
//! - Child: its main thread is the "loop": it reads the request from the socket, hands it to the
//!   worker (hand-off 2), receives the worker's answer, `request + 1`, over a channel (hand-off
//!   3) and writes it to the socket. Calls are synchronous, so neither loop ever has to wait on
//!   the socket and a channel at once, which blocking I/O could not.
//!
//! So per call: 4 channel hand-offs and 2 socket crossings, 6 thread wake-ups in all, on as many
//! threads as the runtime's call (app → parent loop → child loop → worker → child loop → parent
//! loop → app).
//!
//! # Waiting
//!
//! Every wait is the runtime's ([`crate::wait`], which waits with the runtime's own
//! `multiprocess_event_loop::spin::Spin` and `placement::WakePlace`):
//!
//! - **Spin, then sleep.** For up to `MULTIPROCESS_WAIT_SPIN_US` (default 100 µs, `0` never
//!   spins) a waiting thread looks without blocking (its channel's queue; the socket with
//!   `recv(2)` and `MSG_DONTWAIT`) and yields between looks; then it sleeps (on the channel's
//!   condition variable; in `read`). The two loops always may spin; the application thread
//!   and the worker only while one of their process's places (one per CPU) is free. Under the
//!   adaptive policy (the default), a wait spins unless the thread's last two waits of the
//!   same kind both ran past the budget.
//! - **Start near the creator.** The parent's loop and the child's worker start on the CPU of
//!   the thread that made them (`placement::start_near`, with its `MULTIPROCESS_START_NEAR`
//!   switch).
//! - **Wake near the waker.** A thread asleep on a channel is woken on the CPU of the thread
//!   that hands it work, which narrows its CPU mask just before the wake-up (the channel is a
//!   queue, a mutex and a condition variable, as the runtime's Waiter is, so that the sleeper's
//!   record is under the lock it sleeps on). A loop woken through the socket is not, there as
//!   here.
//! - **Hand over** (a loop yields at once after giving work to a thread that spins on its CPU)
//!   happens by itself: a loop's next step after a hand-off is a look that finds nothing, and a
//!   yield.
//!
//! What is left between `chain` and `call` is the runtime's own work: the event loop (epoll,
//! mailbox, executor), capnp's encoding and dispatch, the Waiter's bookkeeping.
//! [`chain_park`](super::chain_park) is the same with waits that sleep at once.
//!
//! Channels are unbounded, like the runtime's mailbox.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};

use multiprocess_event_loop::placement::{current_cpu, start_near};

use super::{Client, Scenario, check_reply, read_msg, write_msg};
use crate::wait::{HandoffReceiver, HandoffSender, History, Role, SocketReader, Waits, handoff};

/// The `chain` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chain;

impl Scenario for Chain {
    fn name(&self) -> &'static str {
        "chain"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        client(conn, Waits::Spin)
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        serve(conn, Waits::Spin)
    }
}

/// The parent's half, its threads waiting as `waits` says.
pub(crate) fn client(conn: UnixStream, waits: Waits) -> io::Result<Client> {
    let (req_tx, req_rx) = handoff();
    let (rep_tx, rep_rx) = handoff();
    let loop_conn = conn.try_clone()?;
    let creator = current_cpu();
    let loop_thread = thread::Builder::new()
        .name("chain-parent-loop".into())
        .spawn(move || {
            start_near(creator);
            parent_loop(&loop_conn, &req_rx, &rep_tx, waits)
        })?;
    let mut client = ChainClient {
        requests: Some(req_tx),
        replies: rep_rx,
        conn,
        loop_thread: Some(loop_thread),
        seq: 0,
        waits,
        reply_waits: History::new(),
    };
    Ok(Client::Each(Box::new(move || client.call())))
}

/// The child's half: its main thread is the loop, with one worker; both wait as `waits` says.
pub(crate) fn serve(conn: UnixStream, waits: Waits) -> io::Result<()> {
    let (req_tx, req_rx) = handoff::<u64>();
    let (rep_tx, rep_rx) = handoff::<u64>();
    let creator = current_cpu();
    let worker = thread::Builder::new()
        .name("chain-worker".into())
        .spawn(move || {
            start_near(creator);
            // A worker waiting for its next request.
            let idle = History::new();
            while let Some(request) = req_rx.recv(waits.spell(Role::Waiter, &idle)) {
                if rep_tx.send(request.wrapping_add(1)).is_err() {
                    break;
                }
            }
        })?;
    let loop_result = child_loop(&conn, &req_tx, &rep_rx, waits);
    // Closing the request channel stops the worker: the join is bounded.
    drop(req_tx);
    let worker_result = worker.join();
    loop_result?;
    worker_result.map_err(|_| io::Error::other("chain worker thread panicked"))
}

/// The child's loop: socket → worker → socket, until EOF.
///
/// One thread does both, like the runtime's loop: calls are synchronous, so while it waits for
/// the worker no request can arrive, and while it waits on the socket the worker has nothing.
fn child_loop(
    conn: &UnixStream,
    requests: &HandoffSender<u64>,
    replies: &HandoffReceiver<u64>,
    waits: Waits,
) -> io::Result<()> {
    // The loop's two kinds of wait: for a request, nothing expected; for the worker's
    // answer, something expected soon.
    let (idle, expecting) = (History::new(), History::new());
    let mut reader = SocketReader::new(conn, waits, Role::Loop, &idle);
    let mut writer = conn;
    while let Some(request) = read_msg(&mut reader)? {
        // If the worker is gone, the send fails or (it died with the request) its reply
        // sender is dropped and the receive ends.
        let reply = requests
            .send(request)
            .ok()
            .and_then(|()| replies.recv(waits.spell(Role::Loop, &expecting)))
            .ok_or_else(|| io::Error::other("chain worker thread stopped"))?;
        write_msg(&mut writer, reply)?;
    }
    Ok(())
}

/// The parent's loop thread: request channel → socket → reply channel.
///
/// Returns `Ok` when the client goes away (its request channel closes), an error when the
/// connection does.
fn parent_loop(
    conn: &UnixStream,
    requests: &HandoffReceiver<u64>,
    replies: &HandoffSender<u64>,
    waits: Waits,
) -> io::Result<()> {
    // The loop's two kinds of wait: for a request, nothing expected; for the reply to the
    // request it sent, something expected soon.
    let (idle, expecting) = (History::new(), History::new());
    let mut reader = SocketReader::new(conn, waits, Role::Loop, &expecting);
    let mut writer = conn;
    while let Some(request) = requests.recv(waits.spell(Role::Loop, &idle)) {
        write_msg(&mut writer, request)?;
        let Some(reply) = read_msg(&mut reader)? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the child closed the connection",
            ));
        };
        if replies.send(reply).is_err() {
            break;
        }
    }
    Ok(())
}

/// The parent's half: the application thread's end of the channels.
struct ChainClient {
    /// `None` once dropped, to stop the loop thread.
    requests: Option<HandoffSender<u64>>,
    replies: HandoffReceiver<u64>,
    /// Kept to shut the socket down, which unblocks the loop thread if it is in `read`.
    conn: UnixStream,
    loop_thread: Option<JoinHandle<io::Result<()>>>,
    seq: u64,
    waits: Waits,
    /// What the application thread's waits for replies have been like.
    reply_waits: History,
}

impl ChainClient {
    fn call(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|requests| requests.send(self.seq).is_ok());
        if !sent {
            return Err(self.loop_stopped());
        }
        // If the loop thread dies, it drops the reply sender and this returns.
        match self
            .replies
            .recv(self.waits.spell(Role::Waiter, &self.reply_waits))
        {
            Some(reply) => check_reply(self.seq.wrapping_add(1), reply),
            None => Err(self.loop_stopped()),
        }
    }

    /// Why the loop thread is gone (it has returned or is returning: its channels are closed).
    fn loop_stopped(&mut self) -> io::Error {
        match self.loop_thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Ok(Ok(()))) | None => io::Error::other("chain parent loop thread stopped"),
            Some(Err(_)) => io::Error::other("chain parent loop thread panicked"),
        }
    }
}

impl Drop for ChainClient {
    fn drop(&mut self) {
        // Unblock the loop thread wherever it is: `read`/`write` fail after the shutdown, the
        // channel receive ends when the sender goes. Then the join is bounded.
        let _ = self.conn.shutdown(Shutdown::Both);
        self.requests = None;
        if let Some(handle) = self.loop_thread.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(Chain, &[100, 7]);
    }

    #[test]
    fn call_fails_instead_of_hanging_when_the_child_is_gone() {
        let (a, b) = crate::scenarios::bounded_pair();
        drop(b);
        let mut call = Chain.client(a).expect("client");
        assert!(call.run(1, &mut Vec::new()).is_err());
    }
}
