//! Element-wise dtype conversion with numpy's `astype` semantics.

use half::f16;

use crate::npy::{ByteOrder, Dtype, ElemType};

/// One element on its way between types: integers keep every bit (i128
/// holds u64 and i64), floats are f64, bools stay bools.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl Num {
    fn to_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
            Num::Bool(b) => b as u8 as f64,
        }
    }
}

/// Converts `src` (elements of `from`, any byte order) into `dst` (elements
/// of `to`, native byte order), optionally multiplying by `scale` first.
///
/// The rules are numpy's `astype` (`(x * scale).astype(to)` when scaling,
/// where `x * scale` is computed in float64):
///
/// - integer → integer wraps modulo 2^bits (C's cast, as numpy);
/// - float → integer truncates toward zero; values outside the target range
///   saturate to its minimum / maximum and NaN becomes 0. (numpy leaves this
///   case undefined — its result depends on the platform and it warns
///   "invalid value encountered in cast" — so npyflow picks the saturating
///   rule, which is what Rust's `as` does and what a user usually wants.)
/// - integer / float → float rounds to nearest (float16 via float64, so
///   integers beyond 65504 become infinity, as in numpy);
/// - anything → bool is `x != 0` (NaN is `true`); bool → number is 0 or 1.
///
/// # Panics
/// When `src` and `dst` do not hold the same number of elements (a caller bug).
pub(crate) fn cast_elements(
    src: &[u8],
    from: Dtype,
    dst: &mut [u8],
    to: ElemType,
    scale: Option<f64>,
) {
    let n = src.len() / from.size();
    assert!(
        src.len() % from.size() == 0 && dst.len() == n * to.size(),
        "cast_elements: {} source bytes of {} do not fill {} bytes of {}",
        src.len(),
        from,
        dst.len(),
        to
    );
    if scale.is_none() && from.elem == to {
        // Same type: a copy, plus a byte swap for foreign byte order.
        dst.copy_from_slice(src);
        if !from.is_native() {
            dst.chunks_exact_mut(to.size()).for_each(|c| c.reverse());
        }
        return;
    }
    // Blocks keep the per-type `match` out of the inner loops.
    const BLOCK: usize = 4096;
    let mut vals = [Num::Int(0); BLOCK];
    for (s, d) in src
        .chunks(BLOCK * from.size())
        .zip(dst.chunks_mut(BLOCK * to.size()))
    {
        let vals = &mut vals[..s.len() / from.size()];
        decode(s, from, vals);
        if let Some(k) = scale {
            vals.iter_mut()
                .for_each(|v| *v = Num::Float(v.to_f64() * k));
        }
        encode(vals, to, d);
    }
}

fn decode(src: &[u8], dtype: Dtype, out: &mut [Num]) {
    let big = dtype.order == ByteOrder::Big;
    macro_rules! ints {
        ($t:ty, $n:literal) => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact($n)) {
                let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                *o = Num::Int(
                    (if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }) as i128,
                );
            }
        };
    }
    match dtype.elem {
        ElemType::Bool => out
            .iter_mut()
            .zip(src)
            .for_each(|(o, &b)| *o = Num::Bool(b != 0)),
        ElemType::U8 => out
            .iter_mut()
            .zip(src)
            .for_each(|(o, &b)| *o = Num::Int(b as i128)),
        ElemType::I8 => out
            .iter_mut()
            .zip(src)
            .for_each(|(o, &b)| *o = Num::Int(b as i8 as i128)),
        ElemType::U16 => ints!(u16, 2),
        ElemType::I16 => ints!(i16, 2),
        ElemType::U32 => ints!(u32, 4),
        ElemType::I32 => ints!(i32, 4),
        ElemType::U64 => ints!(u64, 8),
        ElemType::I64 => ints!(i64, 8),
        ElemType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                let bits = if big {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                };
                *o = Num::Float(f16::from_bits(bits).to_f64());
            }
        }
        ElemType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                let a = [c[0], c[1], c[2], c[3]];
                *o = Num::Float(
                    (if big {
                        f32::from_be_bytes(a)
                    } else {
                        f32::from_le_bytes(a)
                    }) as f64,
                );
            }
        }
        ElemType::F64 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(8)) {
                let a: [u8; 8] = c.try_into().unwrap_or([0; 8]);
                *o = Num::Float(if big {
                    f64::from_be_bytes(a)
                } else {
                    f64::from_le_bytes(a)
                });
            }
        }
    }
}

fn encode(vals: &[Num], to: ElemType, dst: &mut [u8]) {
    macro_rules! ints {
        ($t:ty) => {
            for (v, c) in vals
                .iter()
                .zip(dst.chunks_exact_mut(std::mem::size_of::<$t>()))
            {
                let x: $t = match *v {
                    // `as` between integers wraps, like C; from float it
                    // truncates toward zero and saturates (NaN → 0).
                    Num::Int(i) => i as $t,
                    Num::Float(f) => f as $t,
                    Num::Bool(b) => b as $t,
                };
                c.copy_from_slice(&x.to_ne_bytes());
            }
        };
    }
    match to {
        ElemType::Bool => {
            for (v, c) in vals.iter().zip(dst.iter_mut()) {
                *c = match *v {
                    Num::Int(i) => i != 0,
                    Num::Float(f) => f != 0.0,
                    Num::Bool(b) => b,
                } as u8;
            }
        }
        ElemType::U8 => ints!(u8),
        ElemType::I8 => ints!(i8),
        ElemType::U16 => ints!(u16),
        ElemType::I16 => ints!(i16),
        ElemType::U32 => ints!(u32),
        ElemType::I32 => ints!(i32),
        ElemType::U64 => ints!(u64),
        ElemType::I64 => ints!(i64),
        ElemType::F16 => {
            for (v, c) in vals.iter().zip(dst.chunks_exact_mut(2)) {
                c.copy_from_slice(&f16::from_f64(v.to_f64()).to_ne_bytes());
            }
        }
        ElemType::F32 => {
            for (v, c) in vals.iter().zip(dst.chunks_exact_mut(4)) {
                // Integers go straight to f32: through f64 first would round twice.
                let x = match *v {
                    Num::Int(i) => i as f32,
                    other => other.to_f64() as f32,
                };
                c.copy_from_slice(&x.to_ne_bytes());
            }
        }
        ElemType::F64 => {
            for (v, c) in vals.iter().zip(dst.chunks_exact_mut(8)) {
                c.copy_from_slice(&v.to_f64().to_ne_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast<T: bytemuck::Pod>(src: &[u8], from: Dtype, to: ElemType, scale: Option<f64>) -> Vec<T> {
        let n = src.len() / from.size();
        let mut dst = vec![0u8; n * to.size()];
        cast_elements(src, from, &mut dst, to, scale);
        bytemuck::pod_collect_to_vec(&dst)
    }

    #[test]
    fn float_to_int_truncates_toward_zero_and_saturates() {
        let v = [2.7f64, -2.7, 300.0, -1.0, f64::NAN, 0.5];
        let src: &[u8] = bytemuck::cast_slice(&v);
        let out: Vec<u8> = cast(src, Dtype::native(ElemType::F64), ElemType::U8, None);
        assert_eq!(out, [2, 0, 255, 0, 0, 0]);
        let out: Vec<i16> = cast(src, Dtype::native(ElemType::F64), ElemType::I16, None);
        assert_eq!(out, [2, -2, 300, -1, 0, 0]);
    }

    #[test]
    fn int_to_int_wraps_like_numpy() {
        let v = [300i32, -1, 65_536 + 7];
        let out: Vec<u8> = cast(
            bytemuck::cast_slice(&v),
            Dtype::native(ElemType::I32),
            ElemType::U8,
            None,
        );
        assert_eq!(out, [44, 255, 7]);
        let out: Vec<i16> = cast(
            bytemuck::cast_slice(&v),
            Dtype::native(ElemType::I32),
            ElemType::I16,
            None,
        );
        assert_eq!(out, [300, -1, 7]);
    }

    #[test]
    fn big_endian_source_and_scale() {
        let src = [0x01u8, 0x00, 0xff, 0xff]; // >i2: 256, -1
        let d = Dtype {
            elem: ElemType::I16,
            order: ByteOrder::Big,
        };
        let out: Vec<f32> = cast(&src, d, ElemType::F32, Some(0.5));
        assert_eq!(out, [128.0, -0.5]);
        let out: Vec<i16> = cast(&src, d, ElemType::I16, None);
        assert_eq!(out, [256, -1]);
        let out: Vec<u8> = cast(&src, d, ElemType::Bool, None);
        assert_eq!(out, [1, 1]);
    }

    #[test]
    fn large_integers_round_once_to_f32() {
        // 2^24 + 1 is not representable in f32; nearest-even gives 2^24.
        let v = [(1i64 << 24) + 1, i64::MAX];
        let out: Vec<f32> = cast(
            bytemuck::cast_slice(&v),
            Dtype::native(ElemType::I64),
            ElemType::F32,
            None,
        );
        assert_eq!(out, [16_777_216.0, 9.223_372e18]);
        let v = [70_000u32];
        let out: Vec<u16> = cast(
            bytemuck::cast_slice(&v),
            Dtype::native(ElemType::U32),
            ElemType::F16,
            None,
        );
        assert_eq!(f16::from_bits(out[0]), f16::INFINITY);
    }
}
