//! Order 1 in single precision: the kernel behind Keras' default
//! augmentation (bilinear, `float32`), for channels-last images of 1, 3 or
//! 4 channels and channels-first ones plane by plane.
//!
//! Positions are exact enough to be invisible and only the blend runs in
//! f32, one pixel's channels as the lanes of one 4-wide vector. The error
//! against scipy's f64 result rounded to f32, on 0..255 data, is bounded by
//! a few f32 roundings of values below 256 plus the 24-bit fractions (each
//! within 2^-25 pixel): about 5e-5 at worst, against the spec's 1e-4; the
//! conformance fixtures see one f32 ulp (1.5e-5), random matrices 3e-5.
//!
//! Coordinates are fixed point (40 fractional bits), anchored at source
//! pixel (0, 0) and stepped by the matrix's columns, so a mirrored output
//! (Keras' flips, fused here) holds the very values of the unmirrored one,
//! and the drift across an image stays below 1e-9 pixel. In each output row
//! the columns whose four taps are all inside the image form one interval
//! (the map is affine); it is solved exactly in integers ([`span`]) and run
//! with no clamp and no branch but the loop's ([`stepped`]); on x86-64 CPUs
//! with AVX2, four pixels per step ([`avx2`], to the same bits).
//!
//! The columns outside it depend on the mode. `nearest` clamps the fixed
//! point coordinates to the image, which is exactly the nearest extension,
//! so its whole row stays in fixed point ([`nearest_row`], long clamped
//! runs four pixels per step on AVX2 as well); small images
//! skip even that, through a copy with the edges repeated outward, in which
//! every pixel is interior ([`padded`]). Every other mode
//! first shrinks the interval to where scipy's own coordinates (its sums, in
//! its order, in f64) agree that the taps are inside, then takes the pixels
//! around it through scipy's border rules in the parent module
//! ([`Row::segment`]): the discontinuous modes (`constant`, legacy `wrap`)
//! switch to their border value at exactly the pixels scipy does.
//!
//! Keras' `rescale` can ride along (a multiply of each rounded value, as
//! `standardize` would do it). Loads are 4 lanes wide whatever the channel
//! count: the extra lanes read the next pixel and are discarded. Stores are 4
//! lanes wide too, spilling onto the next output pixel, which is written
//! afterwards (pixels are produced in memory order); where no room is left,
//! at the end of the image, pixels are stored channel by channel. All of it
//! is safe slicing that LLVM turns into plain vector loads and stores.

use super::{Border, Job, Packed};
use crate::augment::FillMode;
use crate::sys::PrefetchTrickle;
use crate::DataFormat;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod padded;

pub(super) use padded::Pad;

#[cfg(target_arch = "x86_64")]
use avx2::Avx2;

/// Off x86-64 there is no vector path: a type with no values.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
enum Avx2 {}

#[cfg(not(target_arch = "x86_64"))]
impl Avx2 {
    fn detect() -> Option<Self> {
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn stepped<const C: usize, const CLAMP: bool>(
        self,
        _: &[f32],
        _: u32,
        _: &mut [f32],
        _: usize,
        _: [i64; 2],
        _: [i64; 2],
        _: [i64; 2],
        _: f32,
    ) {
        match self {}
    }

    fn vectorize<R>(self, _: impl FnOnce() -> R) -> R {
        match self {}
    }
}

#[cfg(test)]
thread_local! {
    /// Set by the tests that hold the vector path to the scalar one.
    static SCALAR_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set by the tests that hold the padded copy to the direct path.
    static UNPADDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The vector path when the CPU has one (and the calling test allows it).
fn vector_path() -> Option<Avx2> {
    #[cfg(test)]
    if SCALAR_ONLY.get() {
        return None;
    }
    Avx2::detect()
}

/// 1.5 · 2^52: adding it to an f64 below 2^51 in magnitude rounds it to an
/// integer, kept in the low bits of the sum, with adds that vectorise on the
/// baseline target (whose float-to-int conversions saturate in software).
const ROUND: f64 = 6_755_399_441_055_744.0;

/// Fractional bits of the fixed-point coordinates.
const FRAC: u32 = 40;

/// The fractions handed to the blend keep the top 24 of those bits (what an
/// f32 holds), rounded: the coordinates carry half of the dropped bits'
/// weight as a bias, so that truncating them rounds.
const DROP: u32 = FRAC - 24;

/// `2^FRAC`.
const ONE: f64 = (1u64 << FRAC) as f64;

/// Largest image side the fixed point holds (coordinates below 2^22).
const MAX_SIDE: usize = 1 << 22;

/// Coordinates beyond this magnitude (or non-finite ones) send the image to
/// the exact path, which owns scipy's handling of absurd matrices. Keras'
/// draws stay within a few image sizes; this keeps every fixed-point value
/// below 2^60.
const SANE: f64 = (1u64 << 20) as f64;

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

/// Whether the image can take the single-precision kernel: at least 2×2,
/// sides the fixed point holds, a tap offset that fits 31 bits, and finite,
/// moderate coordinates at the four corners (the map is affine, so
/// everywhere in between as well).
fn applies(job: &Job<'_, f32>) -> bool {
    let (h, w) = (job.shape.height, job.shape.width);
    if h < 2 || w < 2 || h >= MAX_SIDE || w >= MAX_SIDE || job.input.len() >= 1 << 31 {
        return false;
    }
    let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
    [(0.0, 0.0), (0.0, wm1), (hm1, 0.0), (hm1, wm1)]
        .into_iter()
        .flat_map(|(r, c)| job.m.apply(r, c))
        .all(|v| v.abs() < SANE) // false for NaN
}

/// Bilinear blend of four 4-lane pixels, `f = [fy, fx]`, as lerps (each
/// exact at fraction 0 and, for whole-number data, at fraction 1), times
/// `s` (Keras' `rescale`, applied to the rounded value as `standardize`
/// would; 1 when there is none, an exact no-op).
#[inline(always)]
fn lerp4(p00: &[f32], p01: &[f32], p10: &[f32], p11: &[f32], f: [f32; 2], s: f32) -> [f32; 4] {
    let (fy, fx) = (f[0], f[1]);
    let mut v = [0.0; 4];
    for k in 0..4 {
        let top = p00[k] + (p01[k] - p00[k]) * fx;
        let bot = p10[k] + (p11[k] - p10[k]) * fx;
        v[k] = (top + (bot - top) * fy) * s;
    }
    v
}

/// The same blend channel by channel, reading exactly `C` lanes per tap:
/// for the taps at the very end of the buffer, where 4 lanes do not fit.
#[cold]
#[inline(never)]
fn lerp_edge<const C: usize>(input: &[f32], sr: usize, at: usize, f: [f32; 2], s: f32) -> [f32; 4] {
    let (fy, fx) = (f[0], f[1]);
    let (r0, r1) = (&input[at..at + 2 * C], &input[at + sr..at + sr + 2 * C]);
    let mut v = [0.0; 4];
    for k in 0..C {
        let top = r0[k] + (r0[C + k] - r0[k]) * fx;
        let bot = r1[k] + (r1[C + k] - r1[k]) * fx;
        v[k] = (top + (bot - top) * fy) * s;
    }
    v
}

/// Blends the pixel whose top-left tap is at `at` (an in-range tap) into
/// the first 4 lanes of `out`.
#[inline(always)]
fn put<const C: usize>(out: &mut [f32], input: &[f32], sr: usize, at: usize, f: [f32; 2], s: f32) {
    match input.get(at..at + sr + C + 4) {
        Some(t) => {
            let (r0, r1) = (&t[..C + 4], &t[sr..]);
            out[..4].copy_from_slice(&lerp4(r0, &r0[C..], r1, &r1[C..], f, s));
        }
        None => out[..4].copy_from_slice(&lerp_edge::<C>(input, sr, at, f, s)),
    }
}

/// One output row in a mode other than `nearest`: the source row's part of
/// scipy's sums and the mapping from output column to source column.
struct Row<'a, 'j, const C: usize> {
    job: &'a Job<'j, f32>,
    border: &'a mut Border<'j, f32, Packed<C>>,
    /// `offset + r·a0` for both axes (scipy's first partial sums).
    base: [f64; 2],
    /// `a1` for both axes (the column coefficients).
    a1: [f64; 2],
    /// Source column of output column `j`: `c0 + j·dc`.
    c0: f64,
    dc: f64,
    /// `(h - 1, w - 1)`: the largest coordinate on each axis.
    hi: [f64; 2],
    /// Elements per input row.
    sr: usize,
    /// The factor every value is multiplied by (see [`lerp4`]).
    scale: f32,
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
    fn inside(&self, j: usize) -> bool {
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
    fn segment(&mut self, output: &mut [f32], start: usize, from: usize, to: usize) {
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

/// The tap offset of fixed-point coordinates `p` and the top 24 fractional
/// bits of each axis (exact in f32; the bias of the coordinates makes this
/// truncation round), for [`stepped`].
#[inline(always)]
fn taps<const C: usize, const CLAMP: bool>(
    p: [i64; 2],
    top: [i64; 2],
    last: [i64; 2],
    sr32: u32,
) -> (usize, [f32; 2]) {
    let unit = 1.0 / (1 << 24) as f32;
    let mut i = [0u32; 2];
    let mut f = [0.0f32; 2];
    for k in 0..2 {
        if CLAMP {
            let p = p[k].clamp(0, top[k]);
            let t = p.min(last[k]);
            i[k] = (t >> FRAC) as u32;
            f[k] = ((p - (t & !((1 << FRAC) - 1))) >> DROP) as f32 * unit;
        } else {
            i[k] = (p[k] >> FRAC) as u32;
            f[k] = ((p[k] >> DROP) as u32 & 0xff_ffff) as f32 * unit;
        }
    }
    ((i[0] * sr32 + i[1] * C as u32) as usize, f)
}

/// `count` pixels in memory order from the start of `out`, with fixed-point
/// coordinates `p` stepped by `d`: 4-lane stores while `out` has room, then
/// channel by channel. Without `CLAMP` every first tap must be in
/// `[0, n - 2]` (the interior of a row, see [`span`]); with it, coordinates
/// are clamped to `[0, top]` (`top` = (n - 1) in fixed point), the `nearest`
/// extension, and the first tap stops at `n - 2` with a fraction of up to 1.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the loop's whole state, passed by value
fn stepped<const C: usize, const CLAMP: bool>(
    input: &[f32],
    sr32: u32,
    out: &mut [f32],
    count: usize,
    p: [i64; 2],
    d: [i64; 2],
    top: [i64; 2],
    scale: f32,
) {
    let sr = sr32 as usize;
    let [mut y, mut x] = p;
    let last = [top[0] - (1 << FRAC), top[1] - (1 << FRAC)];
    let taps = move |y: i64, x: i64| taps::<C, CLAMP>([y, x], top, last, sr32);
    let total = out.len();
    let mut rest = &mut *out;
    while rest.len() >= 4 {
        let cur = std::mem::take(&mut rest);
        let (at, f) = taps(y, x);
        put::<C>(cur, input, sr, at, f, scale);
        y += d[0];
        x += d[1];
        rest = &mut cur[C..];
    }
    let done = (total - rest.len()) / C;
    for px in out[done * C..].chunks_exact_mut(C).take(count - done) {
        let (at, f) = taps(y, x);
        px.copy_from_slice(&lerp_edge::<C>(input, sr, at, f, scale)[..C]);
        y += d[0];
        x += d[1];
    }
}

/// [`stepped`] over the interior of a row, out of line so that its loop
/// has the registers to itself.
#[inline(never)]
#[allow(clippy::too_many_arguments)] // stepped's arguments
fn interior<const C: usize>(
    input: &[f32],
    sr32: u32,
    out: &mut [f32],
    count: usize,
    p: [i64; 2],
    d: [i64; 2],
    top: [i64; 2],
    scale: f32,
) {
    stepped::<C, false>(input, sr32, out, count, p, d, top, scale);
}

/// One row in `nearest` mode, all in fixed point: the clamped columns
/// `[0, lo)`, the interior `[lo, hi)`, the clamped `[hi, w)`, in memory
/// order (each part's last 4-lane store spills onto the next part's first
/// pixel). `out` starts at the row and extends as far as 4-lane stores may
/// spill; `p` is the coordinate of column 0. One call per row, out of line.
#[inline(never)]
#[allow(clippy::too_many_arguments)] // stepped's arguments
fn nearest_row<const C: usize>(
    input: &[f32],
    sr32: u32,
    out: &mut [f32],
    [lo, hi]: [usize; 2],
    p: [i64; 2],
    d: [i64; 2],
    top: [i64; 2],
    scale: f32,
    vector: Option<Avx2>,
) {
    let w = sr32 as usize / C;
    let len = out.len();
    let at = |j: usize| [p[0] + j as i64 * d[0], p[1] + j as i64 * d[1]];
    let part = |from: usize, to: usize| from * C..(to * C + 4 - C).min(len);
    if lo > 0 {
        let o = &mut out[part(0, lo)];
        pixels::<C, true>(vector, input, sr32, o, lo, p, d, top, scale);
    }
    if lo < hi {
        let o = &mut out[part(lo, hi)];
        pixels::<C, false>(vector, input, sr32, o, hi - lo, at(lo), d, top, scale);
    }
    if hi < w {
        let o = &mut out[part(hi, w)];
        pixels::<C, true>(vector, input, sr32, o, w - hi, at(hi), d, top, scale);
    }
}

/// The shortest clamped run that takes the vector loop (`Avx2::stepped`):
/// below it, the loop's set-up costs more than it saves (a vector pass over
/// every clamped run measured 3.0 against 2.7 µs per 32×32 image).
const CLAMPED_VECTOR_MIN: usize = 8;

/// [`stepped`] on the vector path when there is one: the interior always,
/// a clamped part from [`CLAMPED_VECTOR_MIN`] pixels on. Otherwise the
/// clamped parts in line and the interior out of line ([`interior`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // stepped's arguments
fn pixels<const C: usize, const CLAMP: bool>(
    vector: Option<Avx2>,
    input: &[f32],
    sr32: u32,
    out: &mut [f32],
    count: usize,
    p: [i64; 2],
    d: [i64; 2],
    top: [i64; 2],
    scale: f32,
) {
    match vector {
        Some(v) if CLAMP && count >= CLAMPED_VECTOR_MIN => {
            v.stepped::<C, true>(input, sr32, out, count, p, d, top, scale)
        }
        _ if CLAMP => stepped::<C, true>(input, sr32, out, count, p, d, top, scale),
        Some(v) => v.stepped::<C, false>(input, sr32, out, count, p, d, top, scale),
        None => interior::<C>(input, sr32, out, count, p, d, top, scale),
    }
}

/// The map in fixed point, in source coordinates (so that a mirrored
/// output holds the very same values): below 2^62 (see `applies`), off by
/// (r + c + 1)·2^-41 pixel at most. The bias makes the truncation to 24
/// fractional bits in [`taps`] round.
struct Fixed {
    /// Coordinates of output row 0's column 0 before the flips.
    origin: [i64; 2],
    /// One source row.
    dr: [i64; 2],
    /// One source column.
    dc: [i64; 2],
    /// The source column of output column 0 (`w - 1` when mirrored).
    c0: i64,
    /// One output column (`-dc` when mirrored).
    step: [i64; 2],
    /// Source row of output row `i`: `i`, or `h - 1 - i` when mirrored.
    flip_v: bool,
    h: usize,
}

impl Fixed {
    fn new(job: &Job<'_, f32>) -> Self {
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
    fn source_row(&self, i: usize) -> usize {
        if self.flip_v {
            self.h - 1 - i
        } else {
            i
        }
    }

    /// The coordinates of output row `i`'s column 0.
    fn row(&self, i: usize) -> [i64; 2] {
        let r = self.source_row(i) as i64;
        [0, 1].map(|k| self.origin[k] + r * self.dr[k] + self.c0 * self.dc[k])
    }
}

/// Order 1 for a packed channels-last image (or one plane) of `C` ≤ 4
/// channels. `padded` is the reusable buffer of [`padded`]'s copy.
fn run<const C: usize>(job: &Job<'_, f32>, output: &mut [f32], scale: f32, padded: &mut Vec<f32>) {
    let vector = vector_path();
    let map = Fixed::new(job);
    let exact = job.mode != FillMode::Nearest;
    if !exact && !unpadded() {
        if let Some(pad) = padded::Pad::fit(job) {
            let input = Some(job.input);
            let none = PrefetchTrickle::default();
            return padded::run::<C>(job, input, output, scale, &map, pad, padded, vector, none);
        }
    }
    let (h, w) = (job.shape.height, job.shape.width);
    let (input, m) = (job.input, job.m);
    // Below 2^31 (see `applies`): tap offsets are computed in u32 and
    // widened, which lets LLVM see that `at + sr + C + 4` cannot wrap.
    let sr32 = (w * C) as u32;
    let sr = sr32 as usize;
    let mut border = Border::new(job, Packed::<C>);
    // Output column j samples source column c0 + j·dc.
    let dc = if job.flips[1] { -1 } else { 1 };
    let dj = map.step;
    let top = [((h - 1) as i64) << FRAC, ((w - 1) as i64) << FRAC];
    let len = output.len();
    for i in 0..h {
        let r = map.source_row(i);
        let p = map.row(i);
        // The columns whose fixed-point first taps are in [0, n - 2] on both
        // axes, solved exactly in integers.
        let ((lo_y, hi_y), (lo_x, hi_x)) =
            (span(p[0], dj[0], top[0], w), span(p[1], dj[1], top[1], w));
        let lo = lo_y.max(lo_x);
        let mut hi = hi_y.min(hi_x).max(lo);
        let mut lo = lo;
        let start = i * w * C;
        let row_out = &mut output[start..(start + w * C + 4 - C).min(len)];
        if !exact {
            nearest_row::<C>(input, sr32, row_out, [lo, hi], p, dj, top, scale, vector);
            continue;
        }
        let mut row = Row::<C> {
            job,
            border: &mut border,
            base: [
                m.offset[0] + r as f64 * m.a[0][0],
                m.offset[1] + r as f64 * m.a[1][0],
            ],
            a1: [m.a[0][1], m.a[1][1]],
            c0: map.c0 as f64,
            dc: dc as f64,
            hi: [(h - 1) as f64, (w - 1) as f64],
            sr,
            scale,
        };
        // The discontinuous modes switch to their border where scipy's own
        // coordinates do: the interval shrinks to where scipy agrees.
        while lo < hi && !row.inside(lo) {
            lo += 1;
        }
        while hi > lo && !row.inside(hi - 1) {
            hi -= 1;
        }
        row.segment(output, start, 0, lo);
        if lo < hi {
            let out = &mut output[start + lo * C..(start + hi * C + 4 - C).min(len)];
            let first = [p[0] + lo as i64 * dj[0], p[1] + lo as i64 * dj[1]];
            pixels::<C, false>(vector, input, sr32, out, hi - lo, first, dj, top, scale);
        }
        row.segment(output, start, hi, w);
    }
}

/// Whether a test has turned the padded copy off.
fn unpadded() -> bool {
    #[cfg(test)]
    if UNPADDED.get() {
        return true;
    }
    false
}

/// The columns `j` in `[0, w)` with `0 <= p + j·d < top`, as a range (empty
/// when `lo >= hi`): the solution of two linear inequalities in integers.
#[inline(always)]
fn span(p: i64, d: i64, top: i64, w: usize) -> (usize, usize) {
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

/// Runs order 1 in single precision when the image qualifies (see
/// [`applies`]) and the layout has a kernel (channels-last with 1, 3 or 4
/// channels; channels-first plane by plane); `false` leaves the image to the
/// exact path.
pub(super) fn linear_f32(
    job: &Job<'_, f32>,
    output: &mut [f32],
    scale: f32,
    padded: &mut Vec<f32>,
) -> bool {
    if !applies(job) {
        return false;
    }
    let shape = job.shape;
    let packed = shape.format == DataFormat::ChannelsLast || shape.channels == 1;
    match (packed, shape.channels) {
        (true, 1) => run::<1>(job, output, scale, padded),
        (true, 3) => run::<3>(job, output, scale, padded),
        (true, 4) => run::<4>(job, output, scale, padded),
        (true, _) => return false,
        (false, _) => {
            let plane = shape.height * shape.width;
            let one = crate::ImageShape::hwc(shape.height, shape.width, 1);
            for (src, dst) in job
                .input
                .chunks_exact(plane)
                .zip(output.chunks_exact_mut(plane))
            {
                let job = Job {
                    input: src,
                    shape: one,
                    ..*job
                };
                run::<1>(&job, dst, scale, padded);
            }
        }
    }
    true
}

/// The copy [`linear_f32`] takes this image through when it takes one
/// (`nearest` mode, a small image of 1, 3 or 4 packed channels: see
/// [`padded`]), so that a caller can read the image straight into it
/// ([`padded::Pad::placement`]) and call [`linear_f32_read`]. `job.input`
/// is not looked at.
pub(super) fn read_pad(job: &Job<'_, f32>) -> Option<padded::Pad> {
    let shape = job.shape;
    let packed = shape.format == DataFormat::ChannelsLast || shape.channels == 1;
    let kernel = packed && matches!(shape.channels, 1 | 3 | 4);
    if !kernel || job.mode != FillMode::Nearest || unpadded() || !applies(job) {
        return None;
    }
    padded::Pad::fit(job)
}

/// [`linear_f32`] of the image the caller has read into `padded` where
/// `pad` (from [`read_pad`] for this job) places it; `job.input` is not
/// looked at. The same values as [`linear_f32`] on the image. `trickle`:
/// lines to prefetch for the next sample while this one is resampled.
pub(super) fn linear_f32_read(
    job: &Job<'_, f32>,
    pad: padded::Pad,
    output: &mut [f32],
    scale: f32,
    padded: &mut Vec<f32>,
    trickle: PrefetchTrickle,
) {
    let (map, vector) = (Fixed::new(job), vector_path());
    let t = trickle;
    match job.shape.channels {
        1 => padded::run::<1>(job, None, output, scale, &map, pad, padded, vector, t),
        3 => padded::run::<3>(job, None, output, scale, &map, pad, padded, vector, t),
        _ => padded::run::<4>(job, None, output, scale, &map, pad, padded, vector, t),
    }
}

#[cfg(test)]
mod tests;
