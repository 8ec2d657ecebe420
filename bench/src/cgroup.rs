//! A temporary memory cgroup, so "dataset larger than RAM" runs on any
//! machine: page cache a process faults in is charged to its cgroup, and a
//! limit below the file size makes the kernel evict as it would on a small
//! laptop.
//!
//! Both hierarchies are supported, because both are in use: cgroup v1 (a
//! `memory` hierarchy, usually `/sys/fs/cgroup/memory`: older distributions,
//! many CI virtual machines) and cgroup v2 (the unified hierarchy:
//! `memory.max`, `memory.peak`, `memory.events`). Which one holds the memory
//! controller is read from `/proc/self/mountinfo`, not guessed from paths:
//! in the hybrid layout a v2 tree is mounted beside v1 controllers, without
//! the memory controller.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The cgroup interface holding the memory controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    /// cgroup v1: a hierarchy of its own for `memory`.
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

/// Where memory cgroups are created: the memory controller's hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 or v2.
    pub version: Version,
    /// The folder new cgroups are created in (the hierarchy's mount point).
    pub root: PathBuf,
}

/// Distinguishes cgroups created by one process.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl Hierarchy {
    /// The memory controller's hierarchy on this machine.
    ///
    /// # Errors
    /// [`ErrorKind::NoMemoryController`], or `/proc/self/mountinfo` cannot be read.
    pub fn detect() -> Result<Hierarchy> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Hierarchy::from_mountinfo(&text, Path::new("/"))
    }

    /// The memory controller's hierarchy as `mountinfo` (the text of
    /// `/proc/self/mountinfo`) describes it, reading v2 mounts'
    /// `cgroup.controllers` under `sysroot` (`/` on a live system; a
    /// folder laid out the same way in tests). A v1 `memory` hierarchy wins:
    /// a controller is attached to one hierarchy at a time, so when v1 has
    /// it, a v2 mount beside it (the hybrid layout) does not.
    ///
    /// # Errors
    /// [`ErrorKind::NoMemoryController`].
    pub fn from_mountinfo(mountinfo: &str, sysroot: &Path) -> Result<Hierarchy> {
        let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
        if let Some(m) = mounts
            .iter()
            .find(|m| m.fs_type == "cgroup" && m.super_options.split(',').any(|o| o == "memory"))
        {
            return Ok(Hierarchy {
                version: Version::V1,
                root: under(sysroot, &m.mount_point),
            });
        }
        for m in mounts.iter().filter(|m| m.fs_type == "cgroup2") {
            let on_disk = under(sysroot, &m.mount_point);
            let controllers =
                std::fs::read_to_string(on_disk.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Ok(Hierarchy {
                    version: Version::V2,
                    root: on_disk,
                });
            }
        }
        Err(ErrorKind::NoMemoryController.into())
    }

    /// Creates the cgroup `name` (made unique with this process's id and a
    /// counter) with a memory limit of `limit` bytes and no swap.
    ///
    /// # Errors
    /// [`ErrorKind::NeedsRoot`] without the right to create it,
    /// [`ErrorKind::ControllerDisabled`] when a v2 root does not pass the
    /// memory controller down, or the limit cannot be written.
    pub fn create(&self, name: &str, limit: u64) -> Result<MemoryCgroup> {
        if self.version == Version::V2 {
            self.enable_memory_for_children()?;
        }
        let dir = self.root.join(format!(
            "{name}-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ErrorKind::NeedsRoot { path: dir.clone() }.into(),
            _ => Error::io(&dir, e),
        })?;
        let cg = MemoryCgroup {
            dir,
            version: self.version,
            limit,
        };
        let (limit_file, swap_file, swap_value) = match self.version {
            Version::V1 => (
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                limit.to_string(),
            ),
            Version::V2 => ("memory.max", "memory.swap.max", "0".to_string()),
        };
        let path = cg.dir.join(limit_file);
        std::fs::write(&path, limit.to_string()).map_err(|e| Error::io(&path, e))?;
        // Without swap accounting (or without swap) the swap file is absent
        // or refuses: the memory limit alone is the cap then.
        let _ = std::fs::write(cg.dir.join(swap_file), swap_value);
        Ok(cg)
    }

    /// cgroup v2 hands a controller to a child only when the parent's
    /// `cgroup.subtree_control` lists it.
    fn enable_memory_for_children(&self) -> Result<()> {
        let path = self.root.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        if enabled.split_whitespace().any(|c| c == "memory") {
            return Ok(());
        }
        std::fs::write(&path, "+memory").map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ErrorKind::NeedsRoot {
                path: self.root.clone(),
            }
            .into(),
            // EBUSY: the root holds processes itself (a container's
            // namespace root), which v2 forbids alongside controllers.
            _ => Error::from(ErrorKind::ControllerDisabled {
                path: path.clone(),
                reason: e.to_string(),
            }),
        })
    }
}

/// `path` (absolute) relocated under `sysroot`.
fn under(sysroot: &Path, path: &Path) -> PathBuf {
    sysroot.join(path.strip_prefix("/").unwrap_or(path))
}

/// The fields of a mountinfo line the detection needs.
struct Mount {
    mount_point: PathBuf,
    fs_type: String,
    super_options: String,
}

impl Mount {
    /// Parses `36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory`:
    /// the mount point is the 5th field, the file-system type, source and
    /// super options follow the `-` separator (optional fields vary in number).
    fn parse(line: &str) -> Option<Mount> {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        Some(Mount {
            mount_point: PathBuf::from(unescape(fields.get(4)?)),
            fs_type: fields.get(sep + 1)?.to_string(),
            super_options: fields.get(sep + 3).unwrap_or(&"").to_string(),
        })
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A memory cgroup created for one run and removed when dropped.
#[derive(Debug)]
pub struct MemoryCgroup {
    dir: PathBuf,
    version: Version,
    limit: u64,
}

impl MemoryCgroup {
    /// Creates `npyflow-bench-<pid>-<n>` with a `limit`-byte memory limit in
    /// this machine's memory hierarchy ([`Hierarchy::detect`]).
    ///
    /// # Errors
    /// As [`Hierarchy::detect`] and [`Hierarchy::create`].
    pub fn create(limit: u64) -> Result<MemoryCgroup> {
        Hierarchy::detect()?.create("npyflow-bench", limit)
    }

    /// The cgroup's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The cgroup's name as `/proc/<pid>/cgroup` shows its last component.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// v1 or v2.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The limit set at creation, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Moves process `pid` into the cgroup.
    ///
    /// # Errors
    /// The kernel refuses (the process exited, no permission).
    pub fn add(&self, pid: u32) -> Result<()> {
        let path = self.dir.join("cgroup.procs");
        std::fs::write(&path, pid.to_string()).map_err(|e| Error::io(&path, e))
    }

    /// A command that runs `program` inside this cgroup: `sh` moves itself
    /// in, then `exec`s the program under the same process id, so not a page
    /// the program touches is charged elsewhere. If the move fails, `sh`
    /// exits with status 2 and the program never runs.
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0" || exit 2; exec "$@""#)
            .arg(self.dir.join("cgroup.procs"))
            .arg(program.as_ref());
        cmd
    }

    /// The processes in the cgroup.
    ///
    /// # Errors
    /// `cgroup.procs` cannot be read.
    pub fn procs(&self) -> Result<Vec<u32>> {
        let path = self.dir.join("cgroup.procs");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        text.split_whitespace()
            .map(|p| {
                p.parse().map_err(|_| {
                    Error::from(ErrorKind::BadValue {
                        path: path.clone(),
                        value: p.to_string(),
                    })
                })
            })
            .collect()
    }

    /// The limit the kernel holds (`None`: unlimited), rounded down to pages.
    ///
    /// # Errors
    /// The limit file cannot be read or holds no number.
    pub fn read_limit(&self) -> Result<Option<u64>> {
        let path = self.dir.join(match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        });
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        parse_limit(&text).ok_or_else(|| {
            ErrorKind::BadValue {
                path,
                value: text.trim().to_string(),
            }
            .into()
        })
    }

    /// The most memory the cgroup was charged at once, in bytes
    /// (`memory.max_usage_in_bytes` in v1, `memory.peak` in v2); where a v2
    /// kernel predates `memory.peak` (5.19), the current usage.
    pub fn peak_bytes(&self) -> Option<u64> {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).ok();
        let text = match self.version {
            Version::V1 => read("memory.max_usage_in_bytes")?,
            Version::V2 => read("memory.peak").or_else(|| read("memory.current"))?,
        };
        text.trim().parse().ok()
    }

    /// Processes the OOM killer killed in this cgroup (`oom_kill` of
    /// `memory.oom_control` in v1, of `memory.events` in v2).
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        keyed(&text, "oom_kill")
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Only an empty cgroup can be removed, and a process that has just
        // exited leaves it a moment later: retry while the kernel says busy.
        // Cached pages it was charged for are moved to the parent.
        for _ in 0..40 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => {
                    log::warn!("could not remove memory cgroup {}: {e}", self.dir.display());
                    return;
                }
            }
        }
        log::warn!(
            "could not remove memory cgroup {}: still busy",
            self.dir.display()
        );
    }
}

/// A limit file's value: `Some(None)` for unlimited (`max` in v2; in v1 the
/// largest page-aligned value, which is how "no limit" reads back), or
/// `None` when it is no limit at all.
pub fn parse_limit(text: &str) -> Option<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        return Some(None);
    }
    let v: u64 = t.parse().ok()?;
    // v1 reports "unlimited" as PAGE_COUNTER_MAX pages in bytes, just below
    // 2^63 (9223372036854771712 with 4 KiB pages).
    Some(if v >= 1 << 62 { None } else { Some(v) })
}

/// The value of `key` in a flat-keyed file (`oom_kill 3` lines).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's layout: v1 controllers, a v2 tree in hybrid mode.
    const HYBRID: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
";

    /// A systemd machine with only the unified hierarchy.
    const UNIFIED: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn fake_root(controllers: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let cg = root.path().join("sys/fs/cgroup");
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(cg.join("cgroup.controllers"), controllers).unwrap();
        root
    }

    #[test]
    fn v1_memory_hierarchy_wins_in_the_hybrid_layout() {
        // Even with a v2 tree claiming memory, v1's memory mount is where the controller is.
        let root = fake_root("cpu io memory pids\n");
        let h = Hierarchy::from_mountinfo(HYBRID, root.path()).unwrap();
        assert_eq!(h.version, Version::V1);
        assert_eq!(h.root, root.path().join("sys/fs/cgroup/memory"));
        let live = Hierarchy::from_mountinfo(HYBRID, Path::new("/")).unwrap();
        assert_eq!(live.root, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn v2_is_found_when_its_root_offers_memory() {
        let root = fake_root("cpuset cpu io memory hugetlb pids rdma misc\n");
        let h = Hierarchy::from_mountinfo(UNIFIED, root.path()).unwrap();
        assert_eq!(h.version, Version::V2);
        assert_eq!(h.root, root.path().join("sys/fs/cgroup"));
    }

    #[test]
    fn no_memory_anywhere_is_an_error_that_says_so() {
        let root = fake_root("cpu io pids\n");
        let e = Hierarchy::from_mountinfo(UNIFIED, root.path()).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::NoMemoryController), "{e}");
        assert!(e.is_unsupported_here());
        let e = Hierarchy::from_mountinfo("", root.path()).unwrap_err();
        assert!(e.to_string().contains("no memory cgroup controller"), "{e}");
    }

    #[test]
    fn mount_points_are_unescaped_and_optional_fields_skipped() {
        let line =
            "40 25 0:40 / /mnt/cg\\040v1 rw shared:1 master:2 - cgroup none rw,nosuid,memory";
        let m = Mount::parse(line).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt/cg v1"));
        assert_eq!(m.fs_type, "cgroup");
        assert_eq!(m.super_options, "rw,nosuid,memory");
        let h = Hierarchy::from_mountinfo(line, Path::new("/")).unwrap();
        assert_eq!(h.root, PathBuf::from("/mnt/cg v1"));
        assert!(Mount::parse("garbage without separator").is_none());
        assert_eq!(unescape("a\\011b\\134c\\9"), "a\tb\\c\\9");
    }

    #[test]
    fn limits_parse_in_both_versions() {
        assert_eq!(parse_limit("max\n"), Some(None));
        assert_eq!(parse_limit("9223372036854771712\n"), Some(None));
        assert_eq!(parse_limit("67108864\n"), Some(Some(64 << 20)));
        assert_eq!(parse_limit("0"), Some(Some(0)));
        assert_eq!(parse_limit("lots"), None);
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn keyed_files_parse() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(v1, "oom_kill"), Some(3));
        assert_eq!(keyed(v1, "under_oom"), Some(0));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(v2, "oom_kill"), Some(1));
        assert_eq!(keyed(v2, "oom"), Some(2));
        assert_eq!(keyed(v2, "missing"), None);
    }

    #[test]
    fn a_v2_cgroup_is_laid_out_in_a_plain_folder() {
        // A plain folder stands in for the cgroup file system: what gets
        // written where, without root.
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "cpu memory\n").unwrap();
        let h = Hierarchy {
            version: Version::V2,
            root: root.path().to_path_buf(),
        };
        let cg = h.create("unit", 48 << 20).unwrap();
        assert!(cg
            .name()
            .starts_with(&format!("unit-{}-", std::process::id())));
        assert_eq!(
            std::fs::read_to_string(cg.path().join("memory.max")).unwrap(),
            (48u64 << 20).to_string()
        );
        assert_eq!(
            std::fs::read_to_string(cg.path().join("memory.swap.max")).unwrap(),
            "0"
        );
        assert_eq!(cg.read_limit().unwrap(), Some(48 << 20));
        std::fs::write(cg.path().join("memory.peak"), "1234\n").unwrap();
        assert_eq!(cg.peak_bytes(), Some(1234));
        std::fs::write(cg.path().join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        assert_eq!(cg.oom_kills(), Some(1));
        cg.add(42).unwrap();
        assert_eq!(cg.procs().unwrap(), vec![42]);
        // A second cgroup of the same name gets its own folder.
        let other = h.create("unit", 1).unwrap();
        assert_ne!(other.path(), cg.path());
    }

    #[test]
    fn a_v2_root_without_memory_for_children_is_enabled_first() {
        let root = tempfile::tempdir().unwrap();
        let control = root.path().join("cgroup.subtree_control");
        std::fs::write(&control, "cpu\n").unwrap();
        let h = Hierarchy {
            version: Version::V2,
            root: root.path().to_path_buf(),
        };
        let _cg = h.create("unit", 1 << 20).unwrap();
        // A plain file keeps what was written; the kernel would merge it.
        assert_eq!(std::fs::read_to_string(&control).unwrap(), "+memory");
    }

    #[test]
    fn a_v1_cgroup_writes_its_limit_file() {
        let root = tempfile::tempdir().unwrap();
        let h = Hierarchy {
            version: Version::V1,
            root: root.path().to_path_buf(),
        };
        let cg = h.create("unit", 32 << 20).unwrap();
        assert_eq!(cg.read_limit().unwrap(), Some(32 << 20));
        std::fs::write(cg.path().join("memory.max_usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(
            cg.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert_eq!(cg.peak_bytes(), Some(4096));
        assert_eq!(cg.oom_kills(), Some(0));
        std::fs::write(cg.path().join("memory.limit_in_bytes"), "lots").unwrap();
        let e = cg.read_limit().unwrap_err();
        assert!(e.to_string().contains("\"lots\""), "{e}");
    }
}
