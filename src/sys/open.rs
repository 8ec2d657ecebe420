//! Opening an input file without ever blocking in `open`.
//!
//! A plain `open(O_RDONLY)` of a FIFO waits for a writer, possibly forever,
//! and a check of the path's type before opening races with whoever swaps
//! the path. Opening with `O_NONBLOCK` returns at once for every file type;
//! the caller then checks the type of what it actually opened (`fstat`) and
//! refuses anything but a regular file or a folder. For a regular file the
//! flag is cleared again, so the descriptor behaves as a plain open's would.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` read-only without blocking on FIFOs or devices. The
/// returned file may be of any type: check its metadata before reading.
pub(crate) fn open_nonblocking(path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    }
    #[cfg(not(unix))]
    {
        File::open(path)
    }
}

/// Clears `O_NONBLOCK` on a file opened by [`open_nonblocking`] (a no-op
/// off Unix). Regular files ignore the flag on Linux, but other systems
/// and later `fcntl` users need not.
pub(crate) fn clear_nonblocking(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is a descriptor `file` owns and keeps open for the
        // duration of both calls; F_GETFL / F_SETFL only read and set its
        // status flags and touch no memory.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK != 0 {
            // SAFETY: as above.
            let r = unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// The alignment [`reopen_direct`]'s reads need, of the buffer's address,
/// the file offset and the length: the largest logical block size of
/// common devices (most take 512; 4096 suits both).
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// A second, independent descriptor of the same open file that reads with
/// `O_DIRECT`: straight from the device into the caller's buffer, past the
/// page cache (no copy, nothing cached). Opened through `/proc/self/fd`,
/// so it is the inode already open even if the path has been replaced
/// since (checked). Reads must be aligned to [`DIRECT_ALIGN`].
///
/// # Errors
/// `Unsupported` off Linux; the file system's refusal of `O_DIRECT`
/// (tmpfs before Linux 6.6, some FUSE and network file systems); `/proc`
/// not mounted.
pub(crate) fn reopen_direct(file: &File) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let (a, b) = (file.metadata()?, direct.metadata()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(io::Error::other("/proc/self/fd named another file"));
        }
        Ok(direct)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_opens_at_once_and_the_flag_clears() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.npy");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Would block forever without O_NONBLOCK: no writer ever comes.
        let f = open_nonblocking(&fifo).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &f.metadata().unwrap().file_type()
        ));
        let plain = dir.path().join("y");
        std::fs::write(&plain, b"abc").unwrap();
        let f = open_nonblocking(&plain).unwrap();
        clear_nonblocking(&f).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: `f` owns the descriptor; F_GETFL reads its flags only.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
    }
}
