//! Stretches of rows of a cold file read ahead into the process's own
//! buffers, for a pass in file order (the sequential order) or by windows
//! of whole blocks (the block order) over a file larger than the page
//! cache could keep.
//!
//! Reading such a file through its map took the bytes through the page
//! cache twice: the read-ahead thread read each stretch with `pread` (the
//! one way a device with a small read-ahead streams at its speed) into a
//! buffer it threw away, and the assembling threads then faulted the same
//! pages into the map. Here the read-ahead thread reads each stretch once,
//! past the page cache ([`RowReader`]), into a buffer kept for the
//! assembling threads, which convert the rows from there: no page to
//! allocate, charge, reclaim or map, no copy but the device's.
//!
//! Nothing here decides what a batch contains: a row the stash does not
//! hold (not asked for, dropped, or its read failed) is read through the
//! array as before.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use crate::cache::direct::{self, Piece, RowReader};
use crate::npy::NpyArray;

/// How long an assembling thread waits for a stretch being read before it
/// reads the rows itself (a read-ahead thread that stopped serving).
const PATIENCE: Duration = Duration::from_secs(10);

/// How long a read waits for a batch to let go of a buffer before it maps
/// a fresh one past the stash's working size (a batch holds one for a
/// batch's time: well under a millisecond of 32×32 images).
const SPARE_PATIENCE: Duration = Duration::from_millis(100);

/// A stretch asked for: being read (`piece` none) or read.
#[derive(Debug)]
struct Stretch {
    rows: Range<usize>,
    piece: Option<Arc<Piece>>,
    /// Rows still to be taken (a stretch asked for twice counts twice).
    uses: usize,
}

#[derive(Debug, Default)]
struct Held {
    stretches: VecDeque<Stretch>,
    /// Bytes of the stretches' buffers.
    bytes: usize,
    /// The pieces of dropped stretches, kept for their buffers (a fresh
    /// 8 MiB buffer is 2,048 page faults, and a direct read pins its pages
    /// anew), with the stretches within the cap. A batch may still be
    /// reading one: its buffer is reused once nobody else holds it.
    retired: Vec<Arc<Piece>>,
    retired_bytes: usize,
    /// Fresh buffers mapped ahead of the reads ([`Stash::prepare`]).
    prepared: Vec<MmapMut>,
    /// Buffers the preparing thread has yet to start on, and whether it
    /// is making one now.
    unstarted: usize,
    in_progress: bool,
    /// [`Stash::prepare`] was called: it starts its thread once.
    preparing_asked: bool,
}

impl Held {
    /// Removes stretch `k`, keeping its piece for reuse while the stretches
    /// and the kept pieces fit in `cap`.
    fn remove(&mut self, k: usize, cap: usize) {
        let Some(s) = self.stretches.remove(k) else {
            return;
        };
        if let Some(piece) = s.piece {
            self.bytes -= piece.footprint();
            if self.bytes + self.retired_bytes + piece.footprint() <= cap {
                self.retired_bytes += piece.footprint();
                self.retired.push(piece);
            }
        }
    }

    /// The buffer of a kept piece nobody reads any more, if any.
    fn take_spare(&mut self) -> Option<MmapMut> {
        let k = self
            .retired
            .iter()
            .position(|p| Arc::strong_count(p) == 1)?;
        let piece = self.retired.swap_remove(k);
        self.retired_bytes -= piece.footprint();
        // Only this list held it, and only under the lock.
        Arc::try_unwrap(piece).ok().map(Piece::into_buffer)
    }
}

/// The stretches of one array read ahead, shared by the read-ahead thread
/// (which fills them) and the assembling threads (which take rows from
/// them).
#[derive(Debug)]
pub(crate) struct Stash {
    held: Mutex<Held>,
    filled: Condvar,
    /// Signalled when a batch lets go of stretches (a buffer may be free).
    released: Condvar,
    reader: RowReader,
    /// Most bytes of stretches held at once: more than the reader keeps
    /// ahead and the batches hold, so it only bounds a pass whose rows are
    /// asked for but never taken (a stop mid-epoch, a padded plan),
    /// dropping the oldest stretches first.
    cap: usize,
    /// Bytes of buffers mapped before a read waits for one to reuse
    /// ([`Stash::mapping_at_most`]); the cap by default.
    working: usize,
    /// Buffers [`Stash::prepare`] maps ahead: the working size's pieces
    /// ([`Stash::mapping_at_most`]; none by default).
    pieces: usize,
}

/// The stretches covering a batch's rows, held while the batch is built.
#[derive(Debug, Default)]
pub(crate) struct View {
    pieces: Vec<Arc<Piece>>,
}

impl View {
    /// Row `row`'s bytes, when the stash had them.
    pub(crate) fn row(&self, row: usize) -> Option<&[u8]> {
        self.pieces.iter().find_map(|p| p.row(row))
    }
}

impl Stash {
    /// An empty stash holding at most `cap` bytes.
    pub(crate) fn with_cap(cap: usize) -> Stash {
        Stash {
            held: Mutex::default(),
            filled: Condvar::new(),
            released: Condvar::new(),
            reader: RowReader::default(),
            cap,
            working: cap,
            pieces: 0,
        }
    }

    /// Lets the stash map `pieces` buffers holding `bytes` of rows between
    /// them (and the cap at most) before a read waits for a batch to let
    /// go of one: what a pass holds at once when it does not lag (the
    /// block order: the window being taken and the one being read ahead),
    /// below the cap, which also leaves room for a batch still finishing
    /// the window before.
    pub(crate) fn mapping_at_most(mut self, pieces: usize, bytes: usize) -> Stash {
        // A piece's buffer holds its rows' aligned span: a little more
        // than its rows.
        let slack = pieces.saturating_mul(direct::span_for(0));
        self.working = bytes.saturating_add(slack).min(self.cap);
        self.pieces = pieces;
        self
    }

    /// Maps the pass's buffers ahead of its reads, on a thread of its own:
    /// as many as [`Stash::mapping_at_most`] let it map, each large enough
    /// for `bytes` of rows, handed to the reads as they are made.
    ///
    /// A fresh buffer's pages are faulted in before a read (see
    /// [`direct::fresh_buffer`]), and the read-ahead thread made them one
    /// at a time between its reads: the device idled while it faulted and
    /// a core idled while the device read. The first two windows of the
    /// block order (eight 16 MiB buffers) took a third of a second that way
    /// on a loop device; here the faults of the next buffer overlap the
    /// read into the last. Once per stash; a failure to map leaves the
    /// reads to map their own.
    pub(crate) fn prepare(self: &Arc<Self>, bytes: usize) {
        {
            let mut held = self.lock();
            if held.preparing_asked || self.pieces == 0 {
                return;
            }
            held.preparing_asked = true;
            held.unstarted = self.pieces;
        }
        let stash = Arc::downgrade(self);
        let len = direct::span_for(bytes);
        let spawned = std::thread::Builder::new()
            .name("npyflow-buffers".into())
            .spawn(move || {
                // Ends when every buffer is made or claimed, or the stash
                // is gone (the iterator dropped).
                while let Some(stash) = stash.upgrade() {
                    {
                        let mut held = stash.lock();
                        if held.unstarted == 0 {
                            return;
                        }
                        held.unstarted -= 1;
                        held.in_progress = true;
                    }
                    let made = direct::fresh_buffer(len);
                    let mut held = stash.lock();
                    held.in_progress = false;
                    match made {
                        Ok(buf) => held.prepared.push(buf),
                        Err(e) => {
                            log::debug!("no buffer mapped ahead of the reads: {e}");
                            held.unstarted = 0;
                        }
                    }
                    drop(held);
                    stash.released.notify_all();
                }
            });
        if spawned.is_err() {
            self.lock().unstarted = 0;
        }
    }

    /// The most bytes it holds.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces that `rows` are about to be read ([`Stash::fill`]), so that
    /// a batch needing them waits for the read instead of making its own.
    pub(crate) fn expect(&self, rows: Range<usize>) {
        if rows.is_empty() {
            return;
        }
        let mut held = self.lock();
        match held.stretches.iter_mut().find(|s| s.rows == rows) {
            Some(s) => s.uses += rows.len(),
            None => {
                let uses = rows.len();
                held.stretches.push_back(Stretch {
                    rows,
                    piece: None,
                    uses,
                });
            }
        }
    }

    /// Reads the rows `rows` of `array` announced by [`Stash::expect`]
    /// (on the read-ahead thread). A failed read is logged and forgotten:
    /// the batches read those rows themselves and report what is wrong.
    pub(crate) fn fill(&self, array: &NpyArray, rows: Range<usize>) {
        let spare = self.spare(rows.len().saturating_mul(array.row_bytes()));
        let read = self.reader.read(array, rows.clone(), spare);
        let mut held = self.lock();
        let k = held
            .stretches
            .iter()
            .position(|s| s.rows == rows && s.piece.is_none());
        match (read, k) {
            (Ok(piece), Some(k)) => {
                held.bytes += piece.footprint();
                held.stretches[k].piece = Some(Arc::new(piece));
                // Over the cap: drop the oldest stretches read (not this one).
                while held.bytes > self.cap {
                    let Some(old) = held
                        .stretches
                        .iter()
                        .position(|s| s.piece.is_some() && s.rows != rows)
                    else {
                        break;
                    };
                    held.remove(old, self.cap);
                }
            }
            (Err(e), Some(k)) => {
                log::debug!("reading ahead rows of {} refused: {e}", array.name());
                held.remove(k, self.cap);
            }
            // Not announced (a bug) or already dropped: nothing waits for it.
            (_, None) => {}
        }
        drop(held);
        self.filled.notify_all();
    }

    /// A kept buffer for a read of `len` bytes, or one mapped ahead
    /// ([`Stash::prepare`]); when none is free, waits for the one the
    /// preparing thread is making, or, when a fresh one would take the
    /// stash past its working size, a little for a batch to let go of one.
    /// The block order asks for the next window as a batch finishes a
    /// window, while a batch on another thread may still be taking that
    /// window's last rows: without the wait such reads mapped fresh buffers
    /// all through the epoch, and the window's buffers, let go of over the
    /// cap, were unmapped.
    fn spare(&self, len: usize) -> Option<MmapMut> {
        let start = Instant::now();
        let span = direct::span_for(len);
        let mut held = self.lock();
        loop {
            if let Some(buf) = held.take_spare() {
                return Some(buf);
            }
            if let Some(k) = held.prepared.iter().position(|b| direct::fits(b, span)) {
                return Some(held.prepared.swap_remove(k));
            }
            let coming = held.unstarted > 0 || held.in_progress;
            let over = held.bytes + held.retired_bytes + len > self.working;
            // A buffer being made is waited for (one mapped here as well
            // would take the pass past its working size when faults are
            // slow); one a batch holds, a little.
            let patience = if coming { PATIENCE } else { SPARE_PATIENCE };
            let waited = start.elapsed();
            if !(over || coming) || waited >= patience {
                // This read maps its own: the preparing thread one fewer.
                held.unstarted = held.unstarted.saturating_sub(1);
                return None;
            }
            held = self
                .released
                .wait_timeout(held, patience - waited)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The stretches holding any of `rows` (a batch's rows, sorted),
    /// waiting for those being read. Give it back with [`Stash::release`].
    pub(crate) fn view(&self, rows: &[usize]) -> View {
        self.view_within(rows, PATIENCE)
    }

    /// [`Stash::view`] without waiting: the stretches read so far.
    #[cfg(test)]
    pub(crate) fn view_now(&self, rows: &[usize]) -> View {
        self.view_within(rows, Duration::ZERO)
    }

    /// [`Stash::view`], waiting at most `patience` for stretches being read.
    fn view_within(&self, rows: &[usize], patience: Duration) -> View {
        debug_assert!(rows.is_sorted());
        // Whether any row falls in the stretch (a batch of the block order
        // spans other windows' blocks, which it must not wait for).
        let wanted = |s: &Stretch| {
            let k = rows.partition_point(|&r| r < s.rows.start);
            rows.get(k).is_some_and(|&r| r < s.rows.end)
        };
        let deadline = Instant::now() + patience;
        let mut held = self.lock();
        loop {
            let overlapping = || held.stretches.iter().filter(|s| wanted(s));
            let waiting = overlapping().any(|s| s.piece.is_none());
            let now = Instant::now();
            if !waiting || now >= deadline {
                let pieces = overlapping().filter_map(|s| s.piece.clone()).collect();
                return View { pieces };
            }
            held = self
                .filled
                .wait_timeout(held, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Bytes of the stretches held now (read and not yet all taken).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Gives back a batch's view: `rows` (sorted) were taken from it, and a
    /// stretch whose rows are all taken is dropped (its buffer kept for
    /// reuse).
    pub(crate) fn release(&self, view: View, rows: &[usize]) {
        let View { pieces } = view;
        let mut held = self.lock();
        for piece in pieces {
            let span = piece.rows();
            let taken =
                rows.partition_point(|&r| r < span.end) - rows.partition_point(|&r| r < span.start);
            let k = held
                .stretches
                .iter()
                .position(|s| s.piece.as_ref().is_some_and(|p| Arc::ptr_eq(p, &piece)));
            drop(piece);
            if let Some(k) = k {
                let s = &mut held.stretches[k];
                s.uses = s.uses.saturating_sub(taken);
                if s.uses == 0 {
                    held.remove(k, self.cap);
                }
            }
        }
        drop(held);
        self.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::{write_npy, ElemType};
    use crate::sys::DIRECT_ALIGN;
    use std::collections::BTreeSet;

    #[test]
    fn reads_take_the_buffers_mapped_ahead_and_map_no_more() {
        let dir = tempfile::tempdir().unwrap();
        // Rows of 1,000 bytes: stretches never start on an aligned offset.
        let (rows, row) = (96, 1000);
        let data: Vec<u8> = (0..rows * row).map(|i| (i * 13 + i / 251) as u8).collect();
        let path = dir.path().join("x.npy");
        write_npy(&path, ElemType::U8, &[rows, row], &data).unwrap();
        let x = NpyArray::open(&path).unwrap();
        let stretch = 8;
        let stash = Arc::new(Stash::with_cap(1 << 20).mapping_at_most(2, 2 * stretch * row));
        stash.prepare(stretch * row);
        stash.prepare(stretch * row); // once per stash
        let deadline = Instant::now() + Duration::from_secs(10);
        let prepared: BTreeSet<usize> = loop {
            let held = stash.lock();
            if held.unstarted == 0 && !held.in_progress {
                break held.prepared.iter().map(|b| b.as_ptr() as usize).collect();
            }
            drop(held);
            assert!(Instant::now() < deadline, "the buffers were never mapped");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(prepared.len(), 2);
        // Two stretches held at a time, as a batch spanning two windows.
        let mut read_into = BTreeSet::new();
        let mut last: Option<(View, Vec<usize>)> = None;
        for k in 0..rows / stretch {
            let span = k * stretch..(k + 1) * stretch;
            stash.expect(span.clone());
            stash.fill(&x, span.clone());
            let all: Vec<usize> = span.collect();
            let view = stash.view(&all);
            for &r in &all {
                assert_eq!(
                    view.row(r).unwrap(),
                    &data[r * row..(r + 1) * row],
                    "row {r}"
                );
            }
            // The buffer a piece sits in: its rows start less than an
            // alignment past the buffer's (page-aligned) start.
            let first = view.row(all[0]).unwrap().as_ptr() as usize;
            read_into.insert(first / DIRECT_ALIGN * DIRECT_ALIGN);
            if let Some((v, r)) = last.replace((view, all)) {
                stash.release(v, &r);
            }
        }
        // Twelve reads, all into the two buffers mapped ahead.
        assert_eq!(read_into, prepared);
        assert!(stash.lock().prepared.is_empty());
    }
}
