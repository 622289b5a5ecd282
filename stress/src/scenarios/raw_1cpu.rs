//! `raw-1cpu`: [`raw`](super::raw)'s 8-byte ping-pong with both ends pinned to one CPU, so
//! each message is a hand-off between two threads that share that CPU: the sender blocks in
//! `read` (at once: unlike `raw`'s, these ends do not spin), the kernel switches to the
//! receiver. Two same-CPU switches and one socket round trip
//! per call, in the same run as the scenarios it explains.
//!
//! # What it explains
//!
//! A [`call`](super::call) goes through four threads (application thread, parent loop, child
//! loop, worker). On a machine with fewer CPUs than that, the application thread and the worker
//! share CPUs with the loops, and each of the four hand-offs between a thread and its loop is a
//! switch on one CPU: `call` costs about `capnp` plus four same-CPU switches plus the runtime's
//! own work, whatever the runtime does. With a CPU per thread, the hand-offs are cheap cross-CPU
//! handovers instead.
//!
//! The parent pins the application thread for the length of a batch and restores its CPU set
//! after it, so interleaved scenarios are not affected; the child (its own process) pins its
//! serving thread for good. Both pick the lowest CPU of the set they inherited, which is the
//! same CPU. Where pinning fails (a CPU set the process may not change), the scenario reports
//! the error instead of measuring something else.

use std::io;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::{Client, Scenario, read_msg, read_reply, write_msg};

/// The `raw-1cpu` scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawOneCpu;

impl Scenario for RawOneCpu {
    fn name(&self) -> &'static str {
        "raw-1cpu"
    }

    fn client(&mut self, mut conn: UnixStream) -> io::Result<Client> {
        let mut seq = 0u64;
        Ok(Client::Batch(Box::new(move |n, samples| {
            let _pinned = Pinned::to_lowest_cpu()?;
            for _ in 0..n {
                seq = seq.wrapping_add(1);
                let start = Instant::now();
                write_msg(&mut conn, seq)?;
                read_reply(&mut conn, seq)?;
                samples.push(start.elapsed());
            }
            Ok(())
        })))
    }

    fn serve(&mut self, mut conn: UnixStream) -> io::Result<()> {
        let _pinned = Pinned::to_lowest_cpu()?;
        while let Some(value) = read_msg(&mut conn)? {
            write_msg(&mut conn, value)?;
        }
        Ok(())
    }
}

/// The calling thread pinned to one CPU; dropping it restores the CPU set it had.
struct Pinned {
    before: libc::cpu_set_t,
}

impl Pinned {
    /// Pins the calling thread to the lowest CPU it may run on.
    fn to_lowest_cpu() -> io::Result<Self> {
        let before = current_cpu_set()?;
        let lowest = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `before` is an initialised set and the index is below CPU_SETSIZE.
            .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &before) })
            .ok_or_else(|| io::Error::other("the thread may run on no CPU"))?;
        // SAFETY: cpu_set_t is plain bytes, for which all zeroes is the empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `one` is initialised and `lowest` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(lowest, &mut one) };
        set_cpu_set(&one)?;
        Ok(Self { before })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Nothing to report to: the set was accepted before, so this only fails if the process
        // lost CPUs meanwhile, and then the kernel has already moved the thread.
        let _ = set_cpu_set(&self.before);
    }
}

/// The calling thread's CPU set.
pub(crate) fn current_cpu_set() -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain bytes, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is a valid, writable cpu_set_t of the size
    // passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc == 0 {
        Ok(set)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the calling thread's CPU set.
pub(crate) fn set_cpu_set(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_in_one_process() {
        crate::scenarios::run_in_one_process(RawOneCpu, &[100]);
    }

    #[test]
    fn pinning_is_undone() {
        let before = current_cpu_set().expect("cpu set");
        {
            let _pinned = Pinned::to_lowest_cpu().expect("pin");
            let now = current_cpu_set().expect("cpu set");
            // SAFETY: the set is initialised.
            assert_eq!(unsafe { libc::CPU_COUNT(&now) }, 1);
        }
        let after = current_cpu_set().expect("cpu set");
        // SAFETY: both sets are initialised.
        assert!(unsafe { libc::CPU_EQUAL(&before, &after) });
    }
}
