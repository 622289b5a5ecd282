//! A child's own account of what its threads wait for
//! ([`dump_waiters`](multiprocess_event_loop::dump_waiters)), asked for with
//! `SIGUSR1`: the `/proc` thread dump of a child names its threads and
//! their kernel wait channels, but only the child knows which reply each
//! one waits for.
//!
//! # Design note
//!
//! No signal handler runs: the child blocks `SIGUSR1` in every thread
//! ([`answer_sigusr1`] must run before any other thread starts, so that they
//! inherit the mask) and one thread, named [`THREAD_NAME`], takes the signal
//! with `sigwait` and writes the dump, as ordinary code, to a file named after
//! the child's pid in the temporary directory (written aside, then renamed,
//! so it appears whole). The parent ([`ask`], then [`collect`]) signals only
//! a child that has that thread and blocks `SIGUSR1` in every other thread:
//! nothing else could take the signal, so it cannot kill the child (the
//! default action of `SIGUSR1`), even a child that never answers.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The name of the child's thread that answers `SIGUSR1` (at most 15 bytes,
/// the length of a Linux thread name).
pub const THREAD_NAME: &str = "mp-waits-usr1";

/// In a child: starts the thread that writes the runtime's waits on each
/// `SIGUSR1`, after blocking the signal in the calling thread.
///
/// Call it first thing in `main`, before any other thread starts: threads
/// started earlier do not block the signal, and a parent that sees them will
/// not send it.
pub fn answer_sigusr1() -> io::Result<()> {
    let set = sigusr1_set()?;
    // SAFETY: `set` is an initialised signal set; a null old-set pointer is
    // allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            loop {
                let mut signal = 0;
                // SAFETY: `set` is an initialised signal set and `signal` a
                // valid place for the number of the signal taken.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    return; // EINVAL, for a set that cannot be waited for.
                }
                if let Err(e) = write_waits() {
                    eprintln!("{THREAD_NAME}: cannot write the runtime's waits: {e}");
                }
            }
        })?;
    Ok(())
}

fn sigusr1_set() -> io::Result<libc::sigset_t> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises the set it is given; `sigaddset` then
    // adds a valid signal number to it.
    unsafe {
        if libc::sigemptyset(set.as_mut_ptr()) != 0
            || libc::sigaddset(set.as_mut_ptr(), libc::SIGUSR1) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(set.assume_init())
    }
}

/// Where child `pid` writes its waits.
fn waits_path(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("mp-waits-{pid}"))
}

fn write_waits() -> io::Result<()> {
    let path = waits_path(std::process::id());
    let aside = path.with_extension("partial");
    std::fs::write(&aside, multiprocess_event_loop::dump_waiters())?;
    std::fs::rename(&aside, &path)
}

/// In the parent: asks child `pid` for its waits, if it answers `SIGUSR1`
/// (see the module's design note); true if it was asked. `pid` must be an
/// unreaped child of this process, so that the number cannot name another.
pub fn ask(pid: u32) -> bool {
    if !answers_sigusr1(pid) {
        return false;
    }
    let Ok(target) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // An answer left over from an earlier question would be taken for this one.
    let _ = std::fs::remove_file(waits_path(pid));
    // SAFETY: kill(2) reads no memory of ours; the caller vouches that `pid`
    // is our unreaped child, and it blocks the signal in every thread.
    unsafe { libc::kill(target, libc::SIGUSR1) == 0 }
}

/// In the parent: the answer of child `pid`, [`ask`]ed earlier, waiting for
/// it until `deadline`; `None` if it has not come by then.
pub fn collect(pid: u32, deadline: Instant) -> Option<String> {
    let path = waits_path(pid);
    loop {
        if let Ok(waits) = std::fs::read_to_string(&path) {
            let _ = std::fs::remove_file(&path);
            return Some(waits);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // The file's appearance has no blocking wait in std; this polls
        // another process's output, it does not order our own threads.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether child `pid` has the answering thread and blocks `SIGUSR1` in
/// every other thread, read from `/proc/PID/task/*/{comm,status}`.
fn answers_sigusr1(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut answering_thread = false;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == THREAD_NAME {
            // Inside `sigwait` the kernel unblocks the awaited signals, so
            // `SigBlk` may not show it: this thread takes the signal.
            answering_thread = true;
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        if !blocks_sigusr1(&status) {
            return false;
        }
    }
    answering_thread
}

/// Whether a thread's `/proc/.../status` shows `SIGUSR1` in its `SigBlk`
/// mask (hexadecimal, bit N-1 for signal N).
fn blocks_sigusr1(status: &str) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGUSR1 - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocked_mask_is_read_from_status() {
        let usr1 = 1u64 << (libc::SIGUSR1 - 1);
        assert!(blocks_sigusr1(&format!("Name:\tx\nSigBlk:\t{usr1:016x}\n")));
        assert!(!blocks_sigusr1("Name:\tx\nSigBlk:\t0000000000000000\n"));
        assert!(!blocks_sigusr1("Name:\tx\n"));
    }

    #[test]
    fn a_process_without_the_answering_thread_is_not_asked() {
        // This test process neither has the thread nor blocks the signal: a
        // SIGUSR1 would kill it.
        assert!(!answers_sigusr1(std::process::id()));
    }
}
