//! One output pixel through scipy's full rules, for any order: the
//! reference the fast paths are held to, and their fallback where none applies.

use super::mode::FillMode;
use super::taps::{axis_taps, AxisTaps};
use crate::Real;

/// A 2-D multi-channel array as [`general_pixel`] reads it: its elements
/// and layout, and how it continues past its edges.
pub(crate) struct Source<'a, S> {
    /// The elements.
    pub data: &'a [S],
    /// Rows, padding included.
    pub rows: usize,
    /// Columns, padding included.
    pub cols: usize,
    /// Samples of pre-padding on each side (coordinates shift by it).
    pub pad: usize,
    /// Element strides of a row, a column and a channel.
    pub strides: (usize, usize, usize),
    /// Channels per pixel.
    pub channels: usize,
    /// The extension past the edges.
    pub mode: FillMode,
    /// The value of the constant extensions.
    pub cval: f64,
}

/// One output pixel through scipy's full rules, for any order: fold the
/// coordinates, place and fold the taps, sum `(value · w_row) · w_col` over
/// the footprint in scipy's order, for every channel. The kernels use it
/// where no fast path applies (grid-constant borders); the tests use it as
/// the reference the fast paths must reproduce bit for bit. The channels go
/// to `output[obase + ch · osch]`.
#[inline]
pub(crate) fn general_pixel<S: Real, T: Real>(
    src: &Source<'_, S>,
    coord: [f64; 2],
    order: usize,
    output: &mut [T],
    obase: usize,
    osch: usize,
) {
    let (mode, cval) = (src.mode, src.cval);
    let mut tr = AxisTaps::default();
    let mut tc = AxisTaps::default();
    let inside = axis_taps(coord[0], src.rows, src.pad, order, mode, &mut tr)
        && axis_taps(coord[1], src.cols, src.pad, order, mode, &mut tc);
    if !inside {
        let fill = T::from_f64_lossy(cval);
        for ch in 0..src.channels {
            output[obase + ch * osch] = fill;
        }
        return;
    }
    let (sr, sc, sch) = src.strides;
    let k = order + 1;
    let rows = || tr.idx[..k].iter().zip(&tr.outside[..k]).zip(&tr.w[..k]);
    let cols = || tc.idx[..k].iter().zip(&tc.outside[..k]).zip(&tc.w[..k]);
    for ch in 0..src.channels {
        let chb = ch * sch;
        let mut t = 0.0;
        for ((&ia, &oa), &wa) in rows() {
            for ((&ib, &ob), &wb) in cols() {
                let v = if oa || ob {
                    cval
                } else {
                    src.data[ia * sr + ib * sc + chb].to_f64_lossless()
                };
                t += if order > 0 { v * wa * wb } else { v };
            }
        }
        output[obase + ch * osch] = T::from_f64_lossy(t);
    }
}
