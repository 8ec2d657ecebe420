//! Order 1's row plan: the coordinates, taps and weights of a whole output
//! row in one branch-free pass, with float-to-integer steps that vectorise
//! on the baseline x86-64 target.

use crate::augment::matrix::Affine2;

/// 2^52: adding and subtracting it rounds an f64 of magnitude below 2^51 to
/// an integer, and leaves a non-negative integer below 2^32 in the low bits.
const MAGIC: f64 = 4_503_599_627_370_496.0;

/// `floor(v)` for |v| < 2^51 with plain adds and a compare, which vectorise on
/// the baseline target (its float-to-int conversions do not). Exact: the
/// round-to-nearest result is at most 0.5 away, so stepping down when it
/// overshoots gives the floor, ties included. Garbage beyond 2^51 or for
/// non-finite `v`, where callers do not use it.
#[inline(always)]
fn floor_small(v: f64) -> f64 {
    let r = (v + MAGIC) - MAGIC;
    r - if r > v { 1.0 } else { 0.0 }
}

/// The integer value of a whole `v` in `[0, 2^32)`, read from the bits of
/// `v + 2^52` (a vectorisable reinterpretation instead of a conversion).
#[inline(always)]
fn small_to_u32(v: f64) -> u32 {
    (v + MAGIC).to_bits() as u32
}

/// Per-row scratch for order 1: the coordinates, integer taps, weights and
/// interior flags of every output pixel of one row, computed in a first,
/// branch-free pass (done pixel by pixel, the float-to-int conversions and
/// weights cost more than the blend itself).
#[derive(Debug, Default)]
pub(crate) struct RowPlan {
    col: Vec<f64>,
    pub y: Vec<f64>,
    pub x: Vec<f64>,
    pub iy: Vec<u32>,
    pub ix: Vec<u32>,
    pub wy: Vec<f64>,
    pub wx: Vec<f64>,
    pub inside: Vec<bool>,
}

impl RowPlan {
    pub(crate) fn reset(&mut self, w: usize) {
        if self.col.len() != w {
            self.col.clear();
            self.col.extend((0..w).map(|c| c as f64));
            for v in [&mut self.y, &mut self.x, &mut self.wy, &mut self.wx] {
                v.resize(w, 0.0);
            }
            self.iy.resize(w, 0);
            self.ix.resize(w, 0);
            self.inside.resize(w, false);
        }
    }

    /// Plans row `r` for order 1. Coordinates are summed as scipy does
    /// (`offset + r·a0 + c·a1`, left to right). A pixel is "inside" when both
    /// taps of both axes are within the image, so no boundary rule applies;
    /// its taps are then `iy, iy + 1` / `ix, ix + 1` with weights
    /// `wy, 1 - wy` / `wx, 1 - wx` (scipy's `1 - t` and `1 - (1 - t)`).
    #[inline(always)]
    pub(crate) fn plan(&mut self, m: &Affine2, r: usize, h: usize, w: usize) {
        let rf = r as f64;
        let (y0, x0) = (m.offset[0] + rf * m.a[0][0], m.offset[1] + rf * m.a[1][0]);
        let (ay, ax) = (m.a[0][1], m.a[1][1]);
        let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
        let n = w.min(self.col.len());
        let (col, ys, xs) = (&self.col[..n], &mut self.y[..n], &mut self.x[..n]);
        let (iy, ix, wy, wx, inside) = (
            &mut self.iy[..n],
            &mut self.ix[..n],
            &mut self.wy[..n],
            &mut self.wx[..n],
            &mut self.inside[..n],
        );
        for c in 0..n {
            let y = y0 + col[c] * ay;
            let x = x0 + col[c] * ax;
            ys[c] = y;
            xs[c] = x;
            let (fy, fx) = (floor_small(y), floor_small(x));
            iy[c] = small_to_u32(fy);
            ix[c] = small_to_u32(fx);
            wy[c] = 1.0 - (y - fy);
            wx[c] = 1.0 - (x - fx);
            // Non-short-circuit `&` keeps the loop branch-free; NaN fails.
            inside[c] = (y >= 0.0) & (y < hm1) & (x >= 0.0) & (x < wm1);
        }
    }
}
