//! Reading runs of rows straight from the device into the process's own
//! buffers (`O_DIRECT`), for passes in file order over a file larger than
//! the page cache could keep ([`crate::cache::outgrown_room`]).
//!
//! Such a pass evicts every page it caches before the next epoch comes back
//! to it, so caching is all cost: pages to allocate, charge to the memory
//! cgroup, copy out of and reclaim. A direct read has the device write into
//! our buffer, and nothing else. Measured on a RAM-backed loop device with
//! 128 KiB read-ahead, 4 GiB under a 1 GiB memory cgroup: `dd bs=2M` read
//! at 0.79 s with 0.11 s of system time direct, 0.97–1.14 s with 0.43 s
//! buffered; the sequential order's epoch took 0.87–0.90 s reading direct,
//! 1.47–1.94 s through the page cache (`dd bs=8M`, buffered: 1.31–1.34 s in
//! the same run).
//!
//! Where the file system refuses `O_DIRECT` (tmpfs before Linux 6.6, some
//! FUSE and network file systems), the same buffers are filled with plain
//! buffered reads.
//!
//! The buffers are anonymous maps of their own, not heap memory: aligned
//! for direct reads as they come, and returned to the system when dropped
//! (a 2 MiB heap block freed on another thread stayed in the allocator's
//! arena, and a 64 MiB memory cgroup's process grew by 15 MiB).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use memmap2::MmapMut;

use crate::npy::NpyArray;
use crate::sys::{self, DIRECT_ALIGN};

/// Rows `rows` of an array, read: row `r` is `row_bytes` bytes at
/// `first + (r - rows.start) * row_bytes` of `buf`.
#[derive(Debug)]
pub(crate) struct Piece {
    buf: MmapMut,
    first: usize,
    rows: Range<usize>,
    row_bytes: usize,
}

impl Piece {
    /// The rows held.
    pub(crate) fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }

    /// Row `row`'s bytes, when this piece holds it.
    pub(crate) fn row(&self, row: usize) -> Option<&[u8]> {
        self.rows.contains(&row).then(|| {
            let at = self.first + (row - self.rows.start) * self.row_bytes;
            &self.buf[at..at + self.row_bytes]
        })
    }

    /// Every row's bytes, in order.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.first..self.first + self.rows.len() * self.row_bytes]
    }

    /// The buffer's capacity in bytes (what the piece holds in memory).
    pub(crate) fn footprint(&self) -> usize {
        self.buf.len()
    }

    /// The buffer, for the next read.
    pub(crate) fn into_buffer(self) -> MmapMut {
        self.buf
    }
}

/// Reads runs of rows of one array, direct where the file system allows.
#[derive(Debug, Default)]
pub(crate) struct RowReader {
    /// The `O_DIRECT` descriptor, opened on the first read (none where the
    /// file system refuses it).
    file: OnceLock<Option<File>>,
    /// A direct read was refused (alignment): buffered reads from then on.
    failed: AtomicBool,
}

impl RowReader {
    /// Reads rows `rows` of `array` (clamped to it) into `buf` when it is
    /// large enough (a previous piece's buffer), else into a new one.
    ///
    /// # Errors
    /// I/O errors (also when no memory can be mapped for the buffer);
    /// `UnexpectedEof` when the file ends before the rows.
    pub(crate) fn read(
        &self,
        array: &NpyArray,
        rows: Range<usize>,
        mut buf: Option<MmapMut>,
    ) -> io::Result<Piece> {
        let rb = array.row_bytes();
        let rows = rows.start.min(array.len())..rows.end.min(array.len());
        let start = array.data_offset() + (rows.start * rb) as u64;
        let len = rows.len() * rb;
        if let Some(direct) = self.direct_file(array) {
            // The aligned span around the rows, into an aligned part of `buf`.
            let a = DIRECT_ALIGN as u64;
            let lo = start / a * a;
            let hi = (start + len as u64).div_ceil(a) * a;
            let span = (hi - lo) as usize;
            let mut aligned = buffer(buf.take(), span)?;
            // Maps are page-aligned; a smaller page than the alignment
            // would leave an offset to skip, which `buffer` left room for.
            let at = aligned.as_ptr().align_offset(DIRECT_ALIGN);
            let skip = (start - lo) as usize;
            match read_full(direct, &mut aligned[at..at + span], lo, skip + len) {
                Ok(()) => {
                    return Ok(Piece {
                        buf: aligned,
                        first: at + skip,
                        rows,
                        row_bytes: rb,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    log::debug!("direct reads of {} refused ({e}): buffered", array.name());
                    self.failed.store(true, Ordering::Relaxed);
                    buf = Some(aligned);
                }
                Err(e) => return Err(e),
            }
        }
        let mut buf = buffer(buf, len)?;
        read_full(array.file(), &mut buf[..len], start, len)?;
        Ok(Piece {
            buf,
            first: 0,
            rows,
            row_bytes: rb,
        })
    }

    /// The `O_DIRECT` descriptor of `array`'s file, while direct reads work.
    fn direct_file(&self, array: &NpyArray) -> Option<&File> {
        if self.failed.load(Ordering::Relaxed) {
            return None;
        }
        self.file
            .get_or_init(|| match sys::reopen_direct(array.file()) {
                Ok(f) => Some(f),
                Err(e) => {
                    log::debug!("no direct reads of {}: {e}", array.name());
                    None
                }
            })
            .as_ref()
    }
}

/// Reads rows `rows` of `array` in runs of `run` rows (the last shorter) and
/// hands each run to `each`, in order: a thread of its own reads the next
/// run while `each` works on the one before (two buffers, reused). Stops
/// at the first error, a read's (with the file's name) or `each`'s.
pub(crate) fn read_runs(
    array: &NpyArray,
    rows: Range<usize>,
    run: usize,
    mut each: impl FnMut(&Piece) -> crate::Result<()>,
) -> crate::Result<()> {
    let run = run.max(1);
    let reader = RowReader::default();
    std::thread::scope(|scope| {
        let (ask, asked) = std::sync::mpsc::channel::<(Range<usize>, Option<MmapMut>)>();
        let (give, given) = std::sync::mpsc::channel();
        let reader = &reader;
        scope.spawn(move || {
            for (rows, buf) in asked {
                if give.send(reader.read(array, rows, buf)).is_err() {
                    break;
                }
            }
        });
        // `ask` is dropped when this closure returns, however it returns,
        // which ends the thread before the scope waits for it.
        let mut next = rows.start;
        let mut request = |buf: Option<MmapMut>| {
            if next < rows.end {
                let _ = ask.send((next..(next + run).min(rows.end), buf));
                next += run;
            }
        };
        request(None);
        request(None);
        for _ in 0..rows.len().div_ceil(run) {
            let piece = given
                .recv()
                .map_err(|_| io::Error::other("the reading thread stopped"))
                .and_then(|read| read)
                .map_err(|e| crate::Error::io(array.path(), e))?;
            each(&piece)?;
            request(Some(piece.into_buffer()));
        }
        Ok(())
    })
}

/// `buf` when it holds `len` bytes past its first aligned one, else a
/// fresh one that does.
fn buffer(buf: Option<MmapMut>, len: usize) -> io::Result<MmapMut> {
    match buf {
        Some(b) if fits(&b, len) => Ok(b),
        _ => fresh_buffer(len),
    }
}

/// Whether `buf` holds `len` bytes past its first aligned one.
pub(crate) fn fits(buf: &MmapMut, len: usize) -> bool {
    buf.len() >= buf.as_ptr().align_offset(DIRECT_ALIGN) + len
}

/// The bytes a buffer needs to take `bytes` of rows wherever in the file
/// they start: the aligned span around them.
pub(crate) fn span_for(bytes: usize) -> usize {
    bytes.saturating_add(2 * DIRECT_ALIGN)
}

/// A new map holding `len` bytes past its first aligned one (never empty:
/// a map cannot be), in huge pages where the kernel has them, its pages
/// faulted in.
///
/// The block order takes its rows from all over a 64 MiB window of these
/// buffers: in 4 KiB pages nearly every row is a TLB miss, and in a virtual
/// machine each miss walks two sets of page tables. Asked for huge pages
/// (`MADV_HUGEPAGE`; the kernel's default, THP "always" with defrag
/// "madvise", gave none to a fresh 16 MiB map here), the block order's cold
/// epoch on a loop device took 1.8–2.1 CPU-seconds instead of 2.6–3.5, and
/// 10–20% less time. Only advice: where there are no huge pages, 4 KiB ones.
pub(crate) fn fresh_buffer(len: usize) -> io::Result<MmapMut> {
    let mut map = MmapMut::map_anon((len + DIRECT_ALIGN).max(1))?;
    #[cfg(target_os = "linux")]
    if map.len() >= HUGE_PAGE {
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    fault_in(&mut map);
    Ok(map)
}

/// Faults in every page of a fresh buffer before the read, half of a
/// large one on a second thread.
///
/// The kernel zeroes each page of a fresh map on its first touch, and a
/// direct read into untouched pages faults them in one by one on the
/// reading thread, then waits for the device: the block order's first
/// windows (eight 16 MiB buffers) took the read-ahead thread a third of a
/// second while a core sat idle (in a virtual machine that hands freed
/// memory back to its host, first touches cost 2–4 ms per MiB). Two
/// threads halve that; the block order's cold epoch on a loop device took
/// 2.95 s instead of 3.51 (medians of 5, `dd` 1.92 s).
fn fault_in(map: &mut [u8]) {
    const PAGE: usize = 4096;
    let fault = |m: &mut [u8]| m.iter_mut().step_by(PAGE).for_each(|b| *b = 0);
    if map.len() < HUGE_PAGE {
        return fault(map);
    }
    let half = map.len() / 2 / PAGE * PAGE;
    let helped = std::thread::scope(|s| {
        let (a, b) = map.split_at_mut(half);
        let helper = std::thread::Builder::new().spawn_scoped(s, move || fault(a));
        fault(b);
        helper.is_ok()
    });
    if !helped {
        // No thread to be had: this one faults the rest too.
        fault(&mut map[..half]);
    }
}

/// The size of a huge page on x86-64 and most arm64 kernels: smaller
/// buffers cannot hold one.
const HUGE_PAGE: usize = 2 << 20;

/// Reads into `buf` from `offset` until `need` bytes are in (at most the
/// whole buffer: [`sys::read_up_to`]); `UnexpectedEof` when the file ends
/// first.
fn read_full(file: &File, buf: &mut [u8], offset: u64, need: usize) -> io::Result<()> {
    if sys::read_up_to(file, buf, offset, need)? < need {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::{write_npy, ElemType};

    /// Rows of 1,000 bytes (never aligned to a block) with distinct bytes.
    fn array(dir: &std::path::Path, rows: usize) -> (NpyArray, Vec<u8>) {
        let data: Vec<u8> = (0..rows * 1000).map(|i| (i * 7 + i / 1000) as u8).collect();
        let path = dir.join("d.npy");
        write_npy(&path, ElemType::U8, &[rows, 1000], &data).unwrap();
        (NpyArray::open(&path).unwrap(), data)
    }

    #[test]
    fn unaligned_runs_read_the_file_bytes_and_buffers_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (x, data) = array(dir.path(), 50);
        let reader = RowReader::default();
        let mut buf = None;
        for rows in [0..1, 3..17, 17..50, 49..50, 10..10, 45..80] {
            let piece = reader.read(&x, rows.clone(), buf).unwrap();
            let want = rows.start.min(50)..rows.end.min(50);
            assert_eq!(piece.rows(), want);
            assert_eq!(piece.bytes(), &data[want.start * 1000..want.end * 1000]);
            for r in want.clone() {
                assert_eq!(piece.row(r).unwrap(), &data[r * 1000..(r + 1) * 1000]);
            }
            assert!(piece.row(want.end).is_none());
            buf = Some(piece.into_buffer());
        }
    }

    #[test]
    fn a_file_that_shrank_is_an_error_not_short_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (x, _) = array(dir.path(), 50);
        let reader = RowReader::default();
        reader.read(&x, 0..1, None).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(x.path())
            .unwrap();
        f.set_len(x.data_offset() + 20 * 1000 + 10).unwrap();
        let e = reader.read(&x, 10..30, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(reader.read(&x, 0..20, None).is_ok());
    }
}
