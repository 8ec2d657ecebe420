//! The single-precision kernel's coordinates in fixed point: the map from
//! output pixels to source coordinates, and the interval of a row whose taps
//! are all inside the image.

use crate::augment::resample::linear::job::Job;

/// Fractional bits of the fixed-point coordinates.
pub(super) const FRAC: u32 = 40;

/// The fractions handed to the blend keep the top 24 of those bits (what an
/// f32 holds), rounded: the coordinates carry half of the dropped bits'
/// weight as a bias, so that truncating them rounds.
pub(super) const DROP: u32 = FRAC - 24;

/// `2^FRAC`.
pub(super) const ONE: f64 = (1u64 << FRAC) as f64;

/// The map in fixed point, in source coordinates (so that a mirrored
/// output holds the very same values): below 2^62 (see `applies`), off by
/// (r + c + 1)·2^-41 pixel at most. The bias makes the truncation to 24
/// fractional bits in `scalar::taps` round.
pub(super) struct Fixed {
    /// Coordinates of output row 0's column 0 before the flips.
    origin: [i64; 2],
    /// One source row.
    dr: [i64; 2],
    /// One source column.
    dc: [i64; 2],
    /// The source column of output column 0 (`w - 1` when mirrored).
    pub(super) c0: i64,
    /// One output column (`-dc` when mirrored).
    pub(super) step: [i64; 2],
    /// Source row of output row `i`: `i`, or `h - 1 - i` when mirrored.
    flip_v: bool,
    h: usize,
}

impl Fixed {
    pub(super) fn new(job: &Job<'_, f32>) -> Self {
        let (h, w) = (job.shape.height, job.shape.width);
        let m = job.m;
        let [flip_v, flip_h] = job.flips;
        let fixed = |v: f64| (v * ONE) as i64;
        let bias = 1 << (DROP - 1);
        let dc = [fixed(m.a[0][1]), fixed(m.a[1][1])];
        Fixed {
            origin: m.apply(0.0, 0.0).map(|v| fixed(v) + bias),
            dr: [fixed(m.a[0][0]), fixed(m.a[1][0])],
            dc,
            c0: if flip_h { w as i64 - 1 } else { 0 },
            step: if flip_h { dc.map(|d| -d) } else { dc },
            flip_v,
            h,
        }
    }

    /// The source row of output row `i`.
    pub(super) fn source_row(&self, i: usize) -> usize {
        if self.flip_v {
            self.h - 1 - i
        } else {
            i
        }
    }

    /// The coordinates of output row `i`'s column 0.
    pub(super) fn row(&self, i: usize) -> [i64; 2] {
        let r = self.source_row(i) as i64;
        [0, 1].map(|k| self.origin[k] + r * self.dr[k] + self.c0 * self.dc[k])
    }
}

/// The columns `j` in `[0, w)` with `0 <= p + j·d < top`, as a range (empty
/// when `lo >= hi`): the solution of two linear inequalities in integers.
#[inline(always)]
pub(super) fn span(p: i64, d: i64, top: i64, w: usize) -> (usize, usize) {
    // floor(a / b) for b > 0.
    let floor_div = |a: i64, b: i64| a.div_euclid(b);
    let (lo, hi) = match d.signum() {
        0 if (0..top).contains(&p) => return (0, w),
        0 => return (0, 0),
        // j >= ceil(-p / d) and j < ceil((top - p) / d).
        1 => (-floor_div(p, d), -floor_div(p - top, d)),
        // j > (p - top) / |d| and j <= p / |d|.
        _ => (floor_div(p - top, -d) + 1, floor_div(p, -d) + 1),
    };
    let clamp = |v: i64| v.clamp(0, w as i64) as usize;
    (clamp(lo), clamp(hi))
}
