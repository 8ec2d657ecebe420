//! The one module with `unsafe`: memory maps and the kernel calls around them
//! (mincore, cachestat, madvise, posix_fadvise, getrusage), and the CPU's
//! software prefetch.
//!
//! Everything here is a thin, documented wrapper; callers elsewhere in the
//! crate stay safe code. The crate denies `unsafe_code` everywhere else.
//!
//! Portability: the page-cache calls (mincore, cachestat, posix_fadvise)
//! and the `SIGBUS` handler are Linux's; elsewhere residency is
//! `Unsupported`, advice does nothing and maps are not guarded (open with
//! `SourceKind::Read` where files change). Positioned reads and maps work
//! on every system std and memmap2 support.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

mod device;
mod lock;
mod memory;
mod open;

pub(crate) use device::hint_limit;
pub(crate) use lock::{process_start, try_lock_exclusive};
pub(crate) use memory::cache_room;
pub(crate) use open::{clear_nonblocking, open_nonblocking, reopen_direct, DIRECT_ALIGN};

mod sigbus;
#[allow(unused_imports)]
pub(crate) use sigbus::MapGuard;

/// A read-only map of a whole file, registered with the `SIGBUS` guard
/// ([`sigbus`]) for as long as it lives: a read of a page the file lost
/// (it shrank under the map) reads zeros and sets [`Map::faulted`] instead
/// of killing the process.
pub(crate) struct Map {
    // Declared first so it is dropped first: the range is unregistered
    // before it is unmapped, so a later map at the same address never
    // inherits this one's registration.
    guard: sigbus::MapGuard,
    map: Mmap,
}

impl Map {
    /// Whether a read of this map has faulted on a page the file no longer
    /// has. Once true, stays true.
    pub(crate) fn faulted(&self) -> bool {
        self.guard.faulted()
    }

    /// `madvise` over the whole map (a no-op off Unix).
    pub(crate) fn advise(&self, advice: FileAdvice) -> io::Result<()> {
        #[cfg(unix)]
        {
            use memmap2::Advice;
            let advice = match advice {
                FileAdvice::WillNeed => Advice::WillNeed,
                FileAdvice::Sequential => Advice::Sequential,
                FileAdvice::Random => Advice::Random,
                FileAdvice::Normal => Advice::Normal,
                FileAdvice::DontNeed => return drop_mapped(self, 0, self.len()),
            };
            self.map.advise(advice)
        }
        #[cfg(not(unix))]
        {
            let _ = advice;
            Ok(())
        }
    }

    /// Maps bytes `offset..offset + len` of the map into the process,
    /// reading what is not cached and waiting for it (`MADV_POPULATE_READ`,
    /// Linux 5.14+), so that later reads there take no page fault. A page
    /// the file no longer has is an error here, never a `SIGBUS`. Elsewhere
    /// (older kernels: `EINVAL`) an error the caller may ignore.
    pub(crate) fn populate(&self, offset: usize, len: usize) -> io::Result<()> {
        let (start, end) = page_range(self, offset, len);
        if start >= end {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        return self
            .map
            .advise_range(memmap2::Advice::PopulateRead, start, end - start);
        #[cfg(not(target_os = "linux"))]
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl std::ops::Deref for Map {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("len", &self.map.len())
            .field("faulted", &self.faulted())
            .finish()
    }
}

/// Maps `file` read-only in full.
///
/// A file that shrinks under the map is survived, not prevented: reads of
/// the lost pages return zeros and mark the map faulted, and the readers
/// (`NpyArray::check_unchanged`, after every batch and chunk) turn that into
/// `ErrorKind::FileChanged` before any of those zeros reach a caller.
pub(crate) fn map_readonly(file: &File) -> io::Result<Map> {
    // SAFETY: the map is read-only and private to this process's view.
    // memmap2's documented hazard is the file changing underneath: a
    // shrink turns loads of the lost pages into SIGBUS, which `sigbus`
    // handles for registered maps (a zero page, a recorded fault), and
    // in-place rewrites change the bytes we read, which the readers detect
    // by size and modification time after each batch. No `&mut` to the
    // mapped bytes exists anywhere.
    let map = unsafe { MmapOptions::new().map(file) }?;
    let guard = sigbus::MapGuard::register(map.as_ptr(), map.len());
    Ok(Map { guard, map })
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if v > 0 {
            return v as usize;
        }
    }
    4096
}

/// Reads into `buf` at `offset` of `file` without moving its cursor (so
/// threads can share the descriptor); returns the bytes read, 0 at the end.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, offset);
    // Windows' positioned read moves the cursor, which npyflow never uses.
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, offset);
}

/// [`read_at`] until `buf` is full; `UnexpectedEof` when the file ends first.
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`read_at`] until at least `need` bytes are in (at most `buf.len()`) or
/// the file ends; returns the bytes read. Stopping at `need` matters for
/// `O_DIRECT` descriptors: after a short read at the end of the file the
/// next offset is unaligned, and a read there fails.
pub(crate) fn read_up_to(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    need: usize,
) -> io::Result<usize> {
    let (need, mut done) = (need.min(buf.len()), 0);
    while done < need {
        match read_at(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A number naming an open file while it stays open (its descriptor or
/// handle), to group and order requests by file.
pub(crate) fn file_key(file: &File) -> u64 {
    #[cfg(unix)]
    return std::os::fd::AsRawFd::as_raw_fd(file) as u64;
    #[cfg(windows)]
    return std::os::windows::io::AsRawHandle::as_raw_handle(file) as usize as u64;
}

/// Page-aligned sub-range `[start, end)` of a map covering bytes `offset..offset+len`.
fn page_range(map: &[u8], offset: usize, len: usize) -> (usize, usize) {
    let page = page_size();
    let start = offset / page * page;
    let end = (offset.saturating_add(len)).min(map.len());
    (start.min(end), end)
}

/// Residency of each page of `map[offset..offset+len]` in the page cache
/// (one bool per page, pages counted from the page containing `offset`).
pub(crate) fn residency(map: &Map, offset: usize, len: usize) -> io::Result<Vec<bool>> {
    let (start, end) = page_range(map, offset, len);
    if start >= end {
        return Ok(Vec::new());
    }
    #[cfg(target_os = "linux")]
    {
        let pages = (end - start).div_ceil(page_size());
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
    #[cfg(not(target_os = "linux"))]
    Err(io::ErrorKind::Unsupported.into())
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
                std::os::fd::AsRawFd::as_raw_fd(file),
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
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    let _ = (file, offset);
    Ok(None)
}

/// How much of a row to prefetch ahead of its read ([`prefetch_lines`]):
/// its first 4 KiB. Past them the hardware prefetcher has seen the stream,
/// and a whole 150 KB row would only evict the current one. Issued all at
/// once they stall the core (its miss buffers fill): the reads spread them
/// over the row before (`npy::cast::Pace`).
pub(crate) const PREFETCH_HEAD: usize = 4096;

/// The first [`PREFETCH_HEAD`] bytes of `row`.
pub(crate) fn prefetch_head(row: &[u8]) -> &[u8] {
    &row[..row.len().min(PREFETCH_HEAD)]
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
    #[cfg(target_os = "linux")]
    {
        let adv = match advice {
            FileAdvice::WillNeed => libc::POSIX_FADV_WILLNEED,
            FileAdvice::DontNeed => libc::POSIX_FADV_DONTNEED,
            FileAdvice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
            FileAdvice::Random => libc::POSIX_FADV_RANDOM,
            FileAdvice::Normal => libc::POSIX_FADV_NORMAL,
        };
        let off =
            i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: posix_fadvise only reads its scalar arguments and the open
        // descriptor that `file` keeps alive; it never touches our memory.
        let rc =
            unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(file), off, len, adv) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    // Elsewhere the cache is the system's business: advice is dropped.
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len, advice);
    Ok(())
}

/// Unmaps this process's pages of `map[offset..offset+len]` (MADV_DONTNEED) so
/// that a following `fadvise(DontNeed)` can evict them from the page cache.
/// The data stays readable: the next access faults it back in from the file.
pub(crate) fn drop_mapped(map: &Map, offset: usize, len: usize) -> io::Result<()> {
    let (start, end) = page_range(map, offset, len);
    if start >= end {
        return Ok(());
    }
    // SAFETY: the map is a read-only shared file mapping, so MADV_DONTNEED
    // only drops our page-table entries; later reads refault the same file
    // contents, no data is lost and no reference into the map is invalidated.
    // The range is page-aligned at its start and inside the mapping.
    #[cfg(unix)]
    return unsafe {
        map.map
            .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
    };
    #[cfg(not(unix))]
    Ok(())
}

/// Major page faults of this process so far (getrusage).
pub(crate) fn major_faults() -> u64 {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a complete `rusage` into the pointer we
        // pass, which points to properly sized, writable, zeroed memory.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return 0;
        }
        // SAFETY: getrusage returned 0, so it fully initialised `usage`
        // (and the zeroed start makes every bit pattern a valid rusage anyway).
        let usage = unsafe { usage.assume_init() };
        usage.ru_majflt.max(0) as u64
    }
    #[cfg(not(unix))]
    0
}
