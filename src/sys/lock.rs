//! Advisory file locks and the process's start time: what tells a
//! temporary file that a live writer holds from one a killed process left
//! behind.

use std::fs::File;
use std::io;
use std::time::{Duration, SystemTime};

/// Takes an exclusive advisory lock on `file` without waiting (std's
/// `flock`/`LockFileEx`). `Ok(true)` when taken (held until every
/// descriptor of this open file is closed), `Ok(false)` when another open
/// file holds one, or where the platform has no file locks (so a caller
/// never mistakes "cannot tell" for "nobody holds it").
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// When this process started: from `/proc` on Linux (the boot time plus the
/// process's start in clock ticks, to within a second), elsewhere the first
/// time this function was called (later than the real start, which a caller
/// comparing file times against it must allow for).
pub(crate) fn process_start() -> SystemTime {
    static START: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    *START.get_or_init(|| proc_start().unwrap_or_else(SystemTime::now))
}

#[cfg(target_os = "linux")]
fn proc_start() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    start_from(&stat, &boot, u64::try_from(hz).ok()?)
}

#[cfg(not(target_os = "linux"))]
fn proc_start() -> Option<SystemTime> {
    None
}

/// The start time from `/proc/self/stat` (field 22, clock ticks since boot)
/// and `/proc/stat` (`btime`, seconds since the epoch), rounded down to
/// the second of the boot time (so never later than the real start).
/// Linux's files; pure, so its test runs everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn start_from(stat: &str, boot: &str, hz: u64) -> Option<SystemTime> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing parenthesis, where field 3 begins.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    if hz == 0 {
        return None;
    }
    let since_boot =
        Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_reads_proc_fields() {
        // Field 22 is 250 ticks: 2.5 s after a boot at t = 1000 s.
        let stat = "42 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 250 19 20";
        let boot = "cpu 1 2 3\nbtime 1000\nprocesses 7\n";
        assert_eq!(
            start_from(stat, boot, 100),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_002_500))
        );
        assert_eq!(start_from(stat, "cpu 1\n", 100), None);
        assert_eq!(start_from("garbage", boot, 100), None);
    }

    #[test]
    fn this_process_started_in_the_past() {
        let start = process_start();
        assert!(start <= SystemTime::now());
        // Test binaries run for minutes at most, never hours.
        assert!(SystemTime::now().duration_since(start).unwrap() < Duration::from_secs(6 * 3600));
    }

    #[test]
    fn a_lock_excludes_other_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap());
        drop(a);
        assert!(try_lock_exclusive(&b).unwrap());
    }
}
