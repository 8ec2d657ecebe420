//! The block device under a file, as the kernel's read-ahead sees it.
//!
//! Results of a page-cache benchmark mean little without the device: the
//! kernel trims every read-ahead and `WILLNEED` hint to the disk's
//! `read_ahead_kb` and splits requests at `max_sectors_kb`, and those differ
//! by two orders of magnitude between a VM's virtio disk (8 MiB read-ahead)
//! and a laptop's NVMe drive (128 KiB by default). The file's `st_dev` leads
//! to `/sys/dev/block/MAJ:MIN`; a partition's queue settings live in its
//! parent disk's folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The device a file lives on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// `MAJ:MIN` of the file system (`st_dev`).
    pub dev: String,
    /// The file system type (`ext4`, `tmpfs`...), from `/proc/self/mountinfo`.
    pub fs_type: Option<String>,
    /// The block device, when the file system has one.
    pub block: Option<BlockDevice>,
}

/// A block device's queue settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// The disk (`vda`, `nvme0n1`, `loop3`...).
    pub name: String,
    /// The partition of the disk the file is on (`sda1`), if any.
    pub partition: Option<String>,
    /// `MAJ:MIN` of the disk or partition.
    pub dev: String,
    /// `queue/rotational`: a spinning disk (virtio disks often claim to be one).
    pub rotational: Option<bool>,
    /// `queue/read_ahead_kb`: the most the kernel reads ahead, per hint or fault.
    pub read_ahead_kb: Option<u64>,
    /// `queue/max_sectors_kb`: the largest request sent to the device.
    pub max_sectors_kb: Option<u64>,
    /// For a loop device, the file behind it (`loop/backing_file`).
    pub backing_file: Option<PathBuf>,
}

impl Device {
    /// The device under `path`.
    ///
    /// # Errors
    /// `path` cannot be stat'ed. Missing sysfs or mountinfo entries leave
    /// fields empty instead.
    pub fn of(path: &Path) -> Result<Device> {
        let (major, minor) = dev_of(path)?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Ok(Device::resolve(
            Path::new("/sys"),
            &mountinfo,
            major,
            minor,
            &|source| dev_of(source).ok(),
        ))
    }

    /// The device `major:minor` as `sysfs` (a folder laid out like `/sys`)
    /// and `mountinfo` describe it. A file system without a device number
    /// of its own (btrfs, and every tmpfs or overlay) has major 0; for one
    /// mounted from a `/dev` node, the node's device (found with
    /// `dev_of_source`) is the disk that serves its reads.
    pub fn resolve(
        sysfs: &Path,
        mountinfo: &str,
        major: u32,
        minor: u32,
        dev_of_source: &dyn Fn(&Path) -> Option<(u32, u32)>,
    ) -> Device {
        let dev = format!("{major}:{minor}");
        let mount = mountinfo.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            if f.get(2) != Some(&dev.as_str()) {
                return None;
            }
            Some((f.get(sep + 1)?.to_string(), f.get(sep + 2)?.to_string()))
        });
        let fs_type = mount.as_ref().map(|m| m.0.clone());
        let block = if major != 0 {
            BlockDevice::resolve(sysfs, major, minor)
        } else {
            mount
                .as_ref()
                .filter(|(_, source)| source.starts_with("/dev/"))
                .and_then(|(_, source)| dev_of_source(Path::new(source)))
                .and_then(|(ma, mi)| BlockDevice::resolve(sysfs, ma, mi))
        };
        Device {
            dev,
            fs_type,
            block,
        }
    }

    /// One line for people: `vda (254:0): read_ahead_kb 8192, max_sectors_kb 1280, rotational`.
    pub fn describe(&self) -> String {
        let fs = self.fs_type.as_deref().unwrap_or("unknown file system");
        let Some(b) = &self.block else {
            return format!("no block device ({fs}, {})", self.dev);
        };
        let mut s = match &b.partition {
            Some(p) => format!("{p} on {} ({}, {fs})", b.name, b.dev),
            None => format!("{} ({}, {fs})", b.name, b.dev),
        };
        let kb = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        s += &format!(
            ": read_ahead_kb {}, max_sectors_kb {}",
            kb(b.read_ahead_kb),
            kb(b.max_sectors_kb)
        );
        match b.rotational {
            Some(true) => s += ", rotational",
            Some(false) => s += ", not rotational",
            None => {}
        }
        if let Some(f) = &b.backing_file {
            s += &format!(", backed by {}", f.display());
        }
        s
    }
}

impl BlockDevice {
    /// Reads `sysfs/dev/block/MAJ:MIN` and the queue folder of the disk
    /// (a partition's parent); `None` when the entry does not exist.
    pub fn resolve(sysfs: &Path, major: u32, minor: u32) -> Option<BlockDevice> {
        let dev = format!("{major}:{minor}");
        let dir = sysfs.join("dev/block").join(&dev).canonicalize().ok()?;
        let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let (disk, partition) = if dir.join("partition").exists() {
            (dir.parent()?.to_path_buf(), name_of(&dir))
        } else {
            (dir.clone(), None)
        };
        let queue = disk.join("queue");
        let number = |f: &str| read_trimmed(&queue.join(f))?.parse::<u64>().ok();
        Some(BlockDevice {
            name: name_of(&disk)?,
            partition,
            dev,
            rotational: number("rotational").map(|v| v != 0),
            read_ahead_kb: number("read_ahead_kb"),
            max_sectors_kb: number("max_sectors_kb"),
            backing_file: read_trimmed(&disk.join("loop/backing_file")).map(PathBuf::from),
        })
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The (major, minor) of the file system holding `path`.
#[cfg(unix)]
fn dev_of(path: &Path) -> Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    // A `/dev` node names a device by its rdev; anything else by the
    // device of its file system.
    let dev = if meta.rdev() != 0 && !meta.is_file() && !meta.is_dir() {
        meta.rdev()
    } else {
        meta.dev()
    };
    Ok(split_dev(dev))
}

#[cfg(not(unix))]
fn dev_of(path: &Path) -> Result<(u32, u32)> {
    Err(Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "device numbers are a Unix notion",
        ),
    ))
}

/// Linux's `dev_t` encoding (glibc's `gnu_dev_major` / `gnu_dev_minor`):
/// 12 bits of major and 20 of minor, split across the 64-bit word.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `/sys`: a virtio disk with a partition, a loop device, a zram disk.
    fn fake_sysfs() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let s = root.path();
        let disk = s.join("devices/pci0000:00/virtio1/block/vda");
        let loop0 = s.join("devices/virtual/block/loop0");
        for (dir, ra, max, rot) in [(&disk, "8192", "1280", "1"), (&loop0, "128", "1280", "0")] {
            std::fs::create_dir_all(dir.join("queue")).unwrap();
            std::fs::write(dir.join("queue/read_ahead_kb"), format!("{ra}\n")).unwrap();
            std::fs::write(dir.join("queue/max_sectors_kb"), format!("{max}\n")).unwrap();
            std::fs::write(dir.join("queue/rotational"), format!("{rot}\n")).unwrap();
        }
        std::fs::create_dir_all(disk.join("vda1")).unwrap();
        std::fs::write(disk.join("vda1/partition"), "1\n").unwrap();
        std::fs::create_dir_all(loop0.join("loop")).unwrap();
        std::fs::write(loop0.join("loop/backing_file"), "/dev/shm/x.img\n").unwrap();
        std::fs::create_dir_all(s.join("dev/block")).unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, s.join("dev/block").join(name)).unwrap()
        };
        link("../../devices/pci0000:00/virtio1/block/vda", "254:0");
        link("../../devices/pci0000:00/virtio1/block/vda/vda1", "254:1");
        link("../../devices/virtual/block/loop0", "7:0");
        root
    }

    const MOUNTINFO: &str = "\
27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
40 27 7:0 / /mnt/loop rw,relatime - ext4 /dev/loop0 rw
41 27 0:45 / /home rw,relatime shared:30 - btrfs /dev/vda1 rw,subvol=/home
42 27 0:46 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
";

    #[test]
    fn a_partition_reports_its_disk_queue() {
        let sys = fake_sysfs();
        let d = Device::resolve(sys.path(), MOUNTINFO, 254, 1, &|_| None);
        let b = d.block.as_ref().unwrap();
        assert_eq!(b.name, "vda");
        assert_eq!(b.partition.as_deref(), Some("vda1"));
        assert_eq!(b.dev, "254:1");
        assert_eq!(b.read_ahead_kb, Some(8192));
        assert_eq!(b.max_sectors_kb, Some(1280));
        assert_eq!(b.rotational, Some(true));
        assert_eq!(d.fs_type.as_deref(), Some("ext4"));
        assert_eq!(
            d.describe(),
            "vda1 on vda (254:1, ext4): read_ahead_kb 8192, max_sectors_kb 1280, rotational"
        );
        let whole = BlockDevice::resolve(sys.path(), 254, 0).unwrap();
        assert_eq!((whole.name.as_str(), whole.partition), ("vda", None));
    }

    #[test]
    fn a_loop_device_reports_its_backing_file() {
        let sys = fake_sysfs();
        let d = Device::resolve(sys.path(), MOUNTINFO, 7, 0, &|_| None);
        let b = d.block.unwrap();
        assert_eq!(b.name, "loop0");
        assert_eq!(b.read_ahead_kb, Some(128));
        assert_eq!(b.rotational, Some(false));
        assert_eq!(b.backing_file, Some(PathBuf::from("/dev/shm/x.img")));
    }

    #[test]
    fn anonymous_devices_follow_their_source_or_say_there_is_none() {
        let sys = fake_sysfs();
        // btrfs: st_dev is anonymous; its source /dev/vda1 is the disk.
        let d = Device::resolve(sys.path(), MOUNTINFO, 0, 45, &|p| {
            (p == Path::new("/dev/vda1")).then_some((254, 1))
        });
        assert_eq!(d.fs_type.as_deref(), Some("btrfs"));
        assert_eq!(d.block.unwrap().partition.as_deref(), Some("vda1"));
        let d = Device::resolve(sys.path(), MOUNTINFO, 0, 46, &|_| None);
        assert_eq!(d.block, None);
        assert_eq!(d.describe(), "no block device (tmpfs, 0:46)");
        let d = Device::resolve(sys.path(), "", 9, 9, &|_| None);
        assert_eq!(d.describe(), "no block device (unknown file system, 9:9)");
    }

    #[test]
    fn device_numbers_split_as_glibc_does() {
        assert_eq!(split_dev(0xfe00), (254, 0));
        assert_eq!(split_dev(0x0701), (7, 1));
        assert_eq!(split_dev(0x1_0300), (259, 0));
        // Major 0x1234 and minor 0x56789 spill into the high bits.
        assert_eq!(split_dev(0x1000_5672_3489), (0x1234, 0x56789));
    }

    #[test]
    fn this_machine_s_temp_folder_resolves_to_its_sysfs_entry() {
        let dir = tempfile::tempdir().unwrap();
        let d = Device::of(dir.path()).unwrap();
        if let Some(b) = &d.block {
            // What the kernel says about the same disk, read directly.
            let ra = std::fs::read_to_string(format!("/sys/block/{}/queue/read_ahead_kb", b.name))
                .unwrap();
            assert_eq!(b.read_ahead_kb, Some(ra.trim().parse().unwrap()));
        } else {
            assert!(d.describe().starts_with("no block device"), "{d:?}");
        }
    }
}
