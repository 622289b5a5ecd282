//! CPU time (user plus system) of a whole process, read from `/proc/PID/stat` (Linux only).
//!
//! Unlike the context switches of [`crate::ctxsw`], the kernel keeps this per process: the
//! `utime` and `stime` fields of `/proc/PID/stat` include every thread, live or exited, so a
//! thread that exits between two readings keeps its time in the total.

use std::fs;
use std::io;
use std::time::Duration;

/// `utime + stime`, in clock ticks, from the text of a `/proc/PID/stat` file; `None` if it is
/// malformed.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so
/// the fields are counted from the last `)`.
///
/// # Examples
///
/// ```
/// let stat = "4242 (mp bench) S 1 4242 4242 0 -1 4194560 100 0 0 0 25 7 0 0 20 0 3 0";
/// assert_eq!(stress::cpu::parse_stat(stat), Some(32));
/// assert_eq!(stress::cpu::parse_stat("4242 (mpbench) S 1"), None);
/// ```
pub fn parse_stat(text: &str) -> Option<u64> {
    let (_, rest) = text.rsplit_once(')')?;
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s times.
fn ticks_per_second() -> io::Result<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| io::Error::other("sysconf(_SC_CLK_TCK) failed"))
}

/// User plus system CPU time so far of every thread of process `pid`: to the microsecond for
/// this process (`getrusage`), in the kernel's clock ticks (usually 10 ms) for another.
///
/// # Errors
///
/// If `/proc/PID/stat` cannot be read (no such process, or not Linux) or is malformed.
///
/// # Examples
///
/// ```
/// # if cfg!(target_os = "linux") {
/// let spent = stress::cpu::process_cpu(std::process::id())?;
/// println!("{spent:?} of CPU so far");
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    if pid == std::process::id() {
        return own_cpu();
    }
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path)?;
    let ticks = parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no utime and stime in {path}"),
        )
    })?;
    let per_second = ticks_per_second()?;
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(per_second);
    Ok(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// This process's user plus system CPU time, every thread, from `getrusage(RUSAGE_SELF)`.
fn own_cpu() -> io::Result<Duration> {
    // SAFETY: an all-zero `rusage` is a valid value (plain integers), which getrusage overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let of = |t: libc::timeval| {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let micros = u64::try_from(t.tv_usec).unwrap_or(0);
        Duration::from_secs(secs) + Duration::from_micros(micros)
    };
    Ok(of(usage.ru_utime) + of(usage.ru_stime))
}

/// Sum of [`process_cpu`] over several processes.
///
/// # Errors
///
/// The first error of [`process_cpu`].
pub fn cpu(pids: &[u32]) -> io::Result<Duration> {
    pids.iter().map(|&pid| process_cpu(pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_name_with_parentheses_and_spaces_is_skipped() {
        let stat = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 300 45 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some(345));
    }

    #[test]
    fn missing_or_malformed_times_are_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 45"), None);
        assert_eq!(parse_stat("7 (a) R 1 7 7 0 -1 0 0 0 0 0 300"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn busy_work_shows_up() {
        // Spin for 200 ms of wall time: at least some of it is CPU time of this process, and a
        // clock tick is at most 10 ms on any usual kernel.
        let pid = std::process::id();
        let before = process_cpu(pid).expect("read /proc");
        let start = Instant::now();
        let mut x = 0_u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = process_cpu(pid).expect("read /proc");
        assert!(after > before, "{before:?} then {after:?}");
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(process_cpu(u32::MAX).is_err());
    }
}
