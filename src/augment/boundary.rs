//! Where scipy reads outside the image: its coordinate folding
//! (`map_coordinate` in `ni_interpolation.c`) and the placement of the
//! interpolation taps along one axis.
//!
//! Everything here mirrors scipy 1.17.1 operation for operation (including its
//! float arithmetic), because order-0 results hinge on which side of a
//! rounding boundary a folded coordinate lands.

use super::spline;
use super::FillMode;

/// Largest supported spline order; taps per axis are `order + 1`.
pub(crate) const MAX_ORDER: usize = 5;

/// 2^52: every f64 at least this large in magnitude is a whole number.
const WHOLE: f64 = 4_503_599_627_370_496.0;

/// `x.trunc()`, inline: the baseline x86-64 target has no rounding
/// instruction, so the std version is a libm call per tap. Exact for every
/// input (a round trip through i64 is exact below 2^52; above, `x` is whole).
#[inline(always)]
pub(crate) fn trunc(x: f64) -> f64 {
    if x.abs() < WHOLE {
        x as i64 as f64
    } else {
        x
    }
}

/// `x.floor()`, inline (see [`trunc`]); may return +0 for -0, which no
/// caller can observe.
#[inline(always)]
pub(crate) fn floor(x: f64) -> f64 {
    let t = trunc(x);
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// scipy's `map_coordinate`: folds a coordinate lying outside `[0, n-1]` back
/// into the image according to `mode`. Constant mode answers `-1.0` for any
/// coordinate outside (scipy's signal for "the whole output pixel is cval",
/// with no blending at the border). Nearest clamps. Grid-constant is returned
/// unchanged: scipy never folds its coordinates (its taps read cval instead).
///
/// The periodic reductions are done in f64 rather than through scipy's integer
/// casts; the two agree whenever the product fits in 53 bits, and f64 cannot
/// overflow on absurd coordinates.
#[inline]
pub(crate) fn map_coordinate(x: f64, n: usize, mode: FillMode) -> f64 {
    let len = n as f64;
    if x < 0.0 {
        match mode {
            FillMode::Mirror => {
                if n <= 1 {
                    return 0.0;
                }
                let s2 = 2.0 * len - 2.0;
                let x = s2 * trunc(-x / s2) + x;
                if x <= 1.0 - len {
                    x + s2
                } else {
                    -x
                }
            }
            FillMode::Reflect | FillMode::GridMirror => {
                if n <= 1 {
                    return 0.0;
                }
                let s2 = 2.0 * len;
                let x = if x < -s2 { s2 * trunc(-x / s2) + x } else { x };
                if x < -len {
                    x + s2
                } else {
                    // scipy nudges values within 1e-15 of zero so that `-x - 1`
                    // cannot round to exactly -1 (which would read as "outside").
                    (if x > -1e-15 { 1e-15 } else { -x }) - 1.0
                }
            }
            FillMode::Wrap => {
                if n <= 1 {
                    return 0.0;
                }
                let s = len - 1.0;
                x + s * (trunc(-x / s) + 1.0)
            }
            FillMode::GridWrap => {
                if n <= 1 {
                    return 0.0;
                }
                x + len * (trunc((-1.0 - x) / len) + 1.0)
            }
            FillMode::Nearest => 0.0,
            FillMode::Constant => -1.0,
            FillMode::GridConstant => x,
        }
    } else if x > len - 1.0 {
        match mode {
            FillMode::Mirror => {
                if n <= 1 {
                    return 0.0;
                }
                let s2 = 2.0 * len - 2.0;
                let x = x - s2 * trunc(x / s2);
                if x >= len {
                    s2 - x
                } else {
                    x
                }
            }
            FillMode::Reflect | FillMode::GridMirror => {
                if n <= 1 {
                    return 0.0;
                }
                let s2 = 2.0 * len;
                let x = x - s2 * trunc(x / s2);
                if x >= len {
                    s2 - x - 1.0
                } else {
                    x
                }
            }
            FillMode::Wrap => {
                if n <= 1 {
                    return 0.0;
                }
                let s = len - 1.0;
                x - s * trunc(x / s)
            }
            FillMode::GridWrap => {
                if n <= 1 {
                    return 0.0;
                }
                x - len * trunc(x / len)
            }
            FillMode::Nearest => len - 1.0,
            FillMode::Constant => -1.0,
            FillMode::GridConstant => x,
        }
    } else {
        x
    }
}

/// Folds one integer tap index into `[0, n-1]`. scipy folds taps with the
/// mode's own extension, except that constant and (legacy) wrap fold them by
/// whole-sample mirroring: those modes have no matching exact prefilter, so
/// scipy fits and reads their splines as mirror-extended.
///
/// `n` must be at least 1. The final clamp never changes a result scipy
/// produces; it only guarantees an in-bounds index for non-finite or absurd
/// inputs, where scipy itself has undefined behaviour.
#[inline]
pub(crate) fn map_tap(i: i64, n: usize, mode: FillMode) -> usize {
    let m = match mode {
        FillMode::Constant | FillMode::Wrap => FillMode::Mirror,
        other => other,
    };
    let v = map_coordinate(i as f64, n, m) as i64;
    v.clamp(0, n as i64 - 1) as usize
}

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
        spline::weights(cc, order, &mut taps.w);
    }
    true
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
}
