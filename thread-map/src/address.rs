//! Addresses processes find each other by, as Bitcoin Core's `-ipcbind`
//! and `-ipcconnect` take them:
//!
//! | text | means |
//! | --- | --- |
//! | `unix` | the program's default socket file, `<dir>/<name>.sock` (`bitcoin-node -ipcbind=unix` listens on `<datadir>/node.sock`) |
//! | `unix:PATH` | the socket file `PATH` |
//! | `tcp:HOST:PORT` | a TCP port; `HOST` an IPv4 address (`127.0.0.1`) or an IPv6 address in brackets (`[::1]`) |
//!
//! The protocol has no authentication or encryption of its own: anyone who
//! can connect can call every method. A socket file is protected by its
//! mode (0600, the owner only); a TCP port by nothing, which is why a
//! listener binds only loopback addresses unless told otherwise. To reach
//! another machine, tunnel (SSH, WireGuard) to a unix socket or to
//! loopback.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use multiprocess_event_loop::{Error, Result};

/// Where a process listens or connects: a Unix socket file or a TCP
/// address. Parse one with [`Address::parse`] (which knows the program's
/// default socket) or [`str::parse`] (which does not).
///
/// # Examples
///
/// ```
/// use multiprocess_thread_map::Address;
/// use std::path::Path;
///
/// let datadir = Path::new("/home/satoshi/.bitcoin");
/// let node = Address::parse("unix", datadir, "node").unwrap();
/// assert_eq!(node, Address::Unix(datadir.join("node.sock")));
/// assert_eq!(node.to_string(), "unix:/home/satoshi/.bitcoin/node.sock");
///
/// let tcp: Address = "tcp:[::1]:8333".parse().unwrap();
/// assert_eq!(tcp.to_string(), "tcp:[::1]:8333");
///
/// let bad = "tcp:localhost".parse::<Address>().unwrap_err();
/// assert!(bad.to_string().contains("expected"), "{bad}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A Unix-domain socket file.
    Unix(PathBuf),
    /// A TCP address: an IP address and a port (0: any free port, when
    /// listening).
    Tcp(SocketAddr),
}

/// What every malformed address is told it should have been.
const EXPECTED: &str = "expected `unix`, `unix:PATH` or `tcp:HOST:PORT` \
     (HOST an IPv4 address such as 127.0.0.1, or an IPv6 address in brackets such as [::1])";

fn bad(text: &str, why: &str) -> Error {
    Error::Io {
        kind: std::io::ErrorKind::InvalidInput,
        message: format!("bad address {text:?}: {why}; {EXPECTED}"),
    }
}

impl Address {
    /// Parses `text`; a bare `unix` is the program's default socket,
    /// `<dir>/<name>.sock` (`name` as `node` for `node.sock`).
    ///
    /// Fails with [`Error::Io`] of kind
    /// [`InvalidInput`](std::io::ErrorKind::InvalidInput), whose message
    /// says what was expected.
    pub fn parse(text: &str, dir: &Path, name: &str) -> Result<Address> {
        if text == "unix" {
            if name.is_empty() || name.contains('/') {
                return Err(bad(
                    text,
                    &format!("the program's default socket name {name:?} is not a file name"),
                ));
            }
            return Ok(Address::Unix(dir.join(format!("{name}.sock"))));
        }
        Self::parse_explicit(text)
    }

    fn parse_explicit(text: &str) -> Result<Address> {
        if text == "unix" {
            return Err(bad(
                text,
                "a bare `unix` names the program's default socket, which only \
                 Address::parse knows (give it the directory and the name)",
            ));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad(text, "the path after `unix:` is empty"));
            }
            if path.contains('\0') {
                return Err(bad(text, "the path contains a NUL byte"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp:") {
            return parse_tcp(text, rest).map(Address::Tcp);
        }
        Err(bad(text, "unknown kind of address"))
    }

    /// Whether this is a TCP address whose IP is a loopback one
    /// (`127.0.0.0/8`, `::1`): reachable from this machine only.
    pub fn is_loopback(&self) -> bool {
        match self {
            Address::Unix(_) => false,
            Address::Tcp(addr) => addr.ip().is_loopback(),
        }
    }
}

fn parse_tcp(text: &str, rest: &str) -> Result<SocketAddr> {
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(bad(text, "an IPv6 address's `[` has no `]`"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(bad(text, "no `:PORT` after the IPv6 address"));
        };
        let ip: std::net::Ipv6Addr = host
            .parse()
            .map_err(|_| bad(text, &format!("{host:?} is not an IPv6 address")))?;
        (IpAddr::V6(ip), port)
    } else {
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(bad(text, "no `:PORT`"));
        };
        if host.contains(':') {
            return Err(bad(text, "an IPv6 address must be in brackets"));
        }
        let ip: std::net::Ipv4Addr = host
            .parse()
            .map_err(|_| bad(text, &format!("{host:?} is not an IPv4 address")))?;
        (IpAddr::V4(ip), port)
    };
    let port: u16 = port
        .parse()
        .map_err(|_| bad(text, &format!("{port:?} is not a port number (0 to 65535)")))?;
    Ok(SocketAddr::new(host, port))
}

impl FromStr for Address {
    type Err = Error;

    /// Parses `unix:PATH` or `tcp:HOST:PORT`; a bare `unix` needs the
    /// program's default, so only [`Address::parse`] takes it.
    fn from_str(text: &str) -> Result<Address> {
        Self::parse_explicit(text)
    }
}

impl fmt::Display for Address {
    /// The address as [`Address::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            // SocketAddr writes IPv6 addresses in brackets.
            Address::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_and_message(result: Result<Address>) -> (std::io::ErrorKind, String) {
        match result {
            Err(Error::Io { kind, message }) => (kind, message),
            other => panic!("expected an invalid-input error, got {other:?}"),
        }
    }

    #[test]
    fn every_form_parses() {
        let dir = Path::new("/data");
        assert_eq!(
            Address::parse("unix", dir, "node").ok(),
            Some(Address::Unix("/data/node.sock".into()))
        );
        assert_eq!(
            Address::parse("unix:/run/x.sock", dir, "node").ok(),
            Some(Address::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            Address::parse("unix:rel/x.sock", dir, "node").ok(),
            Some(Address::Unix("rel/x.sock".into()))
        );
        assert_eq!(
            "tcp:127.0.0.1:8332".parse::<Address>().ok(),
            Some(Address::Tcp("127.0.0.1:8332".parse().expect("literal")))
        );
        assert_eq!(
            "tcp:[::1]:0".parse::<Address>().ok(),
            Some(Address::Tcp("[::1]:0".parse().expect("literal")))
        );
        assert_eq!(
            "tcp:[fe80::1]:65535".parse::<Address>().ok(),
            Some(Address::Tcp("[fe80::1]:65535".parse().expect("literal")))
        );
    }

    #[test]
    fn addresses_print_as_they_parse() {
        for text in [
            "unix:/a/b.sock",
            "tcp:127.0.0.1:1",
            "tcp:[::1]:2",
            "tcp:0.0.0.0:3",
        ] {
            let address: Address = text.parse().expect(text);
            assert_eq!(address.to_string(), text);
        }
    }

    #[test]
    fn bad_addresses_say_what_was_expected() {
        let cases = [
            ("", "unknown kind"),
            ("unix:", "empty"),
            ("unix", "default socket"),
            ("udp:1.2.3.4:5", "unknown kind"),
            ("tcp:127.0.0.1", "no `:PORT`"),
            ("tcp:127.0.0.1:", "not a port"),
            ("tcp:127.0.0.1:65536", "not a port"),
            ("tcp:127.0.0.1:-1", "not a port"),
            ("tcp:localhost:80", "not an IPv4 address"),
            ("tcp:::1:80", "in brackets"),
            ("tcp:[::1:80", "no `]`"),
            ("tcp:[::1]80", "no `:PORT`"),
            ("tcp:[1.2.3.4]:80", "not an IPv6 address"),
            ("tcp:[::1]:x", "not a port"),
        ];
        for (text, why) in cases {
            let (kind, message) = kind_and_message(text.parse());
            assert_eq!(kind, std::io::ErrorKind::InvalidInput, "{text}");
            assert!(message.contains(why), "{text:?}: {message}");
            assert!(message.contains(EXPECTED), "{text:?}: {message}");
        }
        let (_, message) = kind_and_message(Address::parse("unix", Path::new("/d"), "a/b"));
        assert!(message.contains("not a file name"), "{message}");
    }

    #[test]
    fn loopback_is_told_apart() {
        let loopback = ["tcp:127.0.0.1:1", "tcp:127.1.2.3:1", "tcp:[::1]:1"];
        for text in loopback {
            assert!(text.parse::<Address>().expect(text).is_loopback(), "{text}");
        }
        for text in ["tcp:0.0.0.0:1", "tcp:[::]:1", "tcp:10.0.0.1:1", "unix:/x"] {
            assert!(
                !text.parse::<Address>().expect(text).is_loopback(),
                "{text}"
            );
        }
    }
}
