//! Orders 2..=5: prefilter every channel once (see [`super::prefilter`]), then
//! evaluate the `(order + 1)²` coefficients around each output pixel.
//!
//! The evaluation is monomorphised per order so that the tap loops unroll,
//! and the channels of one tap, adjacent in the coefficient array, are
//! accumulated together (up to four at a time). Each channel still sums its
//! terms `(c · w_row) · w_col` in scipy's footprint order.

use super::job::{Interpolation, ResampleJob};
use super::mode::FillMode;
use super::prefilter::{prefilter, Coeffs, PrefilterScratch};
use super::taps::{axis_taps, AxisTaps};
use crate::augment::matrix::Affine2;
use crate::{ImageShape, Real};

/// Channels accumulated together per tap.
const GROUP: usize = 4;

/// `job` with its spline order (2..=5; larger values are treated as 5),
/// without its flips and scale (left to the caller).
pub(crate) fn spline_order<T: Real>(
    job: &ResampleJob,
    input: &[T],
    output: &mut [T],
    scratch: &mut PrefilterScratch,
) {
    let (shape, Interpolation { order, mode, cval }) = (job.shape, job.interp);
    let order = usize::from(order);
    let (geo, coeffs) = prefilter(input, shape, order, mode, cval, scratch);
    let eval = Eval {
        coeffs,
        geo,
        shape,
        m: &job.m,
        mode,
        cval,
    };
    match order {
        2 => eval.run::<T, 2, 3>(output),
        3 => eval.run::<T, 3, 4>(output),
        4 => eval.run::<T, 4, 5>(output),
        _ => eval.run::<T, 5, 6>(output),
    }
}

/// The coefficients and parameters of one evaluation.
struct Eval<'a> {
    coeffs: &'a [f64],
    geo: Coeffs,
    shape: ImageShape,
    m: &'a Affine2,
    mode: FillMode,
    cval: f64,
}

impl Eval<'_> {
    /// Evaluates every output pixel; `K` is `ORDER + 1` taps per axis.
    fn run<T: Real, const ORDER: usize, const K: usize>(&self, output: &mut [T]) {
        let (geo, m, nc) = (self.geo, self.m, self.shape.channels);
        let (sr, sc, sch) = self.shape.strides();
        let fill = T::from_f64_lossy(self.cval);
        let grid_constant = self.mode == FillMode::GridConstant;
        let mut tr = AxisTaps::default();
        let mut tc = AxisTaps::default();
        for r in 0..self.shape.height {
            // scipy's coordinate sum, offset + r·a0 + c·a1, left to right.
            let rf = r as f64;
            let (y0, x0) = (m.offset[0] + rf * m.a[0][0], m.offset[1] + rf * m.a[1][0]);
            let mut cf = 0.0;
            for col in 0..self.shape.width {
                let (y, x) = (y0 + cf * m.a[0][1], x0 + cf * m.a[1][1]);
                cf += 1.0;
                let dst = r * sr + col * sc;
                let inside = axis_taps(y, geo.height, geo.pad, ORDER, self.mode, &mut tr)
                    && axis_taps(x, geo.width, geo.pad, ORDER, self.mode, &mut tc);
                if !inside {
                    for ch in 0..nc {
                        output[dst + ch * sch] = fill;
                    }
                    continue;
                }
                let roff: [usize; K] = std::array::from_fn(|a| tr.idx[a] * geo.row_stride);
                let coff: [usize; K] = std::array::from_fn(|b| tc.idx[b] * geo.col_stride);
                let wr: [f64; K] = std::array::from_fn(|a| tr.w[a]);
                let wc: [f64; K] = std::array::from_fn(|b| tc.w[b]);
                // Grid-constant taps beyond the padded edge read cval.
                let cut = grid_constant
                    && (tr.outside[..K].contains(&true) || tc.outside[..K].contains(&true));
                let taps = Taps {
                    roff,
                    coff,
                    wr,
                    wc,
                    cut,
                    cval: self.cval,
                    rows: &tr,
                    cols: &tc,
                };
                for ch0 in (0..nc).step_by(GROUP) {
                    let at = dst + ch0 * sch;
                    match nc - ch0 {
                        1 => taps.sum::<T, 1>(self.coeffs, ch0, output, at, sch),
                        2 => taps.sum::<T, 2>(self.coeffs, ch0, output, at, sch),
                        3 => taps.sum::<T, 3>(self.coeffs, ch0, output, at, sch),
                        _ => taps.sum::<T, GROUP>(self.coeffs, ch0, output, at, sch),
                    }
                }
            }
        }
    }
}

/// The footprint of one output pixel: coefficient offsets and weights per axis.
struct Taps<'t, const K: usize> {
    roff: [usize; K],
    coff: [usize; K],
    wr: [f64; K],
    wc: [f64; K],
    /// Grid-constant with some tap beyond the padded edge (those read cval).
    cut: bool,
    cval: f64,
    /// The taps of each axis, for which of them are beyond the edge.
    rows: &'t AxisTaps,
    cols: &'t AxisTaps,
}

impl<const K: usize> Taps<'_, K> {
    /// Sums the footprint for `G` adjacent channels starting at `ch0` (the
    /// accumulators stay in registers) and stores them at `dst`, `sch` apart.
    #[inline(always)]
    fn sum<T: Real, const G: usize>(
        &self,
        coeffs: &[f64],
        ch0: usize,
        output: &mut [T],
        dst: usize,
        sch: usize,
    ) {
        let (tr, tc) = (self.rows, self.cols);
        let mut acc = [0.0; G];
        for a in 0..K {
            for b in 0..K {
                let (wa, wb) = (self.wr[a], self.wc[b]);
                if self.cut && (tr.outside[a] || tc.outside[b]) {
                    for t in &mut acc {
                        *t += self.cval * wa * wb;
                    }
                } else {
                    let base = self.roff[a] + self.coff[b] + ch0;
                    let v: &[f64; G] = coeffs[base..base + G].try_into().expect("G values");
                    for (t, v) in acc.iter_mut().zip(v) {
                        *t += v * wa * wb;
                    }
                }
            }
        }
        for (i, t) in acc.iter().enumerate() {
            output[dst + i * sch] = T::from_f64_lossy(*t);
        }
    }
}
