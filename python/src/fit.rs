//! `fit` that Ctrl-C can stop: the pass runs on a thread of its own while
//! the calling thread waits with the GIL released and checks Python's
//! signals every few tens of milliseconds; on `KeyboardInterrupt` the
//! source's next read fails, the pass ends, and the exception is raised.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use npyflow::fit::SampleSource;
use npyflow::{FitConfig, ImageDataGenerator, NpyArray};
use pyo3::prelude::*;

use crate::errors::IntoPy;

/// How often the waiting thread looks for a pending signal.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// An array whose reads fail once `stop` is set (the stop request of Ctrl-C).
struct Stoppable<'a> {
    array: &'a NpyArray,
    stop: &'a AtomicBool,
}

impl Stoppable<'_> {
    fn check(&self) -> npyflow::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(npyflow::Error::invalid(
                "fit",
                "interrupted",
                "stopped by KeyboardInterrupt",
            ));
        }
        Ok(())
    }
}

impl SampleSource for Stoppable<'_> {
    fn shape(&self) -> &[usize] {
        self.array.shape()
    }

    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> npyflow::Result<()> {
        self.check()?;
        SampleSource::read_sample_into(self.array, index, out)
    }

    fn read_samples_into(&self, first: usize, out: &mut [f64]) -> npyflow::Result<()> {
        self.check()?;
        self.array.read_samples_into(first, out)
    }

    fn prefetch(&self, rows: std::ops::Range<usize>) -> npyflow::Result<()> {
        self.array.prefetch(rows)
    }

    fn read_u8_samples_into(&self, first: usize, out: &mut [u8]) -> Option<npyflow::Result<()>> {
        if let Err(e) = self.check() {
            return Some(Err(e));
        }
        self.array.read_u8_samples_into(first, out)
    }

    fn exact_in_f32(&self) -> bool {
        self.array.exact_in_f32()
    }
}

/// `generator.fit(x, config)`, interruptible with Ctrl-C.
pub fn fit(
    py: Python<'_>,
    generator: &mut ImageDataGenerator,
    x: &NpyArray,
    config: &FitConfig,
) -> PyResult<()> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        // Borrowed by the waits below, which must be `Send`.
        let rx = std::sync::Mutex::new(rx);
        let stop = &stop;
        scope.spawn(move || {
            let source = Stoppable { array: x, stop };
            let _ = tx.send(generator.fit(&source, config).map(|_| ()));
        });
        loop {
            match py.detach(|| lock(&rx).recv_timeout(SIGNAL_POLL)) {
                Ok(result) => return result.py_err(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        stop.store(true, Ordering::Relaxed);
                        let _ = py.detach(|| lock(&rx).recv());
                        return Err(e);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "npyflow: the fit thread ended without a result",
                    ))
                }
            }
        }
    })
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
