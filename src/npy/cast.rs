//! Per-sample element conversion from any stored dtype and byte order.
//!
//! Works from raw bytes so it needs no alignment: `.npz` members and
//! non-native files are read the same way as aligned native data.

use super::dtype::{ByteOrder, Dtype, ElemType};
use crate::Real;

/// Converts `bytes` (elements of `dtype`) into `out`, one element per slot.
///
/// Integers and floats are converted through `f64`, which is exact for every
/// type but 64-bit integers beyond 2^53 (rounded as `astype(float64)` would).
///
/// # Panics
/// When `bytes.len() != out.len() * dtype.size()` (a caller bug).
pub fn cast_into<T: Real>(bytes: &[u8], dtype: Dtype, out: &mut [T]) {
    cast_scaled_into(bytes, dtype, out, None);
}

/// Work to interleave with a row's conversion: called before each part of
/// it with the number of parts left, this one included. The pipeline
/// issues the next row's prefetches through it, a few per part: issued all
/// at once before the row, they filled the core's miss buffers and
/// stalled it, and the block order's cold epoch took 2.29 s on a loop
/// device against 1.73 s spread over parts of 512 bytes (and 2.00 s over
/// three parts; medians of 5, `dd` 1.38 s).
pub(crate) type Pace<'a> = &'a mut dyn FnMut(usize);

/// Bytes of a row converted between two calls of a [`Pace`].
const PACE_BYTES: usize = 512;

/// [`cast_scaled_into`] in parts of [`PACE_BYTES`] of `bytes`, with `pace`
/// called before each (in one go without a `pace`).
pub(crate) fn cast_scaled_paced<T: Real>(
    bytes: &[u8],
    dtype: Dtype,
    out: &mut [T],
    scale: Option<f64>,
    pace: Option<Pace<'_>>,
) {
    let Some(pace) = pace else {
        return cast_scaled_into(bytes, dtype, out, scale);
    };
    let per = (PACE_BYTES / dtype.size()).max(1);
    let parts = out.len().div_ceil(per);
    let pieces = bytes.chunks(per * dtype.size()).zip(out.chunks_mut(per));
    for (k, (src, dst)) in pieces.enumerate() {
        pace(parts - k);
        cast_scaled_into(src, dtype, dst, scale);
    }
}

/// [`cast_into`], each value then multiplied by `T(scale)` when given: one
/// pass instead of two for Keras' `rescale` (the same two roundings).
///
/// # Panics
/// As [`cast_into`].
pub(crate) fn cast_scaled_into<T: Real>(
    bytes: &[u8],
    dtype: Dtype,
    out: &mut [T],
    scale: Option<f64>,
) {
    if dtype.elem == ElemType::U8 && bytes.len() == out.len() {
        // The hot path of image data: widen and scale in one pass, compiled
        // for AVX2 where the CPU has it (eight lanes; the baseline's SSE2
        // loop widened four bytes a step and was half of a warm epoch's
        // CPU time). `T(scale)` as `standardize` rounds it.
        let s = T::from_f64_lossy(scale.unwrap_or(1.0));
        crate::simd::on_avx2(
            #[inline(always)]
            || {
                for (o, &b) in out.iter_mut().zip(bytes) {
                    *o = T::from_byte(b) * s;
                }
            },
        );
        return;
    }
    cast_unscaled(bytes, dtype, out);
    if let Some(s) = scale {
        let s = T::from_f64_lossy(s);
        out.iter_mut().for_each(|v| *v *= s);
    }
}

fn cast_unscaled<T: Real>(bytes: &[u8], dtype: Dtype, out: &mut [T]) {
    assert_eq!(
        bytes.len(),
        out.len() * dtype.size(),
        "cast_into: length mismatch"
    );
    let big = dtype.order == ByteOrder::Big;
    macro_rules! conv {
        ($n:literal, $f:expr) => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                let f: fn([u8; $n], bool) -> f64 = $f;
                *o = T::from_f64_lossy(f(a, big));
            }
        };
    }
    match dtype.elem {
        // The hot path for image data: let the compiler vectorise it.
        ElemType::U8 => {
            // Typed loops so LLVM vectorises the widening (through f64 it does not).
            if let Some(out) = bytemuck::try_cast_slice_mut::<T, f32>(out)
                .ok()
                .filter(|_| T::DTYPE == crate::OutputDtype::F32)
            {
                for (o, &b) in out.iter_mut().zip(bytes) {
                    *o = b as f32;
                }
            } else {
                for (o, &b) in out.iter_mut().zip(bytes) {
                    *o = T::from_f64_lossy(b as f64);
                }
            }
        }
        ElemType::Bool => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = if b != 0 { T::one() } else { T::zero() };
            }
        }
        ElemType::I8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = T::from_f64_lossy(b as i8 as f64);
            }
        }
        ElemType::U16 => conv!(2, |a, be| (if be {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }) as f64),
        ElemType::I16 => conv!(2, |a, be| (if be {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }) as f64),
        ElemType::U32 => conv!(4, |a, be| (if be {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }) as f64),
        ElemType::I32 => conv!(4, |a, be| (if be {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        }) as f64),
        ElemType::U64 => conv!(8, |a, be| (if be {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }) as f64),
        ElemType::I64 => conv!(8, |a, be| (if be {
            i64::from_be_bytes(a)
        } else {
            i64::from_le_bytes(a)
        }) as f64),
        ElemType::F16 => conv!(2, |a, be| half::f16::from_bits(if be {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
        .to_f64()),
        ElemType::F32 => {
            if T::DTYPE == crate::OutputDtype::F32 && !big {
                // Same type, same order: a plain copy (no f64 round trip).
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = T::from_f64_lossy(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64);
                }
            } else {
                conv!(4, |a, be| (if be {
                    f32::from_be_bytes(a)
                } else {
                    f32::from_le_bytes(a)
                }) as f64)
            }
        }
        ElemType::F64 => conv!(8, |a, be| if be {
            f64::from_be_bytes(a)
        } else {
            f64::from_le_bytes(a)
        }),
    }
}

/// Copies `src` into `dst` converting elements of `dtype` to native byte order.
///
/// # Panics
/// When the lengths differ (a caller bug).
pub fn copy_native(src: &[u8], dtype: Dtype, dst: &mut [u8]) {
    dst.copy_from_slice(src);
    if !dtype.is_native() {
        for chunk in dst.chunks_exact_mut(dtype.size()) {
            chunk.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_cast_converts_every_part_and_counts_the_parts_down() {
        let bytes: Vec<u8> = (0..3072u32).map(|i| (i * 7 % 256) as u8).collect();
        let u8_dtype = Dtype {
            elem: ElemType::U8,
            order: ByteOrder::Little,
        };
        let i16_dtype = Dtype {
            elem: ElemType::I16,
            order: ByteOrder::Big,
        };
        for (dtype, len) in [(u8_dtype, 3072), (u8_dtype, 1000), (i16_dtype, 1000)] {
            let src = &bytes[..len * dtype.size()];
            let expected: Vec<f32> = src
                .chunks(dtype.size())
                .map(|c| match dtype.elem {
                    ElemType::U8 => c[0] as f32 * 0.5,
                    _ => i16::from_be_bytes([c[0], c[1]]) as f32 * 0.5,
                })
                .collect();
            let mut out = vec![f32::NAN; len];
            let mut calls = Vec::new();
            let mut pace = |left| calls.push(left);
            cast_scaled_paced(src, dtype, &mut out, Some(0.5), Some(&mut pace));
            assert_eq!(out, expected, "{dtype:?} {len}");
            let parts = (len * dtype.size()).div_ceil(PACE_BYTES);
            assert_eq!(
                calls,
                (1..=parts).rev().collect::<Vec<_>>(),
                "{dtype:?} {len}"
            );
        }
    }

    #[test]
    fn big_endian_values_convert() {
        let d = Dtype {
            elem: ElemType::I16,
            order: ByteOrder::Big,
        };
        let mut out = [0f32; 2];
        cast_into(&[0xff, 0xfe, 0x01, 0x00], d, &mut out);
        assert_eq!(out, [-2.0, 256.0]);
        let d = Dtype {
            elem: ElemType::F16,
            order: ByteOrder::Little,
        };
        let mut out = [0f64; 1];
        cast_into(&half::f16::from_f32(1.5).to_le_bytes(), d, &mut out);
        assert_eq!(out, [1.5]);
    }

    #[test]
    fn copy_native_swaps_only_foreign_order() {
        let mut dst = [0u8; 4];
        copy_native(
            &[1, 2, 3, 4],
            Dtype {
                elem: ElemType::U16,
                order: ByteOrder::Big,
            },
            &mut dst,
        );
        if cfg!(target_endian = "little") {
            assert_eq!(dst, [2, 1, 4, 3]);
        }
        copy_native(&[1, 2, 3, 4], Dtype::native(ElemType::U16), &mut dst);
        assert_eq!(dst, [1, 2, 3, 4]);
    }
}
