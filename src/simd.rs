//! Run-time dispatch of the hot loops to the CPU's vector width.
//!
//! The crate is built for the x86-64 baseline (SSE2), so a plain loop is
//! vectorised four `f32` lanes wide. [`on_avx2`] compiles a loop a second
//! time for AVX2 (pulp's dispatch, the SIMD layer under `faer`) and runs
//! that copy where the CPU has it: eight lanes. Rust never fuses a multiply
//! and an add into an FMA on its own, so both copies compute the same
//! operations in the same order and return the same bits.

/// Runs `op` compiled for AVX2 when the CPU has it, else as is. `op` must be
/// `#[inline(always)]` to be compiled inside the dispatch.
#[inline(always)]
pub(crate) fn on_avx2<R>(op: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(op);
    }
    op()
}
