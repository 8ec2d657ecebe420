//! The store: how a processed image lands in a batch of each output type.
//!
//! `f32` and `f64` batches are computed in place, in their own slot. The
//! half types are computed in `f32` in a per-thread image buffer and
//! rounded once, to nearest even, into their slot: every step before the
//! store is the `float32` one, so a half batch is the `float32` batch of
//! the same run, rounded.

use std::cell::RefCell;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::iterator::pipeline::ScratchSlot;
use crate::{OutputElement, Real, Result};

/// An output element type the pipeline produces.
pub(crate) trait Store: OutputElement {
    /// The type the generator computes in.
    type Compute: Real + ScratchSlot;

    /// Runs `process` on an image of `Compute` values and leaves its result
    /// in `out`. `process` writes every value of the image it is given.
    fn produce(
        out: &mut [Self],
        process: impl FnOnce(&mut [Self::Compute]) -> Result<()>,
    ) -> Result<()>;
}

impl Store for f32 {
    type Compute = f32;
    #[inline(always)]
    fn produce(out: &mut [f32], process: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
        process(out)
    }
}

impl Store for f64 {
    type Compute = f64;
    #[inline(always)]
    fn produce(out: &mut [f64], process: impl FnOnce(&mut [f64]) -> Result<()>) -> Result<()> {
        process(out)
    }
}

thread_local! {
    /// One `f32` image per thread, reused for every half-precision sample
    /// (no allocation per sample in the steady state; at 224×224×3 it is
    /// 588 KiB, within a core's L2 on the machines this targets).
    static STAGE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Processes into the thread's `f32` image, then `round`s it into `out`.
fn staged<H>(
    out: &mut [H],
    process: impl FnOnce(&mut [f32]) -> Result<()>,
    round: impl FnOnce(&mut [H], &[f32]),
) -> Result<()> {
    STAGE.with(|stage| {
        let mut stage = stage.borrow_mut();
        if stage.len() != out.len() {
            stage.resize(out.len(), 0.0);
        }
        process(&mut stage)?;
        round(out, &stage);
        Ok(())
    })
}

impl Store for f16 {
    type Compute = f32;
    fn produce(out: &mut [f16], process: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
        // `half` converts with the CPU's F16C instructions where it has
        // them (round to nearest even, as its software path).
        staged(out, process, |out, values| {
            out.convert_from_f32_slice(values)
        })
    }
}

impl Store for bf16 {
    type Compute = f32;
    fn produce(out: &mut [bf16], process: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
        staged(out, process, |out, values| {
            for (o, &v) in out.iter_mut().zip(values) {
                *o = bf16::from_bits(bf16_bits(v));
            }
        })
    }
}

/// `v` rounded to bfloat16, to nearest even, NaNs kept quiet: the bits
/// `half::bf16::from_f32` gives, in a branch-free form the compiler
/// vectorises (`half`'s is a branch per value).
#[inline(always)]
fn bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let rounded = x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16;
    let quiet = (x >> 16) | 0x0040;
    let nan = x & 0x7fff_ffff > 0x7f80_0000;
    (if nan { quiet } else { rounded }) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_half_on_every_kind_of_value() {
        let mut values = vec![
            0.0f32,
            -0.0,
            1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001), // signalling NaN
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::from_bits(1),           // smallest subnormal
            f32::from_bits(0x3f80_8000), // a tie, even below: down
            f32::from_bits(0x3f81_8000), // a tie, odd below: up
            f32::from_bits(0x7f7f_8000), // rounds up to infinity
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push(f32::from_bits(state as u32));
        }
        for v in values {
            assert_eq!(
                bf16_bits(v),
                bf16::from_f32(v).to_bits(),
                "{v:e} ({:#010x})",
                v.to_bits()
            );
        }
    }

    #[test]
    fn half_stores_round_the_f32_image_once() {
        let values = [
            0.1f32,
            1.0 / 255.0,
            65504.0,
            70000.0,
            -3.5e-6,
            1.0 + 1.0 / 2048.0,
        ];
        let mut out = [f16::ZERO; 6];
        f16::produce(&mut out, |img| {
            img.copy_from_slice(&values);
            Ok(())
        })
        .unwrap();
        let expected = values.map(f16::from_f32_const);
        assert_eq!(out.map(f16::to_bits), expected.map(f16::to_bits));
        assert_eq!(out[3], f16::INFINITY);
        assert_eq!(out[5], f16::ONE); // a tie, to even

        let mut out = [bf16::ZERO; 6];
        bf16::produce(&mut out, |img| {
            img.copy_from_slice(&values);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            out.map(bf16::to_bits),
            values.map(|v| bf16::from_f32_const(v).to_bits())
        );
    }
}
