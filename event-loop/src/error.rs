//! The one error type of the runtime.

use std::fmt;

/// What went wrong with a cross-process call or with the runtime itself.
///
/// Every fault a peer can cause (disconnecting, sending garbage, naming a
/// thread it was not given, failing in its method) arrives as one of these,
/// never as a panic or a hang.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The connection to the peer is gone: it closed, crashed or was killed,
    /// before or during the call. Retrying on the same connection is useless.
    Disconnected(String),
    /// The peer ran the call and it failed: its method returned an error or
    /// panicked. The connection and the worker thread are still usable.
    Remote(String),
    /// The call named a thread the callee did not create for this connection,
    /// or named none where one is needed.
    InvalidThread(String),
    /// The event loop has shut down, so nothing can be posted to it.
    LoopShutDown,
    /// The peer broke the protocol (malformed message, unexpected type).
    Protocol(String),
    /// A blocking call was made on an event-loop thread. A loop thread must
    /// never wait for a reply: it is what delivers replies, so it would
    /// wait forever (its own loop) or stall every connection on it.
    WrongThread(String),
    /// A request was refused because it would have run nested, inside a
    /// thread's wait for a reply, deeper than that thread's stack allows
    /// (`stack::check_nesting`). The thread and the connection are still
    /// usable; the request did not run.
    NestingLimit(String),
    /// An operating-system I/O error (spawning a process, a socket).
    Io {
        /// The kind of the underlying `std::io::Error`.
        kind: std::io::ErrorKind,
        /// Its message.
        message: String,
    },
}

/// The prefix a server puts in front of an "invalid thread" failure, so that
/// the client can tell it apart from other remote errors.
pub const INVALID_THREAD_PREFIX: &str = "invalid thread: ";

/// The prefix a server puts in front of a request refused for nesting too
/// deep, so that the client can tell it apart from other remote errors.
pub const NESTING_LIMIT_PREFIX: &str = "nesting limit: ";

/// What capnp-rpc puts before the reason of an exception it received.
const REMOTE_EXCEPTION_PREFIX: &str = "remote exception: ";

impl Error {
    /// Maps an error from Cap'n Proto to ours.
    pub fn from_capnp(error: capnp::Error) -> Self {
        // capnp's errors about malformed input (an out-of-bounds pointer in
        // a peer's response, say) carry their description in `kind` and
        // leave `extra` empty: keep the description, never a blank message.
        let mut extra = if error.extra.is_empty() {
            error.kind.to_string()
        } else {
            error.extra
        };
        // The reason comes from the peer, and errors are kept (a closed
        // connection's, say) and copied to every waiting thread.
        crate::bounded::truncate(&mut extra, crate::bounded::MAX_ERROR_MESSAGE);
        match error.kind {
            // A socket that ends in the middle of a message is a peer that
            // went away mid-write (killed, say), not one that sent garbage.
            capnp::ErrorKind::Disconnected | capnp::ErrorKind::PrematureEndOfFile => {
                Error::Disconnected(extra)
            }
            // The four kinds an exception from the peer arrives as: its
            // method (or its runtime, for an invalid thread) failed.
            capnp::ErrorKind::Failed
            | capnp::ErrorKind::Overloaded
            | capnp::ErrorKind::Unimplemented => {
                // Only a reason that starts so (after capnp-rpc's own
                // prefix) is the runtime's: a method's error that merely
                // mentions an invalid thread stays a remote error.
                let reason = extra
                    .strip_prefix(REMOTE_EXCEPTION_PREFIX)
                    .unwrap_or(&extra);
                if let Some(detail) = reason.strip_prefix(INVALID_THREAD_PREFIX) {
                    return Error::InvalidThread(detail.to_string());
                }
                if let Some(detail) = reason.strip_prefix(NESTING_LIMIT_PREFIX) {
                    return Error::NestingLimit(detail.to_string());
                }
                Error::Remote(extra)
            }
            // Everything else is what decoding found wrong in what the peer
            // sent.
            _ => Error::Protocol(extra),
        }
    }

    /// Maps our error to a Cap'n Proto error, to send to a peer.
    pub fn to_capnp(&self) -> capnp::Error {
        match self {
            Error::Disconnected(m) => capnp::Error::disconnected(m.clone()),
            Error::InvalidThread(m) => capnp::Error::failed(format!("{INVALID_THREAD_PREFIX}{m}")),
            // Overloaded: the peer may retry later, or shallower.
            Error::NestingLimit(m) => {
                capnp::Error::overloaded(format!("{NESTING_LIMIT_PREFIX}{m}"))
            }
            other => capnp::Error::failed(other.to_string()),
        }
    }

    /// Whether this error means the connection is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Disconnected(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disconnected(m) => write!(f, "peer disconnected: {m}"),
            Error::Remote(m) => write!(f, "remote call failed: {m}"),
            Error::InvalidThread(m) => write!(f, "invalid thread: {m}"),
            Error::LoopShutDown => f.write_str("the event loop has shut down"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::WrongThread(m) => write!(f, "called on the wrong thread: {m}"),
            Error::NestingLimit(m) => write!(f, "nesting limit: {m}"),
            Error::Io { message, .. } => write!(f, "I/O error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl From<capnp::Error> for Error {
    fn from(e: capnp::Error) -> Self {
        Error::from_capnp(e)
    }
}

/// A specialised `Result` for the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn received(reason: &str) -> Error {
        // As capnp-rpc hands over an exception from the peer.
        Error::from_capnp(capnp::Error::failed(format!(
            "{REMOTE_EXCEPTION_PREFIX}{reason}"
        )))
    }

    #[test]
    fn capnp_errors_map_to_what_happened() {
        assert!(matches!(
            received("invalid thread: not a thread this process made"),
            Error::InvalidThread(m) if m == "not a thread this process made"
        ));
        assert!(matches!(
            received("Probe.fail: invalid thread: its own"),
            Error::Remote(m) if m.contains("its own")
        ));
        assert!(matches!(
            Error::from_capnp(capnp::Error::disconnected("gone".to_string())),
            Error::Disconnected(_)
        ));
        assert!(matches!(
            Error::from_capnp(Error::NestingLimit("too deep".into()).to_capnp()),
            Error::NestingLimit(m) if m == "too deep"
        ));
        assert!(matches!(
            received("nesting limit: Probe.callFn refused"),
            Error::NestingLimit(m) if m == "Probe.callFn refused"
        ));
        let cut = capnp::Error::from_kind(capnp::ErrorKind::PrematureEndOfFile);
        assert!(
            matches!(Error::from_capnp(cut), Error::Disconnected(_)),
            "a message cut short by EOF is a disconnection"
        );
    }
}
