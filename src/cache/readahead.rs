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
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use std::sync::Arc;

use crate::cache::stash::Stash;
use crate::cache::{load_row_range, map_row_range, prefetch_row_range};
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

/// Rows of one array to be read ahead, and how.
type Request = (NpyArray, Range<usize>, Fetch);

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

/// The thread and the queue to it, started on the first request.
#[derive(Debug, Default)]
pub(crate) struct Readahead {
    worker: Mutex<Option<(Sender<Request>, JoinHandle<()>)>>,
}

impl Readahead {
    /// Queues rows `rows` of `array` to be read ahead as `fetch` says;
    /// returns at once. Requests are served in order. A hint only: failures
    /// are logged.
    pub fn request(&self, array: &NpyArray, rows: Range<usize>, fetch: Fetch) {
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_none() {
            let (tx, rx) = channel::<Request>();
            let spawned = std::thread::Builder::new()
                .name("npyflow-readahead".into())
                .spawn(move || {
                    for (array, rows, fetch) in rx {
                        serve(&array, rows, &fetch);
                    }
                });
            match spawned {
                Ok(handle) => *worker = Some((tx, handle)),
                // No thread to be had: read ahead on this thread, which
                // waits, but still reads the window in large requests.
                Err(_) => {
                    serve(array, rows, &fetch);
                    return;
                }
            }
        }
        if let Some((tx, _)) = worker.as_ref() {
            // The thread only stops when the sender is dropped (below).
            let _ = tx.send((array.clone(), rows, fetch));
        }
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((tx, handle)) = worker.take() {
            // Closing the queue ends the thread once it has served it.
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
        drop(ra); // joins the thread after the queue is served
    }
}
