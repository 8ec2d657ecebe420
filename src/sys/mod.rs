//! The one module with `unsafe`: memory maps and the kernel calls around them
//! (mincore, cachestat, madvise, posix_fadvise, getrusage), and the CPU's
//! software prefetch.
//!
//! Everything here is a thin, documented wrapper; callers elsewhere in the
//! crate stay safe code. The crate denies `unsafe_code` everywhere else.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use memmap2::{Mmap, MmapOptions};

/// Maps `file` read-only in full.
///
/// The crate-level contract ("Safety of memory maps" in the crate docs) is
/// that the file is not truncated or rewritten while mapped; npyflow checks
/// the file's size before each batch and errors out if it shrank, which
/// narrows but cannot close the window (another process may truncate between
/// the check and the read).
pub(crate) fn map_readonly(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process's view; the
    // only undefined behaviour memmap2 documents is concurrent modification
    // of the file, which the crate's documented contract excludes and which
    // `NpyArray::check_unchanged` detects for the common case (truncation).
    unsafe { MmapOptions::new().map(file) }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
    }
}

/// Page-aligned sub-range `[start, end)` of a map covering bytes `offset..offset+len`.
fn page_range(map: &Mmap, offset: usize, len: usize) -> (usize, usize) {
    let page = page_size();
    let start = offset / page * page;
    let end = (offset.saturating_add(len)).min(map.len());
    (start.min(end), end)
}

/// Residency of each page of `map[offset..offset+len]` in the page cache
/// (one bool per page, pages counted from the page containing `offset`).
pub(crate) fn residency(map: &Mmap, offset: usize, len: usize) -> io::Result<Vec<bool>> {
    let (start, end) = page_range(map, offset, len);
    if start >= end {
        return Ok(Vec::new());
    }
    let page = page_size();
    let pages = (end - start).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `map.as_ptr() + start` is page-aligned (maps start on a page
    // boundary and `start` is a multiple of the page size) and the range
    // `start..end` lies inside the live mapping, which `map` keeps alive for
    // the duration of the call; `vec` has one byte per page of that range as
    // mincore requires.
    let rc = unsafe {
        libc::mincore(
            map.as_ptr().add(start) as *mut libc::c_void,
            end - start,
            vec.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec.into_iter().map(|b| b & 1 == 1).collect())
}

/// Pages of `file[offset..offset+len]` in the page cache, and pages in the
/// range, counted by the kernel with `cachestat(2)` (Linux 6.5+): one call
/// walks the cache's index, ten times faster than a `mincore` scan of a
/// large unmapped file, and not limited to pages this process maps.
/// `Ok(None)` where the kernel lacks the call (the caller falls back to
/// `mincore`).
pub(crate) fn cachestat(file: &File, offset: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    if len == 0 {
        return Ok(Some((0, 0)));
    }
    // The generic syscall table number, shared by x86_64 and aarch64 (the
    // libc crate does not export it for every target yet).
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            nr_cache: u64,
            nr_dirty: u64,
            nr_writeback: u64,
            nr_evicted: u64,
            nr_recently_evicted: u64,
        }
        const SYS_CACHESTAT: libc::c_long = 451;
        let page = page_size() as u64;
        let range = Range { off: offset, len };
        let mut stat = Stat::default();
        // SAFETY: cachestat reads `range` and writes one complete `Stat`
        // (the kernel's `struct cachestat_range` / `struct cachestat`
        // layouts: five and two u64s, repr(C)) through pointers to live,
        // properly sized locals; flags must be 0; the descriptor is kept open
        // by `file`.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                file.as_raw_fd(),
                &range as *const Range,
                &mut stat as *mut Stat,
                0u32,
            )
        };
        if rc == 0 {
            let pages = (offset + len).div_ceil(page) - offset / page;
            return Ok(Some((stat.nr_cache.min(pages), pages)));
        }
        let err = io::Error::last_os_error();
        // ENOSYS: older kernel; EPERM: a seccomp filter that does not know it.
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
            return Err(err);
        }
    }
    Ok(None)
}

/// Asks the CPU to start loading every cache line of `bytes` into its
/// caches (a software prefetch: one per 64 bytes from the start of
/// `bytes`), so that memory about to be read arrives while the current work
/// goes on. No-op off x86_64.
#[inline]
pub(crate) fn prefetch_lines(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for k in 0..bytes.len().div_ceil(64) {
        // A plain count rather than `chunks`: this runs for every sample,
        // and the count keeps the loop to an add and a compare per line.
        let line = bytes.as_ptr().wrapping_add(64 * k);
        // SAFETY: a prefetch is only a hint: it never faults, has no
        // architectural effect and does not read the memory into any
        // register; the pointer is inside the live slice anyway (64·k is
        // below its length). SSE (which the intrinsic needs) is part of
        // the x86_64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Kernel read-ahead / caching hints for a file range (posix_fadvise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileAdvice {
    /// Start reading the range into the cache now.
    WillNeed,
    /// Drop the range's clean pages from the cache.
    DontNeed,
    /// Expect sequential access (larger read-ahead).
    Sequential,
    /// Expect random access (no read-ahead).
    Random,
    /// The kernel's default read-ahead.
    Normal,
}

/// posix_fadvise on `file[offset..offset+len]` (`len == 0` means to the end).
pub(crate) fn fadvise(file: &File, offset: u64, len: u64, advice: FileAdvice) -> io::Result<()> {
    let adv = match advice {
        FileAdvice::WillNeed => libc::POSIX_FADV_WILLNEED,
        FileAdvice::DontNeed => libc::POSIX_FADV_DONTNEED,
        FileAdvice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
        FileAdvice::Random => libc::POSIX_FADV_RANDOM,
        FileAdvice::Normal => libc::POSIX_FADV_NORMAL,
    };
    let off = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: posix_fadvise only reads its scalar arguments and the open
    // descriptor that `file` keeps alive; it never touches our memory.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), off, len, adv) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Unmaps this process's pages of `map[offset..offset+len]` (MADV_DONTNEED) so
/// that a following `fadvise(DontNeed)` can evict them from the page cache.
/// The data stays readable: the next access faults it back in from the file.
pub(crate) fn drop_mapped(map: &Mmap, offset: usize, len: usize) -> io::Result<()> {
    let (start, end) = page_range(map, offset, len);
    if start >= end {
        return Ok(());
    }
    // SAFETY: the map is a read-only shared file mapping, so MADV_DONTNEED
    // only drops our page-table entries; later reads refault the same file
    // contents, no data is lost and no reference into the map is invalidated.
    // The range is page-aligned at its start and inside the mapping.
    unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) }
}

/// Major page faults of this process so far (getrusage).
pub(crate) fn major_faults() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer we pass,
    // which points to properly sized, writable, zero-initialised memory.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage returned 0, so it fully initialised `usage`
    // (and the zeroed start makes every bit pattern a valid rusage anyway).
    let usage = unsafe { usage.assume_init() };
    usage.ru_majflt.max(0) as u64
}
