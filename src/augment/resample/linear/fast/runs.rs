//! A run of pixels on the vector path when the CPU has one, else on the
//! portable loop; and one `nearest` row as its clamped and interior runs.

use super::scalar::{interior, stepped, Run, Sampled};

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

    pub(super) fn stepped<const C: usize, const CLAMP: bool>(
        self,
        _: &Sampled<'_>,
        _: &mut [f32],
        _: Run,
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

/// One row in `nearest` mode, all in fixed point: `row`, the whole row
/// (its first pixel at column 0), as its clamped columns `[0, lo)`, its
/// interior `[lo, hi)` and its clamped `[hi, w)`, in memory order (each
/// part's last 4-lane store spills onto the next part's first pixel). `out`
/// starts at the row and extends as far as 4-lane stores may spill. One
/// call per row, out of line.
#[inline(never)]
pub(super) fn nearest_row<const C: usize>(
    vector: Option<Avx2>,
    src: &Sampled<'_>,
    out: &mut [f32],
    [lo, hi]: [usize; 2],
    row: Run,
) {
    let Run { count: w, p, d } = row;
    let len = out.len();
    let at = |j: usize| [p[0] + j as i64 * d[0], p[1] + j as i64 * d[1]];
    let part = |from: usize, to: usize| from * C..(to * C + 4 - C).min(len);
    if lo > 0 {
        let o = &mut out[part(0, lo)];
        pixels::<C, true>(vector, src, o, Run { count: lo, p, d });
    }
    if lo < hi {
        let o = &mut out[part(lo, hi)];
        let interior = Run {
            count: hi - lo,
            p: at(lo),
            d,
        };
        pixels::<C, false>(vector, src, o, interior);
    }
    if hi < w {
        let o = &mut out[part(hi, w)];
        pixels::<C, true>(
            vector,
            src,
            o,
            Run {
                count: w - hi,
                p: at(hi),
                d,
            },
        );
    }
}

/// The shortest clamped run that takes the vector loop (`Avx2::stepped`):
/// below it, the loop's set-up costs more than it saves.
const CLAMPED_VECTOR_MIN: usize = 8;

/// [`stepped`] on the vector path when there is one: the interior always,
/// a clamped part from [`CLAMPED_VECTOR_MIN`] pixels on. Otherwise the
/// clamped parts in line and the interior out of line ([`interior`]).
#[inline(always)]
pub(super) fn pixels<const C: usize, const CLAMP: bool>(
    vector: Option<Avx2>,
    src: &Sampled<'_>,
    out: &mut [f32],
    run: Run,
) {
    match vector {
        Some(v) if CLAMP && run.count >= CLAMPED_VECTOR_MIN => v.stepped::<C, true>(src, out, run),
        _ if CLAMP => stepped::<C, true>(src, out, run),
        Some(v) => v.stepped::<C, false>(src, out, run),
        None => interior::<C>(src, out, run),
    }
}
