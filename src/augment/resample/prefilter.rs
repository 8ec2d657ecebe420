//! scipy's B-spline prefilter for orders 2..=5.
//!
//! scipy interpolates with order > 1 in two steps: `spline_filter` turns the
//! samples into B-spline coefficients (a recursive IIR filter along each axis,
//! whose start values depend on how the signal is assumed to continue past
//! the edges), then every output value is a weighted sum of
//! `(order + 1)²` coefficients. Both steps are ported from scipy 1.17.1's
//! `ni_splines.c` with the same operation order, so results agree with scipy
//! to the last bit on the conformance fixtures.

use super::mode::FillMode;
use crate::{ImageShape, Real};

/// Samples scipy pads on every side before prefiltering for `nearest` (edge
/// copies) and `grid-constant` (cval): those modes have no exact analytic
/// boundary for the filter, so scipy approximates them with a wide margin
/// (`_prepad_for_spline_filter`).
pub(crate) const PREPAD: usize = 12;

/// The poles of the B-spline prefilter (scipy's `get_filter_poles`), written
/// with scipy's own literals so that they parse to the same doubles.
#[allow(clippy::excessive_precision)]
fn poles(order: usize) -> &'static [f64] {
    match order {
        2 => &[-0.171_572_875_253_809_902_396_622_551_580_603_843],
        3 => &[-0.267_949_192_431_122_706_472_553_658_494_127_633],
        4 => &[
            -0.361_341_225_900_220_177_092_212_841_325_675_255,
            -0.013_725_429_297_339_121_360_331_226_939_128_204,
        ],
        5 => &[
            -0.430_575_347_099_973_791_851_434_783_493_520_110,
            -0.043_096_288_203_264_653_822_712_376_822_550_182,
        ],
        _ => &[],
    }
}

/// How the prefilter assumes the signal continues past its ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Boundary {
    /// Whole-sample symmetric (`d c b | a b c d | c b a`).
    Mirror,
    /// Half-sample symmetric (`d c b a | a b c d | d c b a`).
    Reflect,
    /// Periodic with period n.
    Wrap,
}

/// The prefilter boundary scipy 1.17.1 uses for each fill mode (measured bit
/// for bit against `scipy.ndimage.spline_filter1d`): constant, legacy wrap and
/// grid-constant are fitted as mirror (no exact filter exists for them),
/// nearest as reflect (on its edge-padded array).
fn boundary(mode: FillMode) -> Boundary {
    match mode {
        FillMode::Constant | FillMode::Mirror | FillMode::Wrap | FillMode::GridConstant => {
            Boundary::Mirror
        }
        FillMode::Nearest | FillMode::Reflect | FillMode::GridMirror => Boundary::Reflect,
        FillMode::GridWrap => Boundary::Wrap,
    }
}

/// Rows `i` and `j` (`i != j`) of a `lanes`-wide block: row `i` mutable.
#[inline(always)]
fn two_rows(c: &mut [f64], lanes: usize, i: usize, j: usize) -> (&mut [f64], &[f64]) {
    if i < j {
        let (lo, hi) = c.split_at_mut(j * lanes);
        (&mut lo[i * lanes..(i + 1) * lanes], &hi[..lanes])
    } else {
        let (lo, hi) = c.split_at_mut(i * lanes);
        (&mut hi[..lanes], &lo[j * lanes..(j + 1) * lanes])
    }
}

/// Causal start values (scipy's `_init_causal_*`) of `lanes` lines stored
/// side by side: element `k` of line `l` is `c[k * lanes + l]`. `tmp` holds
/// `lanes` values.
fn init_causal(c: &mut [f64], n: usize, lanes: usize, z: f64, b: Boundary, tmp: &mut [f64]) {
    match b {
        Boundary::Mirror => {
            let z_n_1 = z.powf((n - 1) as f64);
            let (c0, cl) = two_rows(c, lanes, 0, n - 1);
            for (a, l) in c0.iter_mut().zip(cl) {
                *a += z_n_1 * l;
            }
            let mut z_i = z;
            for i in 1..n - 1 {
                let (c0, rest) = c.split_at_mut(lanes);
                let ci = &rest[(i - 1) * lanes..i * lanes];
                let cj = &rest[(n - 2 - i) * lanes..(n - 1 - i) * lanes];
                for ((a, x), y) in c0.iter_mut().zip(ci).zip(cj) {
                    *a += z_i * (x + z_n_1 * y);
                }
                z_i *= z;
            }
            let d = 1.0 - z_n_1 * z_n_1;
            for a in &mut c[..lanes] {
                *a /= d;
            }
        }
        Boundary::Wrap => {
            let mut z_i = z;
            for i in 1..n {
                let (c0, ci) = two_rows(c, lanes, 0, n - i);
                for (a, x) in c0.iter_mut().zip(ci) {
                    *a += z_i * x;
                }
                z_i *= z;
            }
            let d = 1.0 - z_i;
            for a in &mut c[..lanes] {
                *a /= d;
            }
        }
        Boundary::Reflect => {
            let z_n = z.powf(n as f64);
            tmp[..lanes].copy_from_slice(&c[..lanes]);
            let (c0, cl) = two_rows(c, lanes, 0, n - 1);
            for (a, l) in c0.iter_mut().zip(cl) {
                *a += z_n * l;
            }
            let mut z_i = z;
            for i in 1..n {
                let (c0, rest) = c.split_at_mut(lanes);
                let ci = &rest[(i - 1) * lanes..i * lanes];
                if i == n - 1 {
                    // scipy reads c[n-1-i] = c[0] here, i.e. the running sum
                    // rather than the sample (hence its slightly inexact
                    // reflect boundary); reproduced as is.
                    for (a, x) in c0.iter_mut().zip(ci) {
                        *a += z_i * (x + z_n * *a);
                    }
                } else {
                    let cj = &rest[(n - 2 - i) * lanes..(n - 1 - i) * lanes];
                    for ((a, x), y) in c0.iter_mut().zip(ci).zip(cj) {
                        *a += z_i * (x + z_n * y);
                    }
                }
                z_i *= z;
            }
            let f = z / (1.0 - z_n * z_n);
            for (a, t) in c[..lanes].iter_mut().zip(&tmp[..lanes]) {
                *a *= f;
                *a += t;
            }
        }
    }
}

/// Anti-causal start values (scipy's `_init_anticausal_*`), same layout.
fn init_anticausal(c: &mut [f64], n: usize, lanes: usize, z: f64, b: Boundary) {
    match b {
        Boundary::Mirror => {
            let (cl, cp) = two_rows(c, lanes, n - 1, n - 2);
            let d = z * z - 1.0;
            for (a, p) in cl.iter_mut().zip(cp) {
                *a = (z * p + *a) * z / d;
            }
        }
        Boundary::Wrap => {
            let mut z_i = z;
            for i in 0..n - 1 {
                let (cl, ci) = two_rows(c, lanes, n - 1, i);
                for (a, x) in cl.iter_mut().zip(ci) {
                    *a += z_i * x;
                }
                z_i *= z;
            }
            let f = z / (z_i - 1.0);
            for a in &mut c[(n - 1) * lanes..n * lanes] {
                *a *= f;
            }
        }
        Boundary::Reflect => {
            let f = z / (z - 1.0);
            for a in &mut c[(n - 1) * lanes..n * lanes] {
                *a *= f;
            }
        }
    }
}

/// Turns `lanes` lines of `n` samples, stored side by side (element `k` of
/// line `l` at `c[k * lanes + l]`), into B-spline coefficients in place:
/// scipy's `apply_filter` on each line. Working on many lines at once lets
/// the recursions of different lines overlap (and vectorise) instead of
/// waiting on one line's dependency chain; each line still sees exactly
/// scipy's sequence of operations. Lines of length 0 or 1 are left as they
/// are.
fn filter_lines(c: &mut [f64], n: usize, lanes: usize, order: usize, b: Boundary, tmp: &mut [f64]) {
    if n <= 1 || lanes == 0 {
        return;
    }
    let c = &mut c[..n * lanes];
    let zs = poles(order);
    let mut gain = 1.0;
    for &z in zs {
        gain *= (1.0 - z) * (1.0 - 1.0 / z);
    }
    for v in c.iter_mut() {
        *v *= gain;
    }
    for &z in zs {
        init_causal(c, n, lanes, z, b, tmp);
        for i in 1..n {
            let (prev, cur) = c[(i - 1) * lanes..(i + 1) * lanes].split_at_mut(lanes);
            for (a, p) in cur.iter_mut().zip(prev.iter()) {
                *a += z * p;
            }
        }
        init_anticausal(c, n, lanes, z, b);
        for i in (0..n - 1).rev() {
            let (cur, next) = c[i * lanes..(i + 2) * lanes].split_at_mut(lanes);
            for (a, x) in cur.iter_mut().zip(next.iter()) {
                *a = z * (x - *a);
            }
        }
    }
}

/// Where [`prefilter`] left the coefficients: an array of `height` × `width`
/// pixels (padding included) of `channels` contiguous values, with element
/// strides `row_stride` and `col_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Coeffs {
    /// Rows, padding included.
    pub height: usize,
    /// Columns, padding included.
    pub width: usize,
    /// Samples added before the first row / column (and after the last).
    pub pad: usize,
    /// Elements between vertically adjacent pixels.
    pub row_stride: usize,
    /// Elements between horizontally adjacent pixels.
    pub col_stride: usize,
}

/// Reusable buffers of [`prefilter`].
#[derive(Debug, Default)]
pub(crate) struct PrefilterScratch {
    /// Samples then coefficients, `[row][col][channel]` while filtering rows.
    rows_first: Vec<f64>,
    /// The same transposed, `[col][row][channel]`: filtered along columns and
    /// left there for evaluation.
    cols_first: Vec<f64>,
    tmp: Vec<f64>,
}

/// Computes the B-spline coefficients of every channel of `input` for
/// `order` (2..=5) into `scratch` (reusing its allocations) and returns
/// their layout. The taps of one pixel serve all channels (channels are
/// innermost).
///
/// Nearest and grid-constant are padded first as scipy does; grid-constant
/// pads with `cval` rounded to `T`, because scipy pads the input array in its
/// own dtype. Rows are filtered first, then columns, as scipy's
/// `spline_filter` loops its axes.
pub(crate) fn prefilter<'s, T: Real>(
    input: &[T],
    shape: ImageShape,
    order: usize,
    mode: FillMode,
    cval: f64,
    scratch: &'s mut PrefilterScratch,
) -> (Coeffs, &'s [f64]) {
    let (h, w, nc) = (shape.height, shape.width, shape.channels);
    let pad = if matches!(mode, FillMode::Nearest | FillMode::GridConstant) {
        PREPAD
    } else {
        0
    };
    let (hp, wp) = (h + 2 * pad, w + 2 * pad);
    let a = &mut scratch.rows_first;
    a.clear();
    a.resize(hp * wp * nc, 0.0);
    let fill = T::from_f64_lossy(cval).to_f64_lossless();
    let edge = mode == FillMode::Nearest;
    let (sr, sc, sch) = shape.strides();
    for r in 0..hp {
        let row_in = r.wrapping_sub(pad) < h;
        for col in 0..wp {
            let dst = &mut a[(r * wp + col) * nc..][..nc];
            if (row_in && col.wrapping_sub(pad) < w) || edge {
                // Edge padding copies the nearest sample (`np.pad(mode='edge')`).
                let (rr, cc) = (
                    r.saturating_sub(pad).min(h - 1),
                    col.saturating_sub(pad).min(w - 1),
                );
                let base = rr * sr + cc * sc;
                for (ch, d) in dst.iter_mut().enumerate() {
                    *d = input[base + ch * sch].to_f64_lossless();
                }
            } else {
                dst.fill(fill);
            }
        }
    }
    let b = boundary(mode);
    let tmp = &mut scratch.tmp;
    tmp.clear();
    tmp.resize(hp.max(wp) * nc, 0.0);
    filter_lines(a, hp, wp * nc, order, b, tmp);
    let t = &mut scratch.cols_first;
    t.clear();
    t.resize(hp * wp * nc, 0.0);
    for r in 0..hp {
        for col in 0..wp {
            let from = (r * wp + col) * nc;
            let to = (col * hp + r) * nc;
            t[to..to + nc].copy_from_slice(&a[from..from + nc]);
        }
    }
    filter_lines(t, wp, hp * nc, order, b, tmp);
    let geo = Coeffs {
        height: hp,
        width: wp,
        pad,
        row_stride: nc,
        col_stride: hp * nc,
    };
    (geo, &scratch.cols_first[..])
}

#[cfg(test)]
mod tests {
    use super::super::boundary::map_tap;
    use super::super::taps::MAX_ORDER;
    use super::*;

    #[test]
    fn filter_inverts_the_b_spline_sampling() {
        // Sampling the fitted spline at the knots must give back the data:
        // for cubic splines data[i] = (c[i-1] + 4 c[i] + c[i+1]) / 6 with the
        // boundary's extension of c.
        let data = [3.0, -1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        let n = data.len() as i64;
        for (b, ext) in [
            (Boundary::Mirror, FillMode::Mirror),
            (Boundary::Reflect, FillMode::Reflect),
            (Boundary::Wrap, FillMode::GridWrap),
        ] {
            let mut c = data;
            filter_lines(&mut c, data.len(), 1, 3, b, &mut [0.0]);
            for i in 0..n {
                let at = |j: i64| c[map_tap(j, data.len(), ext)];
                let v = (at(i - 1) + 4.0 * at(i) + at(i + 1)) / 6.0;
                // scipy's reflect start values are slightly inexact on short
                // lines (reproduced on purpose); mirror and wrap are exact.
                let tol = if b == Boundary::Reflect { 1e-8 } else { 1e-12 };
                assert!((v - data[i as usize]).abs() < tol, "{b:?} {i}: {v}");
            }
        }
    }

    #[test]
    fn lines_side_by_side_filter_like_lines_alone() {
        // Three interleaved lines must come out exactly as each filtered alone.
        let lines = [
            [3.0, -1.0, 4.0, 1.0, 5.0],
            [9.0, 2.0, 6.0, 5.0, 3.0],
            [5.0, 8.0, 9.0, 7.0, 9.0],
        ];
        for order in 2..=MAX_ORDER {
            for b in [Boundary::Mirror, Boundary::Reflect, Boundary::Wrap] {
                let mut side = [0.0; 15];
                for (l, line) in lines.iter().enumerate() {
                    for (k, v) in line.iter().enumerate() {
                        side[k * 3 + l] = *v;
                    }
                }
                filter_lines(&mut side, 5, 3, order, b, &mut [0.0; 3]);
                for (l, line) in lines.iter().enumerate() {
                    let mut alone = *line;
                    filter_lines(&mut alone, 5, 1, order, b, &mut [0.0]);
                    for k in 0..5 {
                        assert_eq!(
                            side[k * 3 + l].to_bits(),
                            alone[k].to_bits(),
                            "{order} {b:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn constant_signals_are_their_own_coefficients() {
        for order in 2..=MAX_ORDER {
            for b in [Boundary::Mirror, Boundary::Reflect, Boundary::Wrap] {
                let mut c = [7.5; 9];
                filter_lines(&mut c, 9, 1, order, b, &mut [0.0]);
                let tol = if b == Boundary::Reflect { 1e-5 } else { 1e-12 };
                assert!(
                    c.iter().all(|&v| (v - 7.5).abs() < tol),
                    "{order} {b:?} {c:?}"
                );
            }
        }
    }
}
