//! The interior of a row four pixels at a time on AVX2, for the x86-64
//! CPUs that have it (detected at run time; the parent's scalar loop runs
//! everywhere else and for whatever this leaves).
//!
//! The scalar loop spends about 45 instructions per pixel, most of them
//! the fixed-point arithmetic that turns a pixel's coordinates into a tap
//! offset and two fractions, one pixel at a time. Here the work is split
//! between the integer and the vector units. The tap offsets stay scalar
//! (a shift, a multiply and an add per pixel); the fractions of four pixels
//! are cut from their 64-bit coordinates side by side and converted in one
//! operation; and the blend takes two pixels per 256-bit operation, one
//! pixel's channels per 128-bit half (as the scalar loop holds them in one
//! 128-bit vector). Measured on one core of this project's EPYC (Zen 4)
//! VM, `affine_transform` order 1 (`cargo bench --bench kernels`): 2.97 µs
//! per 32×32×3 image against 3.79 µs on the scalar loop, 138 µs against
//! 215 µs at 224×224×3. Tried and slower: the tap offsets in vector lanes too
//! (extracting them costs more than computing them), a vector pass over the
//! clamped ends of rows (short runs, long setup), and offsets and fractions
//! for a batch of pixels first, blends second (scalar code, stack traffic).
//! Fused multiply-adds would gain another 3% and change the last bit.
//!
//! The results are the scalar loop's, bit for bit: the same fixed-point
//! values, the same roundings, and the same single-rounded f32 operations
//! in the same order (no fused multiply-add). Which path ran never shows in
//! the output, and the tests hold the two to each other.
//!
//! Dispatch and intrinsics are [`pulp`]'s (the SIMD layer under `faer`):
//! safe wrappers, usable only with the token that proves the CPU has the
//! feature. Every function below is `#[inline(always)]` and no closure
//! calls an intrinsic, so that the whole loop is compiled inside
//! [`V3::vectorize`] with AVX2 enabled (a closure is compiled on its own,
//! without AVX2, and each intrinsic in it becomes a call: 15× slower).

use std::arch::x86_64::{__m128, __m256, __m256i};

use pulp::x86::V3;

use super::{stepped, DROP, FRAC};

/// Proof that this CPU runs AVX2 (and the rest of x86-64-v3, which pulp
/// checks with it); only [`Avx2::detect`] makes one.
#[derive(Clone, Copy)]
pub(super) struct Avx2(V3);

impl Avx2 {
    /// The token when the CPU has AVX2 (cached by std after the first
    /// check).
    pub(super) fn detect() -> Option<Self> {
        V3::try_new().map(Avx2)
    }

    /// `f` compiled with AVX2 enabled (the code it inlines, that is: `f`
    /// must be `#[inline(always)]`, and what it calls too).
    pub(super) fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        self.0.vectorize(f)
    }

    /// The interior part of a row: [`stepped`] without the clamp (every
    /// first tap in `[0, n - 2]`), the same pixels, values and stores.
    /// `count` pixels from the start of `out`, with fixed-point coordinates
    /// `p` stepped by `d`; four at a time while `out` has room for their
    /// 4-lane stores and their taps' 4-lane loads fit in `input`, the rest
    /// (the last pixels of the image, at most) by [`stepped`].
    ///
    /// The clamped parts of a row stay scalar: they are short (a few pixels
    /// at each end), and a vector pass over them measured slower (3.0 µs
    /// against 2.7 µs per 32×32 image), for its setup.
    #[allow(clippy::too_many_arguments)] // stepped's arguments
    pub(super) fn interior<const C: usize>(
        self,
        input: &[f32],
        sr32: u32,
        out: &mut [f32],
        count: usize,
        p: [i64; 2],
        d: [i64; 2],
        top: [i64; 2],
        scale: f32,
    ) {
        let simd = self.0;
        simd.vectorize(
            #[inline(always)]
            || interior::<C>(simd, input, sr32, out, count, p, d, top, scale),
        )
    }
}

/// Pixels per step of the loop.
const GROUP: usize = 4;

/// The loop behind [`Avx2::interior`].
#[inline(always)]
#[allow(clippy::too_many_arguments)] // stepped's arguments
fn interior<const C: usize>(
    simd: V3,
    input: &[f32],
    sr32: u32,
    out: &mut [f32],
    count: usize,
    p: [i64; 2],
    d: [i64; 2],
    top: [i64; 2],
    scale: f32,
) {
    let (avx, avx2) = (simd.avx, simd.avx2);
    let sr = sr32 as usize;
    // Lanes [k0, k1, k2, k3] hold pixels [0, 2, 1, 3] of the group, so that
    // each 128-bit half of the packed fractions below holds one pixel of
    // each pair, and each pair's broadcasts stay within halves. The products
    // stay below 2^62 for every pixel of the row (see `applies`); they wrap
    // only past its end, in lanes never used.
    let (mut vy, mut vx) = (lanes(p[0], d[0]), lanes(p[1], d[1]));
    // The same coordinates one pixel at a time, for the tap offsets.
    let [mut y, mut x] = p;
    let step_y = avx._mm256_set1_epi64x(d[0].wrapping_mul(GROUP as i64));
    let step_x = avx._mm256_set1_epi64x(d[1].wrapping_mul(GROUP as i64));
    let low24 = avx._mm256_set1_epi32(0xff_ffff);
    let unit = avx._mm256_set1_ps(1.0 / (1 << 24) as f32);
    let s = avx._mm256_set1_ps(scale);

    let mut done = 0;
    let mut rest = &mut *out;
    while count - done >= GROUP && rest.len() >= (GROUP - 1) * C + 4 {
        // Tap offsets iy·sr + ix·C, pixel by pixel from the scalar
        // coordinates, as the scalar `taps` computes them: the integer
        // units are otherwise idle, and the loads need them there.
        let mut at = [0usize; GROUP];
        for a in &mut at {
            *a = ((y >> FRAC) as u32 * sr32 + (x >> FRAC) as u32 * C as u32) as usize;
            y = y.wrapping_add(d[0]);
            x = x.wrapping_add(d[1]);
        }
        let tap = |k: usize| input.get(at[k]..at[k] + sr + C + 4);
        let (Some(t0), Some(t1), Some(t2), Some(t3)) = (tap(0), tap(1), tap(2), tap(3)) else {
            // The image's last taps: the scalar loop's edge case.
            y = y.wrapping_sub(d[0].wrapping_mul(GROUP as i64));
            x = x.wrapping_sub(d[1].wrapping_mul(GROUP as i64));
            break;
        };
        // Fractions: bits 16..40 of each coordinate (the top 24 fractional
        // bits; the bias of the coordinates makes this truncation round), to
        // f32 (below 2^24: exact), times 2^-24 (exact). Packed as
        // [fy0 fy2 fx0 fx2 | fy1 fy3 fx1 fx3].
        let fy = avx2._mm256_srli_epi64::<{ DROP as i32 }>(vy);
        let fx = avx2._mm256_srli_epi64::<{ DROP as i32 }>(vx);
        let packed = avx._mm256_shuffle_ps::<0b10_00_10_00>(pulp::cast(fy), pulp::cast(fx));
        let bits = avx2._mm256_and_si256(pulp::cast(packed), low24);
        let f = avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(bits), unit);
        // Pair (0, 1) broadcasts lanes 0 (fy) and 2 (fx) of each half, pair
        // (2, 3) lanes 1 and 3.
        let pairs = [
            (
                t0,
                t1,
                avx._mm256_permute_ps::<0b00_00_00_00>(f),
                avx._mm256_permute_ps::<0b10_10_10_10>(f),
            ),
            (
                t2,
                t3,
                avx._mm256_permute_ps::<0b01_01_01_01>(f),
                avx._mm256_permute_ps::<0b11_11_11_11>(f),
            ),
        ];
        for (a, b, fy, fx) in pairs {
            let v = blend(simd, a, b, sr, C, fy, fx, s);
            let cur = std::mem::take(&mut rest);
            store(&mut cur[..4], avx._mm256_castps256_ps128(v));
            store(&mut cur[C..C + 4], avx._mm256_extractf128_ps::<1>(v));
            rest = &mut cur[2 * C..];
        }
        vy = avx2._mm256_add_epi64(vy, step_y);
        vx = avx2._mm256_add_epi64(vx, step_x);
        done += GROUP;
    }
    if done < count {
        stepped::<C, false>(input, sr32, rest, count - done, [y, x], d, top, scale);
    }
}

/// `[v, v + 2d, v + d, v + 3d]`, wrapping.
#[inline(always)]
fn lanes(v: i64, d: i64) -> __m256i {
    let at = |k: i64| v.wrapping_add(d.wrapping_mul(k));
    pulp::cast([at(0), at(2), at(1), at(3)])
}

/// Two pixels' bilinear blends, one per 128-bit half: the taps at the start
/// of `ta` and `tb` (rows `sr` apart, columns `c` apart), with the scalar
/// [`lerp4`](super::lerp4)'s operations in its order.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the two pixels' whole state
fn blend(
    simd: V3,
    ta: &[f32],
    tb: &[f32],
    sr: usize,
    c: usize,
    fy: __m256,
    fx: __m256,
    s: __m256,
) -> __m256 {
    let avx = simd.avx;
    let p00 = avx._mm256_set_m128(load(tb), load(ta));
    let p01 = avx._mm256_set_m128(load(&tb[c..]), load(&ta[c..]));
    let p10 = avx._mm256_set_m128(load(&tb[sr..]), load(&ta[sr..]));
    let p11 = avx._mm256_set_m128(load(&tb[sr + c..]), load(&ta[sr + c..]));
    let top = avx._mm256_add_ps(p00, avx._mm256_mul_ps(avx._mm256_sub_ps(p01, p00), fx));
    let bot = avx._mm256_add_ps(p10, avx._mm256_mul_ps(avx._mm256_sub_ps(p11, p10), fx));
    let v = avx._mm256_add_ps(top, avx._mm256_mul_ps(avx._mm256_sub_ps(bot, top), fy));
    avx._mm256_mul_ps(v, s)
}

/// The first 4 lanes of `from` (which has at least 4).
#[inline(always)]
fn load(from: &[f32]) -> __m128 {
    let lanes: [f32; 4] = from[..4].try_into().expect("4 lanes");
    pulp::cast(lanes)
}

/// `v` into the 4 lanes of `to`.
#[inline(always)]
fn store(to: &mut [f32], v: __m128) {
    to.copy_from_slice(&pulp::cast::<__m128, [f32; 4]>(v));
}
