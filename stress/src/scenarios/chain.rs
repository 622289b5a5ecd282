//! `chain`: the four cross-thread hand-offs the runtime makes per call, with plain threads,
//! crossbeam channels and blocking socket I/O; no capnp.
//!
//! # Shape
//!
//! ```text
//!  parent                                   child
//!  app ──(1) chan──▶ loop ══ socket ══▶ reader ──(2) chan──▶ worker
//!  app ◀─(4) chan─── loop ◀═ socket ═══ writer ◀─(3) chan─── worker
//! ```
//!
//! - Parent: the application thread (the one timing the call) sends the request over a channel
//!   to the parent's "loop" thread (hand-off 1). Calls are synchronous, so that one thread can
//!   write the request and then block reading the reply; it hands the reply to the
//!   application thread over a second channel (hand-off 4).
//! - Child: its "loop" thread is split in two, because blocking I/O cannot wait on the socket
//!   and a channel at once. The reader (the child's main thread) reads the socket and hands the
//!   request to the worker (hand-off 2); the worker answers `request + 1` over a channel to the
//!   writer (hand-off 3), a dedicated thread that writes the socket.
//!
//! So per call: 4 channel hand-offs and 2 socket crossings, 6 thread wake-ups in all, the same
//! counts as the runtime (app → parent loop → child loop → worker → child loop → parent loop
//! → app). What differs: the runtime's loop thread waits in `epoll` and is woken by a
//! descriptor write when work is posted to it, where here a loop thread waits in `read` or in
//! a crossbeam receive (which spins briefly, then parks on a futex). The gap between `chain`
//! and the runtime scenarios is the price of the event loop and of capnp.
//!
//! Channels are `unbounded`, like the runtime's mailbox.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::{Client, Scenario, check_reply, read_msg, write_msg};

/// The `chain` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chain;

impl Scenario for Chain {
    fn name(&self) -> &'static str {
        "chain"
    }

    fn client(&mut self, conn: UnixStream) -> io::Result<Client> {
        let (req_tx, req_rx) = unbounded();
        let (rep_tx, rep_rx) = unbounded();
        let loop_conn = conn.try_clone()?;
        let loop_thread = thread::Builder::new()
            .name("chain-parent-loop".into())
            .spawn(move || parent_loop(loop_conn, &req_rx, &rep_tx))?;
        let mut client = ChainClient {
            requests: Some(req_tx),
            replies: rep_rx,
            conn,
            loop_thread: Some(loop_thread),
            seq: 0,
        };
        Ok(Client::Each(Box::new(move || client.call())))
    }

    fn serve(&mut self, conn: UnixStream) -> io::Result<()> {
        let (req_tx, req_rx) = unbounded::<u64>();
        let (rep_tx, rep_rx) = unbounded::<u64>();
        let worker = thread::Builder::new()
            .name("chain-worker".into())
            .spawn(move || {
                for request in req_rx {
                    if rep_tx.send(request.wrapping_add(1)).is_err() {
                        break;
                    }
                }
            })?;
        let mut write_conn = conn.try_clone()?;
        let writer = thread::Builder::new()
            .name("chain-child-writer".into())
            .spawn(move || -> io::Result<()> {
                for reply in rep_rx {
                    write_msg(&mut write_conn, reply)?;
                }
                Ok(())
            })?;
        let read_result = child_reader(conn, &req_tx);
        // Closing the request channel stops the worker, whose exit closes the reply channel
        // and stops the writer: both joins are bounded.
        drop(req_tx);
        let worker_result = worker.join();
        let writer_result = writer.join();
        read_result?;
        worker_result.map_err(|_| io::Error::other("chain worker thread panicked"))?;
        writer_result.map_err(|_| io::Error::other("chain writer thread panicked"))?
    }
}

/// The child's reader: socket → worker, until EOF.
fn child_reader(mut conn: UnixStream, requests: &Sender<u64>) -> io::Result<()> {
    while let Some(request) = read_msg(&mut conn)? {
        if requests.send(request).is_err() {
            return Err(io::Error::other("chain worker thread stopped"));
        }
    }
    Ok(())
}

/// The parent's loop thread: request channel → socket → reply channel.
///
/// Returns `Ok` when the client goes away (its request channel closes), an error when the
/// connection does.
fn parent_loop(
    mut conn: UnixStream,
    requests: &Receiver<u64>,
    replies: &Sender<u64>,
) -> io::Result<()> {
    for request in requests {
        write_msg(&mut conn, request)?;
        let Some(reply) = read_msg(&mut conn)? else {
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
    requests: Option<Sender<u64>>,
    replies: Receiver<u64>,
    /// Kept to shut the socket down, which unblocks the loop thread if it is in `read`.
    conn: UnixStream,
    loop_thread: Option<JoinHandle<io::Result<()>>>,
    seq: u64,
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
        match self.replies.recv() {
            Ok(reply) => check_reply(self.seq.wrapping_add(1), reply),
            Err(_) => Err(self.loop_stopped()),
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
        crate::scenarios::run_in_one_process(Chain, &[100]);
    }

    #[test]
    fn call_fails_instead_of_hanging_when_the_child_is_gone() {
        let (a, b) = crate::scenarios::bounded_pair();
        drop(b);
        let mut call = Chain.client(a).expect("client");
        assert!(call.run(1, &mut Vec::new()).is_err());
    }
}
