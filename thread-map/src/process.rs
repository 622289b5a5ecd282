//! Processes: spawning a child with one end of a socketpair, as Bitcoin Core
//! does with `-ipcfd=N`, and taking that end in the child.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::sync::global::{AtomicBool, Ordering};

/// The argument that carries the socket's fd number to the child.
pub const IPC_FD_ARG: &str = "-ipcfd";

/// Spawns `command` with one end of a new socketpair, whose fd number is
/// appended to its arguments as `-ipcfd=N`. Returns the child and this
/// process's end.
///
/// The child takes its end with [`take_ipc_fd`].
pub fn spawn_process(command: &mut Command) -> io::Result<(Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    command.arg(format!("{IPC_FD_ARG}={fd}"));
    // SAFETY: the hook runs in the forked child before exec and only calls
    // fcntl, which is async-signal-safe, on an fd the parent keeps open until
    // spawn returns.
    unsafe {
        command.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    Ok((child, ours))
}

/// Parses `-ipcfd=N` (or `-ipcfd N`) from `args`.
pub fn parse_ipc_fd<I: IntoIterator<Item = String>>(args: I) -> Option<RawFd> {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix(IPC_FD_ARG) {
            let value = match value.strip_prefix('=') {
                Some(v) => v.to_string(),
                None if value.is_empty() => args.next()?,
                None => continue,
            };
            return value.parse().ok();
        }
    }
    None
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// In a child started by [`spawn_process`]: takes ownership of the socket
/// named by `-ipcfd=N` on the command line. Returns `None` if there is no such
/// argument; fails if the fd is not an open socket or was already taken.
pub fn take_ipc_fd() -> io::Result<Option<UnixStream>> {
    let Some(fd) = parse_ipc_fd(std::env::args()) else {
        return Ok(None);
    };
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::other("the -ipcfd socket was already taken"));
    }
    // SAFETY: fstat only writes into the zeroed struct we pass.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a plain integer; fstat fails cleanly on a closed fd.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::other(format!(
            "fd {fd} from {IPC_FD_ARG} is not a socket"
        )));
    }
    // SAFETY: the parent passed this fd to us for this purpose alone, it is
    // an open socket (checked above), and TAKEN makes this the only owner.
    Ok(Some(unsafe { UnixStream::from_raw_fd(fd) }))
}
