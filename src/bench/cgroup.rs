//! A temporary memory cgroup for "dataset larger than RAM" measurements on
//! any machine: page cache a process faults in is charged to its cgroup, so
//! a limit below the file size forces the kernel to evict as it would on a
//! small laptop.

use std::io;
use std::path::{Path, PathBuf};

/// A memory cgroup created for one benchmark run and removed when dropped.
#[derive(Debug)]
pub struct MemoryCgroup {
    dir: PathBuf,
    limit: u64,
}

const V1_ROOT: &str = "/sys/fs/cgroup/memory";
const V2_ROOT: &str = "/sys/fs/cgroup";

impl MemoryCgroup {
    /// Creates `npyflow-bench-<pid>` with a `limit`-byte memory limit, under
    /// the cgroup v1 memory hierarchy or else the v2 unified one. The error
    /// is a sentence saying why not (not root, no memory controller...).
    pub fn create(limit: u64) -> Result<MemoryCgroup, String> {
        let name = format!("npyflow-bench-{}", std::process::id());
        let v1 = Path::new(V1_ROOT);
        let v2_has_memory =
            std::fs::read_to_string(Path::new(V2_ROOT).join("cgroup.subtree_control"))
                .map(|s| s.split_whitespace().any(|c| c == "memory"))
                .unwrap_or(false);
        let (dir, limit_file) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join(&name), "memory.limit_in_bytes")
        } else if v2_has_memory {
            (Path::new(V2_ROOT).join(&name), "memory.max")
        } else {
            return Err(
                "no memory cgroup controller is available (neither v1 at /sys/fs/cgroup/memory \
                        nor v2 with +memory in /sys/fs/cgroup)"
                    .to_string(),
            );
        };
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => {
                format!(
                    "cannot create memory cgroup {} (run as root to measure under a memory limit)",
                    dir.display()
                )
            }
            _ => format!("cannot create memory cgroup {}: {e}", dir.display()),
        })?;
        let cg = MemoryCgroup { dir, limit };
        std::fs::write(cg.dir.join(limit_file), limit.to_string())
            .map_err(|e| format!("cannot set {} in {}: {e}", limit_file, cg.dir.display()))?;
        Ok(cg)
    }

    /// The cgroup's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Moves process `pid` into the cgroup.
    ///
    /// # Errors
    /// The kernel refuses (the process exited, no permission).
    pub fn add(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Only an empty cgroup can be removed; the child has exited by the
        // time the cgroup goes out of scope, its cached pages are reparented.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            log::warn!("could not remove memory cgroup {}: {e}", self.dir.display());
        }
    }
}
