//! The interior of a row four pixels at a time on AVX2, for the x86-64
//! CPUs that have it (detected at run time; the portable loop in `scalar`
//! runs everywhere else and for whatever this leaves), and the clamped runs
//! of `nearest` rows long enough to pay for their set-up.
//!
//! Most of the portable loop's work per pixel is fixed-point arithmetic:
//! turning the pixel's coordinates into a tap offset and two fractions, one
//! pixel at a time. Here that work is split between the integer and the
//! vector units. The tap offsets stay scalar (a shift, a multiply and an
//! add per pixel, on integer units the vector code leaves idle; taking
//! them out of vector lanes would cost more than computing them); the
//! fractions of four pixels are cut from their 64-bit coordinates side by
//! side and converted in one operation; and the blend takes two pixels per
//! 256-bit operation, one pixel's channels per 128-bit half (as the
//! portable loop holds them in one 128-bit vector). Each pixel is finished
//! as soon as its taps are known, so nothing goes through memory between
//! the steps.
//!
//! The clamped runs are the other way round ([`clamped`]): there the
//! portable loop clamps each coordinate on both axes before it can take the
//! taps, and doing that for four pixels at once in 64-bit lanes pays for
//! taking the offsets out of them. Only runs long enough to repay the
//! set-up come here (see `runs::CLAMPED_VECTOR_MIN`): most clamped runs of
//! small images are a few pixels long, and at 224×224 about one output
//! pixel in eight is clamped under Keras' usual ranges.
//!
//! The results are the portable loop's, bit for bit: the same fixed-point
//! values, the same roundings, and the same single-rounded f32 operations
//! in the same order (no fused multiply-add, which would change the last
//! bit). Which path ran never shows in the output, and the tests hold the
//! two to each other.
//!
//! Dispatch and intrinsics are [`pulp`]'s (the SIMD layer under `faer`):
//! safe wrappers, usable only with the token that proves the CPU has the
//! feature. Every function below is `#[inline(always)]` and no closure
//! calls an intrinsic, so that the whole loop is compiled inside
//! [`V3::vectorize`] with AVX2 enabled (a closure is compiled on its own,
//! without AVX2, and each intrinsic in it would become a function call).

use std::arch::x86_64::{__m128, __m256, __m256i};

use pulp::x86::V3;

use super::fixed::{DROP, FRAC};
use super::scalar::{stepped, Run, Sampled};

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

    /// [`stepped`] on AVX2: the same pixels, values and stores. `run`'s
    /// pixels from the start of `out`, four at a time while `out` has room
    /// for their 4-lane stores and their taps' 4-lane loads fit in the
    /// input; the rest (the last pixels of a run or of the image) by
    /// [`stepped`]. Without `CLAMP`, the interior of a row (every first tap
    /// in `[0, n - 2]`); with it, a clamped part (the `nearest` extension),
    /// with the clamp, the tap offsets and the fractions in 64-bit lanes.
    pub(super) fn stepped<const C: usize, const CLAMP: bool>(
        self,
        src: &Sampled<'_>,
        out: &mut [f32],
        run: Run,
    ) {
        let simd = self.0;
        simd.vectorize(
            #[inline(always)]
            || match CLAMP {
                true => clamped::<C>(simd, src, out, run),
                false => interior::<C>(simd, src, out, run),
            },
        )
    }
}

/// Pixels per step of the loop.
const GROUP: usize = 4;

/// The loop behind [`Avx2::stepped`] with the clamp.
#[inline(always)]
fn clamped<const C: usize>(simd: V3, src: &Sampled<'_>, out: &mut [f32], run: Run) {
    let Sampled {
        input,
        sr32,
        top,
        scale,
    } = *src;
    let Run { count, p, d } = run;
    let (avx, avx2) = (simd.avx, simd.avx2);
    let sr = sr32 as usize;
    // Lanes hold pixels [0, 2, 1, 3] of the group, as in `interior`.
    let (mut vy, mut vx) = (lanes(p[0], d[0]), lanes(p[1], d[1]));
    let step_y = avx._mm256_set1_epi64x(d[0].wrapping_mul(GROUP as i64));
    let step_x = avx._mm256_set1_epi64x(d[1].wrapping_mul(GROUP as i64));
    let tops = [0, 1].map(|k| avx._mm256_set1_epi64x(top[k]));
    let lasts = [0, 1].map(|k| avx._mm256_set1_epi64x(top[k] - (1 << FRAC)));
    let row = avx._mm256_set1_epi64x(i64::from(sr32));
    let col = avx._mm256_set1_epi64x(C as i64);
    let s = avx._mm256_set1_ps(scale);

    let mut done = 0;
    let mut rest = &mut *out;
    while count - done >= GROUP && rest.len() >= (GROUP - 1) * C + 4 {
        let (iy, fy) = clamp_axis(simd, vy, tops[0], lasts[0]);
        let (ix, fx) = clamp_axis(simd, vx, tops[1], lasts[1]);
        // Tap offsets iy·sr + ix·C (both factors below 2^32), lanes
        // [0, 2, 1, 3].
        let at: [u64; GROUP] = pulp::cast(avx2._mm256_add_epi64(
            avx2._mm256_mul_epu32(iy, row),
            avx2._mm256_mul_epu32(ix, col),
        ));
        let tap = |k: usize| input.get(at[k] as usize..at[k] as usize + sr + C + 4);
        let (Some(t0), Some(t2), Some(t1), Some(t3)) = (tap(0), tap(1), tap(2), tap(3)) else {
            break;
        };
        // The fractions are at most 2^24 (1 at the far edge): no mask.
        let f = fractions(simd, fy, fx, None);
        group::<C>(simd, [t0, t1, t2, t3], sr, f, s, &mut rest);
        vy = avx2._mm256_add_epi64(vy, step_y);
        vx = avx2._mm256_add_epi64(vx, step_x);
        done += GROUP;
    }
    if done < count {
        let at = |k: usize| p[k].wrapping_add(d[k].wrapping_mul(done as i64));
        let p = [at(0), at(1)];
        let tail = Run {
            count: count - done,
            p,
            d,
        };
        stepped::<C, true>(src, rest, tail);
    }
}

/// The scalar `taps` with the clamp on one axis of four pixels: the
/// coordinate clamped to `[0, top]`, the first tap to at most `last`
/// (n - 2), the fraction what is left (up to 1 at the far edge). Returns
/// the first taps and the fractions' top 24 bits.
#[inline(always)]
fn clamp_axis(simd: V3, v: __m256i, top: __m256i, last: __m256i) -> (__m256i, __m256i) {
    let (avx, avx2) = (simd.avx, simd.avx2);
    let below = avx2._mm256_cmpgt_epi64(avx._mm256_setzero_si256(), v);
    let v = avx2._mm256_andnot_si256(below, v);
    let v = avx2._mm256_blendv_epi8(v, top, avx2._mm256_cmpgt_epi64(v, top));
    let t = avx2._mm256_blendv_epi8(v, last, avx2._mm256_cmpgt_epi64(v, last));
    let whole = avx._mm256_set1_epi64x(!((1i64 << FRAC) - 1));
    let frac = avx2._mm256_sub_epi64(v, avx2._mm256_and_si256(t, whole));
    (
        avx2._mm256_srli_epi64::<{ FRAC as i32 }>(t),
        avx2._mm256_srli_epi64::<{ DROP as i32 }>(frac),
    )
}

/// The loop behind [`Avx2::stepped`] without the clamp.
#[inline(always)]
fn interior<const C: usize>(simd: V3, src: &Sampled<'_>, out: &mut [f32], run: Run) {
    let Sampled {
        input, sr32, scale, ..
    } = *src;
    let Run { count, p, d } = run;
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
        // bits; the bias of the coordinates makes this truncation round).
        let fy = avx2._mm256_srli_epi64::<{ DROP as i32 }>(vy);
        let fx = avx2._mm256_srli_epi64::<{ DROP as i32 }>(vx);
        let f = fractions(simd, fy, fx, Some(low24));
        group::<C>(simd, [t0, t1, t2, t3], sr, f, s, &mut rest);
        vy = avx2._mm256_add_epi64(vy, step_y);
        vx = avx2._mm256_add_epi64(vx, step_x);
        done += GROUP;
    }
    if done < count {
        let tail = Run {
            count: count - done,
            p: [y, x],
            d,
        };
        stepped::<C, false>(src, rest, tail);
    }
}

/// The fractions of a group, `[fy0 fy2 fx0 fx2 | fy1 fy3 fx1 fx3]` as f32,
/// from their top 24 bits in the low 32 bits of each lane of `fy` and `fx`
/// (lanes [0, 2, 1, 3]), masked to 24 bits first when `low24` is given: to
/// f32 (below 2^25: exact), times 2^-24 (exact).
#[inline(always)]
fn fractions(simd: V3, fy: __m256i, fx: __m256i, low24: Option<__m256i>) -> __m256 {
    let (avx, avx2) = (simd.avx, simd.avx2);
    let packed = pulp::cast(avx._mm256_shuffle_ps::<0b10_00_10_00>(pulp::cast(fy), pulp::cast(fx)));
    let bits = match low24 {
        Some(mask) => avx2._mm256_and_si256(packed, mask),
        None => packed,
    };
    let unit = avx._mm256_set1_ps(1.0 / (1 << 24) as f32);
    avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(bits), unit)
}

/// The four pixels of a group from their taps `t` and [`fractions`] `f`,
/// stored at the start of `rest`, which then moves past them.
#[inline(always)]
fn group<const C: usize>(
    simd: V3,
    [t0, t1, t2, t3]: [&[f32]; GROUP],
    sr: usize,
    f: __m256,
    s: __m256,
    rest: &mut &mut [f32],
) {
    let avx = simd.avx;
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
        let v = blend(simd, [a, b], sr, C, [fy, fx], s);
        let cur = std::mem::take(rest);
        store(&mut cur[..4], avx._mm256_castps256_ps128(v));
        store(&mut cur[C..C + 4], avx._mm256_extractf128_ps::<1>(v));
        *rest = &mut cur[2 * C..];
    }
}

/// `[v, v + 2d, v + d, v + 3d]`, wrapping.
#[inline(always)]
fn lanes(v: i64, d: i64) -> __m256i {
    let at = |k: i64| v.wrapping_add(d.wrapping_mul(k));
    pulp::cast([at(0), at(2), at(1), at(3)])
}

/// Two pixels' bilinear blends, one per 128-bit half: the taps at the start
/// of `ta` and `tb` (rows `sr` apart, columns `c` apart) with the fractions
/// `[fy, fx]`, times `s`, in the scalar `lerp4`'s operations and order.
#[inline(always)]
fn blend(
    simd: V3,
    [ta, tb]: [&[f32]; 2],
    sr: usize,
    c: usize,
    [fy, fx]: [__m256; 2],
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
