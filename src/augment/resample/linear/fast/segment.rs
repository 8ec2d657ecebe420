//! The columns of a row around its interior in modes other than `nearest`,
//! by scipy's own coordinates and border rules.

use super::scalar::{lerp_edge, put};
use crate::augment::resample::linear::border::Border;
use crate::augment::resample::linear::channels::Packed;
use crate::augment::resample::linear::job::Job;
use crate::augment::resample::mode::FillMode;

/// 1.5 · 2^52: adding it to an f64 below 2^51 in magnitude rounds it to an
/// integer, kept in the low bits of the sum, with adds that vectorise on the
/// baseline target (whose float-to-int conversions saturate in software).
const ROUND: f64 = 6_755_399_441_055_744.0;

/// `floor(t)` for |t| < 2^51: round, then step down if above.
#[inline(always)]
fn floor_small(t: f64) -> f64 {
    let r = (t + ROUND) - ROUND;
    r - if r > t { 1.0 } else { 0.0 }
}

/// `max(a, b)` as a single `maxsd` (b when either is NaN).
#[inline(always)]
fn fmax(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

/// `min(a, b)` as a single `minsd` (b when either is NaN).
#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// One output row in a mode other than `nearest`: the source row's part of
/// scipy's sums and the mapping from output column to source column.
pub(super) struct Row<'a, 'j, const C: usize> {
    pub(super) job: &'a Job<'j, f32>,
    pub(super) border: &'a mut Border<'j, f32, Packed<C>>,
    /// `offset + r·a0` for both axes (scipy's first partial sums).
    pub(super) base: [f64; 2],
    /// `a1` for both axes (the column coefficients).
    pub(super) a1: [f64; 2],
    /// Source column of output column `j`: `c0 + j·dc`.
    pub(super) c0: f64,
    pub(super) dc: f64,
    /// `(h - 1, w - 1)`: the largest coordinate on each axis.
    pub(super) hi: [f64; 2],
    /// Elements per input row.
    pub(super) sr: usize,
    /// The factor every value is multiplied by (see `scalar::lerp4`).
    pub(super) scale: f32,
}

impl<const C: usize> Row<'_, '_, C> {
    /// scipy's coordinate for output column `j`: `(offset + r·a0) + c·a1`.
    #[inline(always)]
    fn coord(&self, j: usize) -> [f64; 2] {
        let c = self.c0 + j as f64 * self.dc;
        [self.base[0] + c * self.a1[0], self.base[1] + c * self.a1[1]]
    }

    /// Whether all four taps of output column `j` are inside the image, by
    /// scipy's coordinate (the exact path's test; NaN fails it).
    pub(super) fn inside(&self, j: usize) -> bool {
        let v = self.coord(j);
        (v[0] >= 0.0) & (v[0] < self.hi[0]) & (v[1] >= 0.0) & (v[1] < self.hi[1])
    }

    /// The element offset of the top-left tap of `v` and the fractions
    /// `[fy, fx]` towards the next row and column, for a coordinate that is
    /// [`Row::inside`] (clamped anyway, so that no input can index out of
    /// the image).
    #[inline(always)]
    fn locate(&self, v: [f64; 2]) -> (usize, [f32; 2]) {
        let mut vc = [0.0; 2];
        let mut fl = [0.0; 2];
        for k in 0..2 {
            vc[k] = fmin(fmax(v[k], 0.0), self.hi[k]);
            fl[k] = floor_small(fmin(vc[k], self.hi[k] - 1.0));
        }
        // Whole numbers below 2^31: the sum is exact, and so is its read-out.
        let at = fl[0] * self.sr as f64 + fl[1] * C as f64;
        let f = [(vc[0] - fl[0]) as f32, (vc[1] - fl[1]) as f32];
        ((at + ROUND).to_bits() as u32 as usize, f)
    }

    /// Output column `j` by scipy's border rules (the exact path), scaled.
    /// `constant`'s commonest case, a coordinate outside `[0, n - 1]` on
    /// either axis, is answered here: `cval` whatever the taps.
    #[inline(always)]
    fn border_pixel(&mut self, j: usize) -> [f32; 4] {
        let v = self.coord(j);
        let out = (v[0] < 0.0) | (v[0] > self.hi[0]) | (v[1] < 0.0) | (v[1] > self.hi[1]);
        if self.job.mode == FillMode::Constant && out {
            return [self.job.cval as f32 * self.scale; 4];
        }
        self.border_exact(v)
    }

    /// [`Row::border_pixel`] through the parent module's rules.
    #[inline(never)]
    fn border_exact(&mut self, v: [f64; 2]) -> [f32; 4] {
        let mut px = [0.0; 4];
        self.border.pixel::<true>(&mut px, v[0], v[1], 0);
        px.map(|v| v * self.scale)
    }

    /// Output columns `[from, to)` of the row starting at element `start`,
    /// in a mode other than `nearest`, from scipy's coordinates: the blend
    /// for pixels inside (those the fixed-point interval missed by a
    /// rounding), scipy's border rules for the others.
    pub(super) fn segment(&mut self, output: &mut [f32], start: usize, from: usize, to: usize) {
        let input = self.job.input;
        // Below 2^31 (see `applies`): widened from u32, so that LLVM sees
        // that `at + sr + C + 4` cannot wrap.
        let sr = self.sr as u32 as usize;
        // 4-lane stores while there is room (the spill lands on the next
        // pixel, written later), then channel by channel.
        let end = (start + to * C + 4 - C).min(output.len());
        let mut rest = &mut output[start + from * C..end];
        let mut j = from;
        while rest.len() >= 4 {
            let cur = std::mem::take(&mut rest);
            if self.inside(j) {
                let (at, f) = self.locate(self.coord(j));
                put::<C>(cur, input, sr, at, f, self.scale);
            } else {
                cur[..4].copy_from_slice(&self.border_pixel(j));
            }
            rest = &mut cur[C..];
            j += 1;
        }
        for j in j..to {
            let v = self.coord(j);
            let px = if self.inside(j) {
                let (at, f) = self.locate(v);
                lerp_edge::<C>(input, sr, at, f, self.scale)
            } else {
                self.border_pixel(j)
            };
            let at = start + j * C;
            output[at..at + C].copy_from_slice(&px[..C]);
        }
    }
}
