//! The output pixels whose footprint leaves the image, by scipy's rules.

use super::channels::Channels;
use super::job::Job;
use crate::augment::resample::boundary::floor;
use crate::augment::resample::general::{general_pixel, Source};
use crate::augment::resample::mode::FillMode;
use crate::augment::resample::taps::{axis_taps, AxisTaps};
use crate::Real;

/// Pixels whose footprint leaves the image: scipy's full rules place the
/// taps, then the same copy / blend as inside applies.
pub(crate) struct Border<'a, T, K> {
    job: &'a Job<'a, T>,
    k: K,
    src: Source<'a, T>,
    tr: AxisTaps,
    tc: AxisTaps,
    fill: T,
}

impl<'a, T: Real, K: Channels> Border<'a, T, K> {
    pub(crate) fn new(job: &'a Job<'a, T>, k: K) -> Self {
        let shape = job.shape;
        Border {
            job,
            k,
            src: Source {
                data: job.input,
                rows: shape.height,
                cols: shape.width,
                pad: 0,
                strides: shape.strides(),
                channels: shape.channels,
                mode: job.mode,
                cval: job.cval,
            },
            tr: AxisTaps::default(),
            tc: AxisTaps::default(),
            fill: T::from_f64_lossy(job.cval),
        }
    }

    #[inline(never)]
    pub(crate) fn pixel<const LINEAR: bool>(
        &mut self,
        output: &mut [T],
        y: f64,
        x: f64,
        dst: usize,
    ) {
        let (job, k) = (self.job, self.k);
        let order = usize::from(LINEAR);
        let (sr, sc, sch) = self.src.strides;
        let (rows, cols) = (self.src.rows, self.src.cols);
        // The two commonest Keras borders, short-cut: nearest (taps clamped to
        // the edge, the coordinate itself never folded, exactly as scipy does)
        // and constant (any coordinate outside [0, n-1] is cval).
        let sane = y.abs() < 1e9 && x.abs() < 1e9; // false for NaN
        if !LINEAR && job.mode == FillMode::Nearest && sane {
            let (hmax, wmax) = (rows as i64 - 1, cols as i64 - 1);
            let yi = (floor(y + 0.5) as i64).clamp(0, hmax) as usize;
            let xi = (floor(x + 0.5) as i64).clamp(0, wmax) as usize;
            k.copy(job.input, output, yi * sr + xi * sc, dst);
            return;
        }
        if LINEAR && job.mode == FillMode::Nearest && sane {
            let (fy, fx) = (floor(y), floor(x));
            let (wr0, wc0) = (1.0 - (y - fy), 1.0 - (x - fx));
            let (yi, xi) = (fy as i64, fx as i64);
            let (hmax, wmax) = (rows as i64 - 1, cols as i64 - 1);
            let rr = [
                yi.clamp(0, hmax) as usize * sr,
                (yi + 1).clamp(0, hmax) as usize * sr,
            ];
            let cc = [
                xi.clamp(0, wmax) as usize * sc,
                (xi + 1).clamp(0, wmax) as usize * sc,
            ];
            k.blend(
                job.input,
                output,
                rr,
                cc,
                [wr0, 1.0 - wr0, wc0, 1.0 - wc0],
                dst,
            );
            return;
        }
        if job.mode == FillMode::Constant
            && sane
            && (y < 0.0 || y > (rows - 1) as f64 || x < 0.0 || x > (cols - 1) as f64)
        {
            k.fill(output, dst, self.fill);
            return;
        }
        let inside = axis_taps(y, self.src.rows, 0, order, job.mode, &mut self.tr)
            && axis_taps(x, self.src.cols, 0, order, job.mode, &mut self.tc);
        let (tr, tc) = (&self.tr, &self.tc);
        if !inside {
            k.fill(output, dst, self.fill);
        } else if job.mode == FillMode::GridConstant {
            // Taps beyond the edge read cval: the general sum handles them.
            general_pixel(&self.src, [y, x], order, output, dst, sch);
        } else if LINEAR {
            let rr = [tr.idx[0] * sr, tr.idx[1] * sr];
            let cc = [tc.idx[0] * sc, tc.idx[1] * sc];
            k.blend(
                job.input,
                output,
                rr,
                cc,
                [tr.w[0], tr.w[1], tc.w[0], tc.w[1]],
                dst,
            );
        } else {
            k.copy(job.input, output, tr.idx[0] * sr + tc.idx[0] * sc, dst);
        }
    }
}
