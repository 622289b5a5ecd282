//! The one error type of the runtime.

use std::fmt;

/// What went wrong with a cross-process call or with the runtime itself.
///
/// Every fault a peer can cause (disconnecting, sending garbage, naming a
/// thread it was not given, failing in its method) arrives as one of these,
/// never as a panic or a hang. Match on the variant to tell a method that
/// failed ([`Error::Failed`], the application's own error) from a transport
/// that failed (everything else).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The method ran and failed: its implementation returned an error or
    /// panicked. The connection and the worker thread are still usable.
    /// The same variant whether the implementation is in this process or
    /// another, so callers handle both alike.
    Failed(Failure),
    /// The connection to the peer is gone: it closed, crashed or was killed,
    /// before or during the call. Retrying on the same connection is useless.
    Disconnected(String),
    /// The call named a thread the callee did not create for this connection,
    /// or named none where one is needed.
    InvalidThread(String),
    /// The event loop has shut down, so nothing can be posted to it.
    LoopShutDown,
    /// The peer sent something that does not fit: a malformed message, or a
    /// value its Rust type cannot hold (a hash of the wrong length, an enum
    /// value this build does not know, a missing required field).
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

/// A method that ran and failed: what its implementation said, once, and
/// which method it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The method, as `Interface.method` (`"Wallet.balance"`), once the
    /// failure has crossed a process boundary; `None` for an error an
    /// implementation made and nothing has carried yet.
    pub method: Option<String>,
    /// What the implementation said: its error's text, or its panic's
    /// message.
    pub message: String,
    /// Whether the implementation panicked (the worker survived it).
    pub panicked: bool,
}

/// The prefix a server puts in front of an "invalid thread" failure, so that
/// the client can tell it apart from other remote errors.
pub const INVALID_THREAD_PREFIX: &str = "invalid thread: ";

/// The prefix a server puts in front of a request refused for nesting too
/// deep, so that the client can tell it apart from other remote errors.
pub const NESTING_LIMIT_PREFIX: &str = "nesting limit: ";

/// What capnp-rpc puts before the reason of an exception it received.
const REMOTE_EXCEPTION_PREFIX: &str = "remote exception: ";

/// What a server puts between the method's name and a panic's message.
const PANICKED: &str = " panicked: ";

impl Error {
    /// An application error: what an implementation returns when its method
    /// fails (`Err(Error::failed("no such account"))`). Its caller, in this
    /// process or another, gets [`Error::Failed`] with this message.
    pub fn failed(message: impl fmt::Display) -> Self {
        Error::Failed(Failure {
            method: None,
            message: message.to_string(),
            panicked: false,
        })
    }

    /// Maps an error from Cap'n Proto to ours, for a failure that belongs to
    /// no particular call (a handshake, the connection itself).
    pub fn from_capnp(error: capnp::Error) -> Self {
        Self::classify(error, None)
    }

    /// Maps the error a call to `method` ended with: an exception from the
    /// peer becomes [`Error::Failed`] (or [`Error::InvalidThread`], when the
    /// peer's runtime refused the thread), with the server's own message
    /// once, whatever prefixes the wire added.
    pub fn from_capnp_call(error: capnp::Error, method: &str) -> Self {
        Self::classify(error, Some(method))
    }

    fn classify(error: capnp::Error, method: Option<&str>) -> Self {
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
            // The kinds an exception from the peer arrives as: its method
            // (or its runtime, for an invalid thread) failed. capnp-rpc
            // prefixes what it received; a reason without that prefix was
            // made here, reading what the peer sent.
            capnp::ErrorKind::Failed
            | capnp::ErrorKind::Overloaded
            | capnp::ErrorKind::Unimplemented => {
                let remote = extra.strip_prefix(REMOTE_EXCEPTION_PREFIX);
                let reason = remote.unwrap_or(&extra);
                // Only a reason that starts so is the runtime's: a method's
                // error that merely mentions an invalid thread stays a
                // failure of that method.
                if let Some(detail) = reason.strip_prefix(INVALID_THREAD_PREFIX) {
                    return Error::InvalidThread(detail.to_string());
                }
                if let Some(detail) = reason.strip_prefix(NESTING_LIMIT_PREFIX) {
                    return Error::NestingLimit(detail.to_string());
                }
                let Some(reason) = remote else {
                    return Error::Protocol(extra);
                };
                Error::Failed(Failure::parse(reason, method))
            }
            // Everything else is what decoding found wrong in what the peer
            // sent.
            _ => Error::Protocol(extra),
        }
    }

    /// Maps our error to a Cap'n Proto error, to send to a peer as the
    /// failure of no particular method.
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

    /// The exception a server sends when `method`'s implementation returned
    /// this error: `"{method}: {message}"`, which the caller reads back as
    /// [`Error::Failed`] with the message alone. Whatever the error's kind
    /// (a disconnection or an invalid thread the method met on a call of its
    /// own), for the caller it is the method's failure.
    pub fn to_capnp_reply(&self, method: &str) -> capnp::Error {
        capnp::Error::failed(format!("{method}: {self}"))
    }

    /// The exception a server sends when `method`'s implementation panicked
    /// with `message`.
    pub fn panic_reply(method: &str, message: &str) -> capnp::Error {
        capnp::Error::failed(format!("{method}{PANICKED}{message}"))
    }

    /// What a server answers for `method` once its implementation has run:
    /// the value, the implementation's error as the method's failure
    /// ([`to_capnp_reply`](Self::to_capnp_reply)), or its panic as a
    /// failure that says so (the payload is dropped safely).
    pub fn job_reply<T>(
        method: &str,
        outcome: std::thread::Result<Result<T>>,
    ) -> std::result::Result<T, capnp::Error> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            // The method's own error, whatever its kind (a disconnection or
            // an invalid thread it met on a call of its own): for the caller
            // a failure of the method, never a sign that this connection is
            // gone or that its thread is unknown.
            Ok(Err(error)) => Err(error.to_capnp_reply(method)),
            Err(panic) => {
                let message = crate::contain::panic_message(&*panic);
                crate::contain::discard_panic(panic);
                Err(Self::panic_reply(method, &message))
            }
        }
    }

    /// Whether this error means the connection is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Disconnected(_))
    }
}

impl Failure {
    /// Reads a failure from the reason of a peer's exception for a call to
    /// `method`: `"{method}: {message}"` or `"{method} panicked: {message}"`
    /// as our servers send it, or any other text (a C++ peer's exception),
    /// which is all message.
    fn parse(reason: &str, method: Option<&str>) -> Self {
        let failure = |message: &str, panicked| Failure {
            method: method.map(str::to_string),
            message: message.to_string(),
            panicked,
        };
        if let Some(rest) = method.and_then(|method| reason.strip_prefix(method)) {
            if let Some(message) = rest.strip_prefix(PANICKED) {
                return failure(message, true);
            }
            if let Some(message) = rest.strip_prefix(": ") {
                return failure(message, false);
            }
        }
        failure(reason, false)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.method, self.panicked) {
            (Some(method), false) => write!(f, "{method}: {}", self.message),
            (Some(method), true) => write!(f, "{method}{PANICKED}{}", self.message),
            (None, false) => f.write_str(&self.message),
            (None, true) => write!(f, "panicked: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(failure) => failure.fmt(f),
            Error::Disconnected(m) => write!(f, "peer disconnected: {m}"),
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

    fn received(reason: &str) -> capnp::Error {
        // As capnp-rpc hands over an exception from the peer.
        capnp::Error::failed(format!("{REMOTE_EXCEPTION_PREFIX}{reason}"))
    }

    #[test]
    fn capnp_errors_map_to_what_happened() {
        assert!(matches!(
            Error::from_capnp(received("invalid thread: not a thread this process made")),
            Error::InvalidThread(m) if m == "not a thread this process made"
        ));
        assert!(matches!(
            Error::from_capnp_call(received("Probe.fail: invalid thread: its own"), "Probe.fail"),
            Error::Failed(Failure { message, panicked: false, .. }) if message == "invalid thread: its own"
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
            Error::from_capnp(received("nesting limit: Probe.callFn refused")),
            Error::NestingLimit(m) if m == "Probe.callFn refused"
        ));
        let cut = capnp::Error::from_kind(capnp::ErrorKind::PrematureEndOfFile);
        assert!(
            matches!(Error::from_capnp(cut), Error::Disconnected(_)),
            "a message cut short by EOF is a disconnection"
        );
        assert!(
            matches!(
                Error::from_capnp_call(capnp::Error::failed("result.hash: 31 bytes".into()), "M.m"),
                Error::Protocol(m) if m == "result.hash: 31 bytes"
            ),
            "a failure made here, reading the peer's answer, is the peer's protocol error"
        );
    }

    #[test]
    fn a_failure_round_trips_with_its_message_once() {
        let sent = Error::failed("no such account").to_capnp_reply("Wallet.balance");
        let got = Error::from_capnp_call(received(&sent.extra), "Wallet.balance");
        assert_eq!(
            got,
            Error::Failed(Failure {
                method: Some("Wallet.balance".into()),
                message: "no such account".into(),
                panicked: false,
            })
        );
        assert_eq!(got.to_string(), "Wallet.balance: no such account");

        let sent = Error::panic_reply("Wallet.balance", "index out of bounds");
        let got = Error::from_capnp_call(received(&sent.extra), "Wallet.balance");
        assert!(
            matches!(&got, Error::Failed(f) if f.panicked && f.message == "index out of bounds")
        );

        // A C++ peer's exception text is all message.
        let got = Error::from_capnp_call(received("std::exception: boom"), "Wallet.balance");
        assert!(
            matches!(&got, Error::Failed(f) if f.message == "std::exception: boom" && !f.panicked)
        );
    }
}
