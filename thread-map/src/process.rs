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
    spawn_process_with(command, |fd| format!("{IPC_FD_ARG}={fd}"))
}

/// Like [`spawn_process`], for a child that expects the fd number in another
/// form: `fd_arg` makes the argument appended to `command`. libmultiprocess's
/// example programs (`mpprinter N`), for instance, take the bare number:
///
/// ```no_run
/// # use std::process::Command;
/// let (child, stream) = multiprocess_thread_map::spawn_process_with(
///     &mut Command::new("mpprinter"),
///     |fd| fd.to_string(),
/// )?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn_process_with(
    command: &mut Command,
    fd_arg: impl FnOnce(RawFd) -> String,
) -> io::Result<(Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    command.arg(fd_arg(fd));
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
    match parse_ipc_fd(std::env::args()) {
        // SAFETY: an fd named by -ipcfd on our command line is, by the
        // contract with the parent that started us, ours alone to take.
        Some(fd) => unsafe { take_fd(fd) }.map(Some),
        None => Ok(None),
    }
}

/// In a child: takes ownership of the socket `fd` its parent passed (for a
/// child started by [`spawn_process_with`], which says where the number is).
/// Fails if `fd` is not an open socket, or if a socket was already taken in
/// this process. The fd is marked close-on-exec, so that processes this one
/// starts do not inherit the connection.
///
/// # Safety
///
/// `fd` must be the descriptor the parent passed, and nothing else in this
/// process may own or use it: the returned stream closes it when dropped.
pub unsafe fn take_fd(fd: RawFd) -> io::Result<UnixStream> {
    // SAFETY: fstat only writes into the zeroed struct we pass.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a plain integer; fstat fails cleanly on a closed fd.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::other(format!("fd {fd} is not a socket")));
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::other("the IPC socket was already taken"));
    }
    // SAFETY: by this function's contract nothing else owns `fd`; it is an
    // open socket (checked above), and TAKEN keeps it from being taken twice.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // SAFETY: fcntl on an fd this function now owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(stream)
}
