//! How many bytes the kernel reads for one read-ahead hint on a file.
//!
//! Linux serves a `WILLNEED` hint (`posix_fadvise`, `madvise`,
//! `readahead(2)`) with at most the larger of the device's `read_ahead_kb`
//! and `max_sectors_kb` and silently drops the rest of the range
//! (`force_page_cache_ra` in `mm/readahead.c`). On a VM's virtio disk that
//! is 8 MiB; on a laptop's NVMe drive with Linux's default read-ahead and
//! on a loop device it can be 128 KiB–1.25 MiB, so a hint for a 2 MiB piece
//! came in partly read and the rest was faulted in page by page (block
//! order on a RAM-backed loop device with `read_ahead_kb` 128: 100k → 332k
//! samples/s once hints were split at its 1.25 MiB). The limit is read
//! once per device from sysfs.

use std::fs::File;
use std::sync::Mutex;

/// The piece size when the device cannot be found (a file system without a
/// block device of its own, no sysfs): Linux's default read-ahead, which
/// every device honours.
const FALLBACK: u64 = 128 << 10;

/// Never larger than this: the kernel reads a hint in 2 MiB chunks anyway,
/// and a smaller piece keeps one hint from holding the device's queue.
const MAX_PIECE: u64 = 2 << 20;

/// The largest `WILLNEED` range the kernel reads whole for `file`, in
/// bytes: at least a page, at most 2 MiB.
pub(crate) fn hint_limit(file: &File) -> u64 {
    let Some(dev) = device_number(file) else {
        return FALLBACK;
    };
    static KNOWN: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, limit)) = known.iter().find(|(d, _)| *d == dev) {
        return limit;
    }
    let limit = queue_limit(dev)
        .unwrap_or(FALLBACK)
        .clamp(super::page_size() as u64, MAX_PIECE);
    known.push((dev, limit));
    limit
}

/// `st_dev` of the file system holding `file`.
fn device_number(file: &File) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

/// max(`read_ahead_kb`, `max_sectors_kb`) of device `dev`, in bytes; a
/// partition's queue settings live in its parent disk's folder.
#[cfg(target_os = "linux")]
fn queue_limit(dev: u64) -> Option<u64> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        // tmpfs, overlay, btrfs: no device of their own to ask.
        return None;
    }
    let base = std::path::PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let kb = |name: &str| -> Option<u64> {
        [base.join("queue"), base.join("../queue")]
            .iter()
            .find_map(|q| std::fs::read_to_string(q.join(name)).ok())
            .and_then(|s| s.trim().parse().ok())
    };
    let most = kb("read_ahead_kb").max(kb("max_sectors_kb"))?;
    (most > 0).then_some(most << 10)
}

#[cfg(not(target_os = "linux"))]
fn queue_limit(_dev: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_limit_is_within_its_bounds_and_cached() {
        let f = tempfile::tempfile().unwrap();
        let limit = hint_limit(&f);
        assert!((page_size_u64()..=MAX_PIECE).contains(&limit), "{limit}");
        assert_eq!(hint_limit(&f), limit);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_block_device_reports_its_queue() {
        // The root file system of any Linux machine with sysfs sits on a
        // block device (or on an overlay/tmpfs, major 0, which has none).
        let root = std::fs::metadata("/").unwrap();
        let dev = std::os::unix::fs::MetadataExt::dev(&root);
        let sysfs = std::path::Path::new("/sys/dev/block");
        match queue_limit(dev) {
            Some(bytes) => assert!(bytes >= 4096 && bytes % 1024 == 0, "{bytes}"),
            None => assert!(libc::major(dev) == 0 || !sysfs.exists()),
        }
    }

    fn page_size_u64() -> u64 {
        super::super::page_size() as u64
    }
}
