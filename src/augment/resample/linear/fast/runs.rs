//! A run of pixels on the vector path when the CPU has one, else on the
//! portable loop; and one `nearest` row as its clamped and interior runs.

use super::scalar::{interior, stepped};

#[cfg(target_arch = "x86_64")]
pub(super) use super::avx2::Avx2;

/// Off x86-64 there is no vector path: a type with no values.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
pub(super) enum Avx2 {}

#[cfg(not(target_arch = "x86_64"))]
impl Avx2 {
    pub(super) fn detect() -> Option<Self> {
        None
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn stepped<const C: usize, const CLAMP: bool>(
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

    pub(super) fn vectorize<R>(self, _: impl FnOnce() -> R) -> R {
        match self {}
    }
}

#[cfg(test)]
thread_local! {
    /// Set by the tests that hold the vector path to the scalar one.
    pub(super) static SCALAR_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The vector path when the CPU has one (and the calling test allows it).
pub(super) fn vector_path() -> Option<Avx2> {
    #[cfg(test)]
    if SCALAR_ONLY.get() {
        return None;
    }
    Avx2::detect()
}

/// One row in `nearest` mode, all in fixed point: the clamped columns
/// `[0, lo)`, the interior `[lo, hi)`, the clamped `[hi, w)`, in memory
/// order (each part's last 4-lane store spills onto the next part's first
/// pixel). `out` starts at the row and extends as far as 4-lane stores may
/// spill; `p` is the coordinate of column 0. One call per row, out of line.
#[inline(never)]
#[allow(clippy::too_many_arguments)] // stepped's arguments
pub(super) fn nearest_row<const C: usize>(
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
pub(super) fn pixels<const C: usize, const CLAMP: bool>(
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
