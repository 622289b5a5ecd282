//! `listen` and `listen-tcp`: [`call`](super::call) over a connection made through a listening
//! socket instead of a socketpair: a unix socket (`-ipcbind=unix:PATH`) or TCP on loopback.
//!
//! # Shape
//!
//! ```text
//!  parent                       child
//!  socketpair ◀── address ───── Listener::bind(unix:/tmp/..sock | tcp:127.0.0.1:0)
//!  connect_to(address) ═══════▶ accept (on the loop) ─▶ construct ─▶ Init
//!  Probe.add(i, 1) ═══════════▶ worker dedicated to the app thread (as in `call`)
//!  closes the socketpair ─────▶ the child stops listening and returns
//! ```
//!
//! The calls are `call`'s; only the socket differs. A unix socket accepted from a listener is
//! the same kind of stream as a socketpair's end, so `listen` should match `call`; TCP on
//! loopback adds the kernel's TCP path (`TCP_NODELAY` is set) to every message.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use mp_testkit::probe::{Init, Probe};
use mp_testkit::probe_capnp::init;
use multiprocess::Interface;
use multiprocess_thread_map::{
    Address, Connection, DEFAULT_HANDSHAKE_TIMEOUT, EventLoop, ListenOptions, Listener, LoopHandle,
};

use super::runtime::to_io;
use super::{Client, Scenario, check_reply, read_msg, write_msg};

/// The longest address the child may send (a unix socket path is at most 108 bytes).
const MAX_ADDRESS: u64 = 4096;

/// The `listen` scenario (`tcp: false`) and `listen-tcp` (`tcp: true`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Listen {
    /// Over TCP on loopback rather than a unix socket.
    pub tcp: bool,
}

impl Scenario for Listen {
    fn name(&self) -> &'static str {
        if self.tcp { "listen-tcp" } else { "listen" }
    }

    fn client(&mut self, mut conn: UnixStream) -> io::Result<Client> {
        let address = read_address(&mut conn)?;
        let event_loop = EventLoop::start("mpbench-listen-loop")?;
        let (connection, init) = multiprocess_thread_map::connect_to::<init::Client>(
            &event_loop,
            &address,
            DEFAULT_HANDSHAKE_TIMEOUT,
        )
        .map_err(to_io)?;
        let init = <dyn Init as Interface>::from_remote(init);
        let probe = init.make_probe().map_err(to_io)?;
        let mut client = ListenClient {
            probe,
            _init: init,
            _connection: connection,
            _event_loop: event_loop,
            _control: conn,
            seq: 0,
        };
        Ok(Client::Each(Box::new(move || client.call())))
    }

    fn serve(&mut self, mut conn: UnixStream) -> io::Result<()> {
        let address = if self.tcp {
            Address::Tcp(([127, 0, 0, 1], 0).into())
        } else {
            Address::Unix(
                std::env::temp_dir().join(format!("mpbench-listen-{}.sock", std::process::id())),
            )
        };
        let event_loop = EventLoop::start("mpbench-listen-child-loop")?;
        let listener = Listener::bind(
            &event_loop,
            &address,
            ListenOptions::new(),
            mp_testkit::probe_server::bootstrap,
        )
        .map_err(to_io)?;
        write_address(&mut conn, listener.address())?;
        // The parent closes the socketpair at the end of the run.
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        listener.stop();
        listener.disconnect_all();
        Ok(())
    }
}

/// Sends `address` as its length, then its text.
fn write_address(conn: &mut UnixStream, address: &Address) -> io::Result<()> {
    let text = address.to_string();
    write_msg(conn, text.len() as u64)?;
    conn.write_all(text.as_bytes())
}

/// Reads what [`write_address`] sent.
fn read_address(conn: &mut UnixStream) -> io::Result<Address> {
    let Some(len) = read_msg(conn)? else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the child closed the connection before sending its address",
        ));
    };
    if len > MAX_ADDRESS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an address of {len} bytes"),
        ));
    }
    let mut text = vec![0; len as usize];
    conn.read_exact(&mut text)?;
    let text =
        String::from_utf8(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    text.parse().map_err(to_io)
}

/// The parent's half.
struct ListenClient {
    /// Declared first: dropped before the connection it lives on.
    probe: Arc<dyn Probe>,
    _init: Arc<dyn Init>,
    _connection: Connection,
    _event_loop: LoopHandle,
    /// The socketpair to the child: closing it ends the child's run.
    _control: UnixStream,
    seq: i32,
}

impl ListenClient {
    fn call(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let expected = self.seq.wrapping_add(1);
        let sum = self.probe.add(self.seq, 1).map_err(to_io)?;
        check_reply(expected, sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::run_in_one_process;

    #[test]
    fn over_a_unix_socket_in_one_process() {
        run_in_one_process(Listen { tcp: false }, &[100]);
    }

    #[test]
    fn over_tcp_loopback_in_one_process() {
        run_in_one_process(Listen { tcp: true }, &[100]);
    }
}
