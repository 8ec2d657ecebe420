//! Where scipy reads outside the image: its folding of coordinates and of
//! tap indices back into `[0, n - 1]` for each mode (`map_coordinate` in
//! `ni_interpolation.c`).
//!
//! Everything here mirrors scipy 1.17.1 operation for operation (including its
//! float arithmetic), because order-0 results hinge on which side of a
//! rounding boundary a folded coordinate lands.

use super::mode::FillMode;

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
