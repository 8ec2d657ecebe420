//! The taps of one axis for one output pixel: where they are (folded into
//! the image by the mode's rules) and their B-spline weights
//! (`get_spline_interpolation_weights` in scipy's `ni_splines.c`).
//!
//! Everything here mirrors scipy 1.17.1 operation for operation (including its
//! float arithmetic), because order-0 results hinge on which side of a
//! rounding boundary a folded coordinate lands.

use super::boundary::{floor, map_coordinate, map_tap};
use super::mode::FillMode;

/// Largest supported spline order; taps per axis are `order + 1`.
pub(crate) const MAX_ORDER: usize = 5;

/// The taps of one axis for one output pixel: `order + 1` indices, their
/// B-spline weights, and (grid-constant only) which taps fall outside and read
/// `cval`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AxisTaps {
    /// Folded tap indices along the axis (only the first `order + 1` are used).
    pub idx: [usize; MAX_ORDER + 1],
    /// Interpolation weights (unused for order 0).
    pub w: [f64; MAX_ORDER + 1],
    /// Grid-constant: the tap lies outside the array and reads `cval`.
    pub outside: [bool; MAX_ORDER + 1],
}

/// Places the taps of one axis for input coordinate `coord` on an array axis
/// of length `n` (>= 1) that was pre-padded by `pad` samples on each side.
/// Returns `false` when scipy fills the whole output pixel with `cval`.
///
/// A non-finite coordinate also yields `false` (cval) for every mode: scipy
/// does so for the folded modes (NaN fails its `> -1` test) and has undefined
/// behaviour for nearest and grid-constant, so we pick the predictable answer.
///
/// Always inlined so that callers with a constant `order` get the tap loop
/// unrolled and the weight formula selected at compile time.
#[inline(always)]
pub(crate) fn axis_taps(
    coord: f64,
    n: usize,
    pad: usize,
    order: usize,
    mode: FillMode,
    taps: &mut AxisTaps,
) -> bool {
    if !coord.is_finite() {
        return false;
    }
    let mut cc = coord + pad as f64;
    let free = matches!(mode, FillMode::Nearest | FillMode::GridConstant);
    if !free {
        cc = map_coordinate(cc, n, mode);
        // Reflect may fold into (-1, 0): still interpolated, from tap -1 folded.
        if cc <= -1.0 {
            return false;
        }
    }
    let centre = if order & 1 == 1 {
        floor(cc)
    } else {
        floor(cc + 0.5)
    };
    // `as` saturates, and the saturating adds below keep absurd coordinates
    // (nearest / grid-constant are not folded) from overflowing.
    let start = (centre as i64).saturating_sub((order / 2) as i64);
    let len = n as i64;
    for l in 0..=order {
        let i = start.saturating_add(l as i64);
        if mode == FillMode::GridConstant {
            let out = i < 0 || i >= len;
            taps.outside[l] = out;
            taps.idx[l] = if out { 0 } else { i as usize };
        } else {
            taps.outside[l] = false;
            taps.idx[l] = if (0..len).contains(&i) {
                i as usize
            } else {
                map_tap(i, n, mode)
            };
        }
    }
    if order > 0 {
        weights(cc, order, &mut taps.w);
    }
    true
}

/// Fills `w[..=order]` with the B-spline weights of the `order + 1` taps
/// nearest to `x` (scipy's `get_spline_interpolation_weights`). The last
/// weight is `1 - Σ others`, as in scipy, so they sum to one exactly in
/// the same way.
///
/// `order` must be in `1..=5`; other values leave `w` untouched.
#[inline(always)]
pub(crate) fn weights(x: f64, order: usize, w: &mut [f64; MAX_ORDER + 1]) {
    // Distance to the middle knot: in [0, 1) for odd orders, (-0.5, 0.5] for even.
    let x = x - if order & 1 == 1 {
        floor(x)
    } else {
        floor(x + 0.5)
    };
    let z = 1.0 - x;
    match order {
        1 => w[0] = 1.0 - x,
        2 => {
            w[1] = 0.75 - x * x;
            let y = 0.5 - x;
            w[0] = 0.5 * y * y;
        }
        3 => {
            let y = x;
            w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
            w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
            w[0] = z * z * z / 6.0;
        }
        4 => {
            let t = x * x;
            w[2] = t * (t * 0.25 - 0.625) + 115.0 / 192.0;
            let y = 1.0 + x;
            w[1] = y * (y * (y * (5.0 - y) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0;
            w[3] = z * (z * (z * (5.0 - z) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0;
            let y = 0.5 - x;
            let t = y * y;
            w[0] = t * t / 24.0;
        }
        5 => {
            let y = x;
            let t = y * y;
            w[2] = t * (t * (0.25 - y / 12.0) - 0.5) + 0.55;
            let t = z * z;
            w[3] = t * (t * (0.25 - z / 12.0) - 0.5) + 0.55;
            let y = y + 1.0;
            w[1] = y * (y * (y * (y * (y / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425;
            let z = z + 1.0;
            w[4] = z * (z * (z * (z * (z / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425;
            let y = 1.0 - x;
            let t = y * y;
            w[0] = y * t * t / 120.0;
        }
        _ => return,
    }
    let mut last = 1.0;
    for wi in &w[..order] {
        last -= wi;
    }
    w[order] = last;
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [FillMode; 8] = FillMode::ALL;

    /// The sample read by order 0 at integer coordinate `x` on `[a b c d]`
    /// (`None` = cval), as scipy 1.17.1 answers
    /// `affine_transform([0,1,2,3], [1.0], offset=-4, output_shape=(12,), order=0, mode=m)`.
    fn order0(x: f64, n: usize, mode: FillMode) -> Option<usize> {
        let mut t = AxisTaps::default();
        if axis_taps(x, n, 0, 0, mode, &mut t) && !t.outside[0] {
            Some(t.idx[0])
        } else {
            None
        }
    }

    #[test]
    fn extension_tables_match_scipy_for_n4() {
        let k = None;
        let (a, b, c, d) = (Some(0), Some(1), Some(2), Some(3));
        let table: [(FillMode, [Option<usize>; 12]); 8] = [
            // scipy's "constant" treats anything beyond n-1 as outside, even 3 + 1e-9.
            (FillMode::Constant, [k, k, k, k, a, b, c, d, k, k, k, k]),
            (FillMode::GridConstant, [k, k, k, k, a, b, c, d, k, k, k, k]),
            (FillMode::Nearest, [a, a, a, a, a, b, c, d, d, d, d, d]),
            (FillMode::Reflect, [d, c, b, a, a, b, c, d, d, c, b, a]),
            (FillMode::GridMirror, [d, c, b, a, a, b, c, d, d, c, b, a]),
            (FillMode::Mirror, [c, d, c, b, a, b, c, d, c, b, a, b]),
            (FillMode::GridWrap, [a, b, c, d, a, b, c, d, a, b, c, d]),
            // Legacy wrap has period n-1: the first and last samples coincide.
            (FillMode::Wrap, [c, d, b, c, a, b, c, d, b, c, a, b]),
        ];
        for (mode, want) in table {
            for (i, w) in want.iter().enumerate() {
                let x = i as f64 - 4.0;
                assert_eq!(order0(x, 4, mode), *w, "{mode:?} at {x}");
            }
        }
    }

    #[test]
    fn constant_is_cval_just_outside_and_grid_constant_blends() {
        let mut t = AxisTaps::default();
        assert!(!axis_taps(-1e-12, 4, 0, 1, FillMode::Constant, &mut t));
        assert!(!axis_taps(3.0 + 1e-12, 4, 0, 1, FillMode::Constant, &mut t));
        assert!(axis_taps(3.0, 4, 0, 1, FillMode::Constant, &mut t));
        assert!(axis_taps(-0.25, 4, 0, 1, FillMode::GridConstant, &mut t));
        assert_eq!((t.outside[0], t.outside[1]), (true, false));
        assert_eq!((t.w[0], t.w[1]), (0.25, 0.75));
    }

    #[test]
    fn single_sample_axes_map_to_zero() {
        for mode in ALL {
            if matches!(mode, FillMode::Constant | FillMode::GridConstant) {
                continue;
            }
            for x in [-7.3, -0.5, 0.0, 0.4, 3.9] {
                for order in 0..=MAX_ORDER {
                    let mut t = AxisTaps::default();
                    assert!(axis_taps(x, 1, 0, order, mode, &mut t));
                    assert!(
                        t.idx[..=order].iter().all(|&i| i == 0),
                        "{mode:?} {x} {order}"
                    );
                }
            }
        }
    }

    #[test]
    fn absurd_coordinates_stay_in_bounds() {
        for mode in ALL {
            for x in [
                f64::NAN,
                f64::INFINITY,
                -f64::INFINITY,
                1e300,
                -1e300,
                9.2e18,
                -9.2e18,
            ] {
                for n in [1, 2, 7] {
                    for order in 0..=MAX_ORDER {
                        let mut t = AxisTaps::default();
                        if axis_taps(x, n, 12, order, mode, &mut t) {
                            assert!(t.idx[..=order].iter().all(|&i| i < n));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn taps_fold_with_the_spline_mode() {
        // Order 3 at 0.5 on n = 5 needs tap -1: mirror for constant and wrap,
        // half-sample for reflect, periodic for grid-wrap, edge for nearest.
        let cases = [
            (FillMode::Constant, 1),
            (FillMode::Wrap, 1),
            (FillMode::Mirror, 1),
            (FillMode::Reflect, 0),
            (FillMode::GridMirror, 0),
            (FillMode::GridWrap, 4),
            (FillMode::Nearest, 0),
        ];
        for (mode, want) in cases {
            let mut t = AxisTaps::default();
            assert!(axis_taps(0.5, 5, 0, 3, mode, &mut t));
            assert_eq!(t.idx[..4], [want, 0, 1, 2], "{mode:?}");
        }
    }

    #[test]
    fn weights_sum_to_one_and_are_symmetric() {
        for order in 1..=MAX_ORDER {
            for &x in &[0.0, 0.1, 0.25, 0.5, 0.75, 3.3, -2.6] {
                let mut w = [0.0; MAX_ORDER + 1];
                weights(x, order, &mut w);
                let s: f64 = w[..=order].iter().sum();
                assert!((s - 1.0).abs() < 1e-14, "order {order} x {x}: {w:?}");
                assert!(w[..=order].iter().all(|&v| v >= -1e-15));
            }
            // At a knot (odd orders) the weights are the symmetric B-spline values.
            let mut w = [0.0; MAX_ORDER + 1];
            weights(2.0, order, &mut w);
            if order == 3 {
                assert!((w[0] - 1.0 / 6.0).abs() < 1e-15 && (w[1] - 2.0 / 3.0).abs() < 1e-15);
                assert!(w[3].abs() < 1e-15);
            }
        }
    }
}
