//! The background half of the pipeline: worker threads that assemble the
//! next batches while the caller works on the current one, and the hand-off
//! of buffers between them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::iterator::batch::Batch;
use crate::iterator::shard::Schedule;
use crate::Result;

use super::Context;

/// A filled buffer (or the error that stopped it) with the batch it holds.
type Ready = (u64, usize, Result<()>, Batch);

/// Most batches in a row the caller waits for once it has caught up with the
/// workers (and at most half the buffers, so the workers keep some to fill).
///
/// A caller that consumes faster than the workers produce would otherwise
/// sleep and be woken once per batch, and on a machine with few cores each
/// wake-up preempts a worker: a context switch or more per batch. Woken for
/// a run of ready batches, it takes them back to back. The first batch
/// after a start is handed over alone (time to first batch), and a caller
/// slower than the workers never waits at all.
const WAKE_RUN: usize = 4;

/// What the workers and the caller exchange, under one lock.
struct Exchange {
    /// Finished batches not yet taken, in any order.
    ready: Vec<Ready>,
    /// Buffers for the workers to fill.
    free: Vec<Batch>,
    /// The caller waits for this many batches in a row from this position.
    want: Option<((u64, usize), usize)>,
    /// Workers waiting for a free buffer.
    idle: usize,
    /// Workers still running.
    alive: usize,
    /// A worker panicked (a bug): the caller stops waiting.
    panicked: bool,
    /// The producer is being dropped: workers stop.
    closed: bool,
}

impl Exchange {
    /// Whether the `run` batches from `from` are all ready.
    fn has_run(&self, from: (u64, usize), run: usize, schedule: &Schedule) -> bool {
        let mut pos = from;
        for _ in 0..run {
            if !self.ready.iter().any(|r| (r.0, r.1) == pos) {
                return false;
            }
            pos = schedule.advance(pos);
        }
        true
    }
}

/// Background threads that assemble the next batches while the caller
/// works on the current one.
///
/// With `threads` cores and `depth` batches ahead, `min(threads, depth)`
/// workers each assemble *whole* batches. A 32×32 image costs a few
/// microseconds, so a batch of them is too small to split across cores
/// without the hand-offs costing as much as the work (rayon's wake-ups took
/// a third of the time); whole batches per core need no hand-off but the
/// one to the caller. Workers left with spare threads (`depth < threads`)
/// split each batch over them with rayon.
///
/// A worker takes a free buffer, then claims the next batch of the walk (a
/// shared count, so batches are claimed in order) and fills it; the caller
/// takes them back in order, holding any that arrive early. Claiming on
/// demand lets a faster core build more batches, where taking turns
/// (worker `k` building batches `k, k + W, ...`) would hold every worker to
/// the pace of the slowest, which on a hybrid CPU or a busy machine can be
/// far slower.
///
/// Buffers circulate: `depth + 1` in all (one lent to the caller), so
/// memory stays bounded by the prefetch depth whatever the dataset size.
pub(crate) struct Producer {
    /// The (epoch, batch) the producer will deliver next.
    pub next: (u64, usize),
    shared: Arc<Shared>,
    /// Batches handed over so far.
    taken: usize,
    /// Batches in a row to wait for once caught up (see [`WAKE_RUN`]).
    run: usize,
    handles: Vec<std::thread::JoinHandle<()>>,
}

/// What the workers of a [`Producer`] share.
struct Shared {
    ctx: Arc<Context>,
    pool: Arc<rayon::ThreadPool>,
    /// The first batch of the walk.
    start: (u64, usize),
    /// Workers in all: a worker hints the rows of the batch this many
    /// claims after its own, the one it will likely take next.
    workers: usize,
    /// Batches claimed so far.
    claimed: AtomicUsize,
    /// `step + 1` of the claims whose rows a hint asked for, in a ring
    /// (so a worker knows not to ask again; a stale slot just asks again).
    hinted: Vec<AtomicUsize>,
    exchange: Mutex<Exchange>,
    /// Signalled when the caller's run is ready or a worker stops.
    ready: Condvar,
    /// Signalled when a buffer comes back or the producer closes.
    free: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Exchange> {
        // A poisoned lock only means a thread panicked while holding it;
        // `panicked` tells the caller.
        self.exchange.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Producer {
    /// Starts producing from `(epoch, batch)` with `depth` buffers.
    pub fn start(
        ctx: Arc<Context>,
        pool: Arc<rayon::ThreadPool>,
        threads: usize,
        start: (u64, usize),
        depth: usize,
    ) -> Producer {
        let depth = depth.max(1);
        let workers = threads.clamp(1, depth);
        let free = (0..depth).map(|_| ctx.new_batch()).collect();
        let shared = Arc::new(Shared {
            ctx,
            pool,
            start,
            workers,
            claimed: AtomicUsize::new(0),
            hinted: (0..2 * workers).map(|_| AtomicUsize::new(0)).collect(),
            exchange: Mutex::new(Exchange {
                ready: Vec::with_capacity(depth),
                free,
                want: None,
                idle: 0,
                alive: workers,
                panicked: false,
                closed: false,
            }),
            ready: Condvar::new(),
            free: Condvar::new(),
        });
        let handles = (0..workers)
            .map(|k| {
                // The threads split between the workers, the first ones
                // taking the remainder.
                let inner = threads / workers + usize::from(k < threads % workers);
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("npyflow-prefetch".into())
                    .spawn(move || shared.work(inner.max(1)))
                    .expect("spawning a prefetch thread")
            })
            .collect();
        Producer {
            next: start,
            shared,
            taken: 0,
            run: (depth / 2).clamp(1, WAKE_RUN),
            handles,
        }
    }

    /// Swaps `lent` (the batch the caller is done with) for the next one.
    /// Returns the result of assembling it. `None` if the producer died.
    pub fn swap(&mut self, lent: &mut Batch) -> Option<Result<()>> {
        let shared = &self.shared;
        let schedule = shared.ctx.schedule();
        let mut ex = shared.lock();
        loop {
            if ex.panicked {
                return None;
            }
            if ex.has_run(self.next, 1, schedule) {
                break;
            }
            if ex.alive == 0 {
                return None;
            }
            // Caught up: wait for a run of batches. Not for the first one
            // (time to first batch), nor with a worker gone (it stopped on
            // an error): later batches may then never come.
            let whole = ex.alive == shared.workers;
            let run = if whole && self.taken > 0 { self.run } else { 1 };
            ex.want = Some((self.next, run));
            // The timeout is a safety net only: every change the caller
            // waits for is signalled.
            ex = shared
                .ready
                .wait_timeout(ex, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        ex.want = None;
        let k = ex.ready.iter().position(|r| (r.0, r.1) == self.next)?;
        let (epoch, index, result, buf) = ex.ready.swap_remove(k);
        ex.free.push(std::mem::replace(lent, buf));
        let idle = ex.idle > 0;
        drop(ex);
        if idle {
            shared.free.notify_one();
        }
        self.taken += 1;
        self.next = schedule.advance((epoch, index));
        Some(result)
    }
}

impl Shared {
    /// One worker: take a free buffer, claim the next batch, fill it, hand
    /// it over; until the producer closes or a batch fails (its error is
    /// handed over).
    fn work(&self, threads: usize) {
        // Counts the worker out however it ends, and flags a panic (a bug)
        // so that the caller stops waiting.
        struct Guard<'a>(&'a Shared);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                {
                    let mut ex = self.0.lock();
                    ex.alive -= 1;
                    ex.panicked |= std::thread::panicking();
                }
                self.0.ready.notify_one();
            }
        }
        let _guard = Guard(self);
        let ctx = &self.ctx;
        let schedule = ctx.schedule();
        loop {
            let mut buf = {
                let mut ex = self.lock();
                loop {
                    if ex.closed {
                        return;
                    }
                    if let Some(b) = ex.free.pop() {
                        break b;
                    }
                    ex.idle += 1;
                    ex = self.free.wait(ex).unwrap_or_else(|e| e.into_inner());
                    ex.idle -= 1;
                }
            };
            let step = self.claimed.fetch_add(1, Ordering::Relaxed);
            let (epoch, index) = schedule.advance_by(self.start, step);
            // A hint only: a failure shows in the batch's own reads.
            let _ = ctx.before_plan(epoch, index);
            let plan = ctx.shared_plan(epoch);
            // A new epoch's plan takes tens of milliseconds for a million
            // rows, and the caller may have let the producer go meanwhile
            // (the last epoch it asked for was done): no batch to build.
            if self.lock().closed {
                return;
            }
            let slot = |step: usize| &self.hinted[step % self.hinted.len()];
            // Whether a hint asked for this batch's rows already.
            let requested = slot(step).load(Ordering::Acquire) == step + 1;
            // Overlap the storage reads of the batch likely next for this
            // worker with this one's compute (within the epoch's plan).
            let next = index + self.workers;
            if next < schedule.batches(epoch) && ctx.hint(next, &plan).is_ok() {
                slot(step + self.workers).store(step + self.workers + 1, Ordering::Release);
            }
            let result = if threads <= 1 {
                ctx.assemble(epoch, index, &plan, &mut buf, 1, requested)
            } else {
                self.pool
                    .install(|| ctx.assemble(epoch, index, &plan, &mut buf, threads, requested))
            };
            let failed = result.is_err();
            let mut ex = self.lock();
            ex.ready.push((epoch, index, result, buf));
            let wake = ex
                .want
                .is_some_and(|(from, run)| ex.has_run(from, run, schedule));
            if wake {
                ex.want = None;
            }
            drop(ex);
            // Signalled after the unlock, so the woken caller does not
            // wake only to wait for the lock.
            if wake {
                self.ready.notify_one();
            }
            if failed {
                return;
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.free.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
