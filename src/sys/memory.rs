//! How much of a file the page cache could keep for this process: the
//! memory the system has available, and the limit of the memory cgroup the
//! process runs in (a container's, a `systemd-run -p MemoryMax=` scope's),
//! whichever is smaller. Page cache is charged to the cgroup of the process
//! that read it, so a file larger than the limit cannot stay cached
//! between two passes however much memory the machine has.

use std::path::{Path, PathBuf};

/// Bytes of page cache the process could hold at most: the smaller of
/// `MemAvailable` and the tightest memory limit of its cgroup and the
/// cgroups above it (v2 `memory.max`, v1 `memory.limit_in_bytes`). `None`
/// where none of them can be read (not Linux, no `/proc`).
pub(crate) fn cache_room() -> Option<u64> {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| meminfo_field(&m, "MemAvailable:"));
    let limit = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_limit(&c, Path::new("/sys/fs/cgroup")));
    match (available, limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    }
}

/// A `/proc/meminfo` field in bytes (the file says kB, meaning KiB).
fn meminfo_field(meminfo: &str, name: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The tightest memory limit over the cgroup named in `proc_cgroup` (the
/// text of `/proc/self/cgroup`) and its ancestors, under the cgroup file
/// systems mounted at `root`.
fn cgroup_limit(proc_cgroup: &str, root: &Path) -> Option<u64> {
    let mut tightest: Option<u64> = None;
    for line in proc_cgroup.lines() {
        // `ID:CONTROLLERS:PATH`; v2's line is `0::PATH`.
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (dir, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut at: PathBuf = dir.join(path.trim_start_matches('/'));
        loop {
            let limit = std::fs::read_to_string(at.join(file))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok());
            if let Some(l) = limit {
                tightest = Some(tightest.map_or(l, |t| t.min(l)));
            }
            if at == dir || !at.pop() {
                break;
            }
        }
    }
    tightest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_kib() {
        let m = "MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(meminfo_field(m, "MemAvailable:"), Some(1_024_000));
        assert_eq!(meminfo_field(m, "Cached:"), None);
    }

    #[test]
    fn the_tightest_limit_up_the_tree_wins_and_max_is_none() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path();
        std::fs::create_dir_all(v2.join("a/b")).unwrap();
        std::fs::write(v2.join("memory.max"), "max\n").unwrap();
        std::fs::write(v2.join("a/memory.max"), "1073741824\n").unwrap();
        std::fs::write(v2.join("a/b/memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_limit("0::/a/b\n", v2), Some(1 << 30));
        assert_eq!(cgroup_limit("0::/\n", v2), None);
        // v1: the memory controller's own hierarchy (maybe co-mounted).
        std::fs::create_dir_all(v2.join("memory/c")).unwrap();
        std::fs::write(
            v2.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(v2.join("memory/c/memory.limit_in_bytes"), "67108864\n").unwrap();
        let v1 = "12:cpu,cpuacct:/c\n11:memory:/c\n";
        assert_eq!(cgroup_limit(v1, v2), Some(64 << 20));
    }

    #[test]
    fn this_process_has_some_room() {
        if cfg!(target_os = "linux") {
            assert!(cache_room().is_some_and(|r| r > 0));
        }
    }
}
