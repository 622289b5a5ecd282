//! Interfaces served on an address, and connecting to them: Bitcoin Core's
//! `-ipcbind` and `-ipcconnect`, on the process's default loop.
//!
//! The protocol has no authentication or encryption of its own: whoever
//! can connect can call every method. Listen on a unix socket (mode 0600:
//! this user only), or, for TCP, on loopback, and tunnel over SSH or
//! WireGuard to reach another machine.

// sync-facade: allow (trait objects are public API: users hold std's Arc)
use std::sync::Arc;

use capnp::capability::FromClientHook;
use multiprocess_event_loop::Result;
use multiprocess_thread_map::{Address, Connection, ListenOptions, Listener};

use crate::interface::{Interface, default_loop};

/// Serves `object` on `address` to every process that connects (each
/// connection gets its own `construct` handshake, `ThreadMap` and worker
/// threads), with the default [`ListenOptions`]. Keep the [`Listener`]
/// for as long as you serve: dropping it closes every connection.
///
/// ```no_run
/// # use std::{path::Path, sync::Arc, time::Duration};
/// # use multiprocess_proxy::{Interface, listen};
/// # use multiprocess_thread_map::Address;
/// # fn demo<I: Interface + ?Sized>(node: Arc<I>) -> multiprocess_event_loop::Result<()> {
/// // bitcoin-node -ipcbind=unix: <datadir>/node.sock
/// let address = Address::parse("unix", Path::new("/home/satoshi/.bitcoin"), "node")?;
/// let listener = listen::<I>(&address, node)?;
/// // ... until shutdown:
/// listener.stop();
/// listener.drain(Duration::from_secs(30));
/// # Ok(())
/// # }
/// ```
pub fn listen<I: Interface + ?Sized>(address: &Address, object: Arc<I>) -> Result<Listener> {
    listen_with::<I>(address, ListenOptions::new(), object)
}

/// [`listen`] with options: the maximum of connections, a socket file its
/// group may use too, a TCP address that is not loopback.
pub fn listen_with<I: Interface + ?Sized>(
    address: &Address,
    options: ListenOptions,
    object: Arc<I>,
) -> Result<Listener> {
    Listener::bind(default_loop()?, address, options, move |ctx| {
        capnp::capability::Client::new(I::to_capnp(&object, &ctx).into_client_hook())
    })
}

/// Connects to the process serving `I` on `address` (see [`listen`]) and
/// returns the connection with the peer's object. The connection stays
/// open while either, or anything obtained through the object, is alive.
///
/// The errors tell apart no such socket, permission denied, connection
/// refused ([`Error::Io`](crate::Error::Io) of kind `NotFound`,
/// `PermissionDenied`, `ConnectionRefused`; `InvalidInput` for a path that
/// is not a socket) and a peer that is not a multiprocess server
/// ([`Error::Protocol`](crate::Error::Protocol)); see
/// [`multiprocess_thread_map::connect_to`].
pub fn connect_to<I: Interface + ?Sized>(address: &Address) -> Result<(Connection, Arc<I>)> {
    connect_to_with::<I>(address, multiprocess_thread_map::DEFAULT_HANDSHAKE_TIMEOUT)
}

/// [`connect_to`], waiting at most `handshake_timeout` for the peer's
/// answer to the `construct` handshake (a peer silent that long is not a
/// multiprocess server).
pub fn connect_to_with<I: Interface + ?Sized>(
    address: &Address,
    handshake_timeout: std::time::Duration,
) -> Result<(Connection, Arc<I>)> {
    let (connection, object) = multiprocess_thread_map::connect_to::<I::Capnp>(
        default_loop()?,
        address,
        handshake_timeout,
    )?;
    Ok((connection, I::from_remote(object)))
}
