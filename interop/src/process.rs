//! Processes the way libmultiprocess's example starts them: the parent
//! makes a socketpair and passes its child end's fd number as the child's
//! only argument (`mpprinter 5`); the child serves `InitInterface` on it and
//! exits when the parent hangs up.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitCode};

use std::sync::Arc;
use std::time::Duration;

use multiprocess::{EventLoop, Result};

use crate::init::InitInterface;
use crate::roles::{ExampleInit, Role};

/// Spawns `command` with one end of a new socketpair, whose fd number is
/// appended to its arguments (as `mp::SpawnProcess` does in C++). Returns
/// the child and this process's end.
pub fn spawn_with_fd(command: &mut Command) -> io::Result<(Child, UnixStream)> {
    multiprocess_thread_map::spawn_process_with(command, |fd| fd.to_string())
}

/// Parses the fd a child was given: `N` (libmultiprocess's convention) or
/// `-ipcfd=N` (this workspace's).
pub fn parse_fd_arg(arg: &str) -> Option<RawFd> {
    multiprocess_thread_map::parse_ipc_fd([arg.to_string()])
        .or_else(|| arg.parse().ok())
        .filter(|fd| *fd >= 0)
}

/// In a child: takes ownership of the socket whose fd number is `arg`, the
/// argument the parent gave this process (only [`child_main`] calls it).
/// Fails if `arg` is not an fd number, the fd is not an open socket, or a
/// socket was already taken.
fn take_fd_arg(arg: &str) -> io::Result<UnixStream> {
    let fd = parse_fd_arg(arg).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{arg}` is not a file descriptor number"),
        )
    })?;
    // SAFETY: the fd named on our command line is, by the contract with the
    // parent that started us (libmultiprocess's SpawnProcess, or ours), ours
    // alone to take.
    unsafe { multiprocess_thread_map::take_fd(fd) }
}

/// Serves `InitInterface` in `role` on `stream`, on an event loop named
/// after the program, until the peer hangs up.
pub fn serve(role: Role, stream: UnixStream) -> Result<()> {
    let event_loop = EventLoop::start(role.program())?;
    let init: Arc<dyn InitInterface> = Arc::new(ExampleInit::new(role));
    let connection = multiprocess::serve(&event_loop, stream, init)?;
    // With no deadline, this returns only once the connection has closed.
    connection.wait_disconnected(Duration::MAX);
    tracing::debug!(target: "multiprocess", "{}: the peer hung up", role.program());
    Ok(())
}

/// The whole of `mp-interop-printer` / `mp-interop-calculator`: takes the fd
/// named by the only argument and serves `role` on it; exit status 0 once
/// the peer hangs up, 1 on bad usage or failure.
pub fn child_main(role: Role) -> ExitCode {
    multiprocess::install_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arg] = args.as_slice() else {
        crate::say_err(&format!("Usage: {} <fd>", role.program()));
        return ExitCode::FAILURE;
    };
    let result = take_fd_arg(arg)
        .map_err(multiprocess_thread_map::Error::from)
        .and_then(|stream| serve(role, stream));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::say_err(&format!("{}: {e}", role.program()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_arguments() {
        assert_eq!(parse_fd_arg("5"), Some(5));
        assert_eq!(parse_fd_arg("-ipcfd=7"), Some(7));
        assert_eq!(parse_fd_arg("-1"), None);
        assert_eq!(parse_fd_arg("-ipcfd=-1"), None);
        assert_eq!(parse_fd_arg("-ipcfd"), None);
        assert_eq!(parse_fd_arg("-ipcfd7"), None);
        assert_eq!(parse_fd_arg("-ipcfd=five"), None);
        assert_eq!(parse_fd_arg("five"), None);
        assert_eq!(parse_fd_arg(""), None);
    }

    #[test]
    fn a_non_socket_is_refused() {
        // fd 0 is never a socket under cargo test... unless it is; a closed
        // fd number is certainly not one.
        let error = take_fd_arg("987654").expect_err("not an open fd");
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
    }
}
