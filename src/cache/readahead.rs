//! A background thread that asks the kernel to read file ranges ahead.
//!
//! `WILLNEED` is asynchronous only until the device queue is full: past
//! that, submitting a large range blocks until enough of it has been read.
//! The block order asks for a whole window of blocks (64 MiB and more) when
//! a batch enters a window; done on the assembling thread, a batch of a
//! cold epoch would wait for whole windows to be read before its own rows.
//! Here the requests are queued to one thread per iterator and the
//! assembling threads never wait on them.
//!
//! A request is served as a hint (`WILLNEED`, for the block order's
//! windows: many blocks in flight at once) or as plain reads that return
//! when the rows are in (large reads keep up with a fast device whatever
//! its read-ahead size, hints do not; see [`load_row_range`]), or read into
//! a [`Stash`] for the assembling threads to take (the sequential and block
//! orders of a file larger than the page cache could keep).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::cache::stash::Stash;
use crate::cache::{drop_rows, load_row_range, map_row_range, prefetch_row_range};
use crate::npy::NpyArray;

/// How a request is served.
#[derive(Clone, Debug)]
pub(crate) enum Fetch {
    /// Ask the kernel to start reading (`WILLNEED`) and go on.
    Hint,
    /// Read the rows into the page cache and wait for them.
    Read,
    /// Read the rows and map them into the process, waiting for them.
    Map,
    /// Read the rows into the stash (which expects them: [`Stash::expect`]).
    Stash(Arc<Stash>),
}

/// Rows of one array to be read ahead, how, and the reader's progress at
/// which they are no longer wanted, if any ([`Readahead::request_until`]).
type Request = (NpyArray, Range<usize>, Fetch, Option<u64>);

/// Serves one request on the calling thread.
fn serve(array: &NpyArray, rows: Range<usize>, fetch: &Fetch) {
    let done = match fetch {
        Fetch::Hint => prefetch_row_range(array, rows),
        Fetch::Read => load_row_range(array, rows),
        Fetch::Map => map_row_range(array, rows),
        Fetch::Stash(stash) => {
            stash.fill(array, rows);
            Ok(())
        }
    };
    if let Err(e) = done {
        log::debug!("read-ahead of {} refused: {e}", array.name());
    }
}

/// Serves the requests of `queue` in order until it closes, letting go of
/// those that come after `closing` is set and those the reader has passed
/// (`progress` at their mark or beyond), and dropping again from the page
/// cache what the reader passed while it was being read.
fn serve_queue(queue: Receiver<Request>, closing: &AtomicBool, progress: &AtomicU64) {
    for (array, rows, fetch, until) in queue {
        let passed = || until.is_some_and(|u| progress.load(Ordering::Relaxed) >= u);
        if closing.load(Ordering::Relaxed) || passed() {
            continue;
        }
        serve(&array, rows.clone(), &fetch);
        if passed() {
            if let Err(e) = drop_rows(&array, rows) {
                log::debug!("dropping rows read late refused: {e}");
            }
        }
    }
}

/// The thread and the queue to it, started on the first request.
#[derive(Debug, Default)]
pub(crate) struct Readahead {
    worker: Mutex<Option<(Sender<Request>, JoinHandle<()>)>>,
    /// Set when dropped: the requests still queued are let go unserved.
    closing: Arc<AtomicBool>,
    /// How far the reader has come ([`Readahead::reader_at`]).
    progress: Arc<AtomicU64>,
}

impl Readahead {
    /// Queues rows `rows` of `array` to be read ahead as `fetch` says;
    /// returns at once. Requests are served in order. A hint only: failures
    /// are logged.
    pub fn request(&self, array: &NpyArray, rows: Range<usize>, fetch: Fetch) {
        self.queue((array.clone(), rows, fetch, None));
    }

    /// [`Readahead::request`] for a reader under a page budget, which
    /// needs the rows until it is at `until` ([`Readahead::reader_at`]):
    /// let go unserved if it is there or past it by the time the request's
    /// turn comes, and dropped from the page cache again if it got there
    /// while they were read. A thread starved of the CPU served such
    /// requests after the reader had read the rows itself, and brought back
    /// what the budget had just dropped (the sequential order's pass over
    /// 7.7 MiB with a 1 MiB budget had 4–6 MB resident). Not for
    /// [`Fetch::Stash`], which batches wait for.
    pub fn request_until(&self, array: &NpyArray, rows: Range<usize>, fetch: Fetch, until: u64) {
        debug_assert!(!matches!(fetch, Fetch::Stash(_)));
        self.queue((array.clone(), rows, fetch, Some(until)));
    }

    /// Records where the reader is, in the units of
    /// [`Readahead::request_until`]'s marks.
    pub fn reader_at(&self, at: u64) {
        self.progress.store(at, Ordering::Relaxed);
    }

    fn queue(&self, request: Request) {
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_none() {
            let (tx, rx) = channel::<Request>();
            let (closing, progress) = (Arc::clone(&self.closing), Arc::clone(&self.progress));
            let spawned = std::thread::Builder::new()
                .name("npyflow-readahead".into())
                .spawn(move || serve_queue(rx, &closing, &progress));
            match spawned {
                Ok(handle) => *worker = Some((tx, handle)),
                // No thread to be had: read ahead on this thread, which
                // waits, but still reads the window in large requests.
                Err(_) => {
                    let (array, rows, fetch, _) = request;
                    serve(&array, rows, &fetch);
                    return;
                }
            }
        }
        if let Some((tx, _)) = worker.as_ref() {
            // The thread only stops when the sender is dropped (below).
            let _ = tx.send(request);
        }
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((tx, handle)) = worker.take() {
            // Nobody waits for what is still queued (the iterator that
            // asked is gone): the read in progress ends, the rest are let
            // go (a stopped block order had a window of 64 MiB queued, a
            // sixtieth of a second on a fast drive). Closing the queue
            // then ends the thread.
            self.closing.store(true, Ordering::Relaxed);
            drop(tx);
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::{write_npy, ElemType};

    #[test]
    fn requests_are_served_and_drop_joins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.npy");
        write_npy(&path, ElemType::U8, &[64, 4096], &vec![7u8; 64 * 4096]).unwrap();
        let x = NpyArray::open(&path).unwrap();
        let ra = Readahead::default();
        ra.request(&x, 0..32, Fetch::Hint);
        ra.request(&x, 32..64, Fetch::Read);
        // Out-of-range rows are clamped, not an error or a panic.
        ra.request(&x, 60..1000, Fetch::Hint);
        ra.request(&x, 60..1000, Fetch::Read);
        ra.request(&x, 0..64, Fetch::Map);
        assert!(ra.worker.lock().unwrap().is_some());
        drop(ra); // joins the thread
    }

    /// What `serve_queue` served of a queue of stash reads of 8 rows each
    /// (`None` marks: always due): the first row of each stretch read.
    fn served(closing: bool, progress: u64, marks: &[Option<u64>]) -> Vec<usize> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.npy");
        write_npy(&path, ElemType::U8, &[64, 4096], &vec![7u8; 64 * 4096]).unwrap();
        let x = NpyArray::open(&path).unwrap();
        let stash = Arc::new(Stash::with_cap(1 << 20));
        let (tx, rx) = channel();
        for (k, &until) in marks.iter().enumerate() {
            let rows = 8 * k..8 * k + 8;
            stash.expect(rows.clone());
            let fetch = Fetch::Stash(Arc::clone(&stash));
            tx.send((x.clone(), rows, fetch, until)).unwrap();
        }
        drop(tx);
        serve_queue(rx, &AtomicBool::new(closing), &AtomicU64::new(progress));
        let view = stash.view_now(&(0..8 * marks.len()).collect::<Vec<_>>());
        (0..marks.len())
            .map(|k| 8 * k)
            .filter(|&r| view.row(r).is_some())
            .collect()
    }

    #[test]
    fn requests_still_queued_when_dropped_are_let_go() {
        assert_eq!(served(false, 0, &[None, None]), [0, 8]);
        assert_eq!(served(true, 0, &[None, None]), [0usize; 0]);
    }

    #[test]
    fn requests_the_reader_has_passed_are_let_go() {
        let marks = [Some(5), Some(6), Some(7), None];
        // The reader at 6: the two marked at or before it are let go.
        assert_eq!(served(false, 6, &marks), [16, 24]);
        assert_eq!(served(false, 0, &marks), [0, 8, 16, 24]);
    }
}
