//! The portable loop of the single-precision kernel: a run of output pixels
//! from fixed-point coordinates, one pixel's channels as one 4-lane blend.

use super::fixed::{DROP, FRAC};

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
pub(super) fn lerp_edge<const C: usize>(
    input: &[f32],
    sr: usize,
    at: usize,
    f: [f32; 2],
    s: f32,
) -> [f32; 4] {
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
pub(super) fn put<const C: usize>(
    out: &mut [f32],
    input: &[f32],
    sr: usize,
    at: usize,
    f: [f32; 2],
    s: f32,
) {
    match input.get(at..at + sr + C + 4) {
        Some(t) => {
            let (r0, r1) = (&t[..C + 4], &t[sr..]);
            out[..4].copy_from_slice(&lerp4(r0, &r0[C..], r1, &r1[C..], f, s));
        }
        None => out[..4].copy_from_slice(&lerp_edge::<C>(input, sr, at, f, s)),
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

/// The image a run of pixels samples (the input, or its edge-replicated
/// copy), with what every pixel of the run needs to sample it. The loops
/// copy its fields into locals before they start.
#[derive(Clone, Copy)]
pub(super) struct Sampled<'a> {
    /// The elements, channels-last.
    pub input: &'a [f32],
    /// Elements per row, below 2^31 (see `applies`): tap offsets are
    /// computed in u32 and widened, which lets LLVM see that
    /// `at + sr + C + 4` cannot wrap.
    pub sr32: u32,
    /// The largest coordinate of each axis, `n - 1` in fixed point (where
    /// `nearest` clamps).
    pub top: [i64; 2],
    /// The factor every value is multiplied by (see [`lerp4`]).
    pub scale: f32,
}

/// `count` output pixels in memory order, the first at fixed-point
/// coordinates `p`, each next one `d` further.
#[derive(Clone, Copy)]
pub(super) struct Run {
    pub count: usize,
    pub p: [i64; 2],
    pub d: [i64; 2],
}

/// `run`'s pixels from the start of `out`: 4-lane stores while `out` has
/// room, then channel by channel. Without `CLAMP` every first tap must be
/// in `[0, n - 2]` (the interior of a row, see `span`); with it,
/// coordinates are clamped to `[0, top]`, the `nearest` extension, and the
/// first tap stops at `n - 2` with a fraction of up to 1.
#[inline(always)]
pub(super) fn stepped<const C: usize, const CLAMP: bool>(
    src: &Sampled<'_>,
    out: &mut [f32],
    run: Run,
) {
    let Sampled {
        input,
        sr32,
        top,
        scale,
    } = *src;
    let Run { count, p, d } = run;
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
pub(super) fn interior<const C: usize>(src: &Sampled<'_>, out: &mut [f32], run: Run) {
    stepped::<C, false>(src, out, run);
}
