//! Per-channel moments of a block of rows, and Chan's merge of two blocks.

use crate::layout::{DataFormat, ImageShape};
use crate::simd::on_avx2;

/// Count, mean and sum of squared deviations of one channel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Moments {
    pub(super) n: f64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

impl Moments {
    /// Chan et al.'s pairwise merge of two disjoint parts.
    pub(super) fn merge(self, other: Moments) -> Moments {
        if other.n == 0.0 {
            return self;
        }
        if self.n == 0.0 {
            return other;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        Moments {
            n,
            mean: self.mean + delta * (other.n / n),
            m2: self.m2 + other.m2 + delta * delta * (self.n * other.n / n),
        }
    }
}

/// Exact per-channel moments of a block of rows (two passes over memory).
///
/// On x86-64 with AVX2 the passes are compiled for it (four lanes a step
/// instead of SSE2's two, and no FMA: each accumulator lane adds the same
/// values in the same order, so the results are the same bits).
pub(super) fn block_moments(block: &[f64], image: ImageShape) -> Vec<Moments> {
    on_avx2(
        #[inline(always)]
        || block_moments_body(block, image),
    )
}

#[inline(always)]
fn block_moments_body(block: &[f64], image: ImageShape) -> Vec<Moments> {
    let c = image.channels;
    let count = (block.len() / c.max(1)) as f64;
    let sum = channel_sums(block, image, None);
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let m2 = channel_sums(block, image, Some(&mean));
    mean.iter()
        .zip(m2)
        .map(|(&mean, m2)| Moments { n: count, mean, m2 })
        .collect()
}

/// [`block_moments`] of `u8` values, exactly: per-channel sums and sums of
/// squares in integers, so `mean = S / n` and `m2 = (n·Q − S²) / n` are each
/// one rounding of the exact value (the two `f64` passes round at every
/// addition). Channels last, `LANES % channels == 0` (callers check
/// [`u8_moments_apply`]). Compiled for AVX2 where the CPU has it.
pub(super) fn block_moments_u8(block: &[u8], image: ImageShape) -> Vec<Moments> {
    on_avx2(
        #[inline(always)]
        || block_moments_u8_body(block, image),
    )
}

/// Whether [`block_moments_u8`] takes images of this layout.
pub(super) fn u8_moments_apply(image: ImageShape) -> bool {
    image.format == DataFormat::ChannelsLast
        && image.channels > 0
        && LANES.is_multiple_of(image.channels)
}

/// Values per lane summed in `u32` before moving to `u64`: 16384 squares of
/// at most 255² stay below 2³².
const U32_RUN: usize = 16_384;

#[inline(always)]
fn block_moments_u8_body(block: &[u8], image: ImageShape) -> Vec<Moments> {
    let c = image.channels;
    let (mut sum, mut sq) = ([0u64; LANES], [0u64; LANES]);
    // Pieces are whole multiples of LANES but the last, so lane `i` always
    // holds channel `i % c`.
    for piece in block.chunks(LANES * U32_RUN) {
        let (mut s, mut q) = ([0u32; LANES], [0u32; LANES]);
        let lanes = piece.chunks_exact(LANES);
        let rest = lanes.remainder();
        for px in lanes {
            for i in 0..LANES {
                let v = u32::from(px[i]);
                s[i] += v;
                q[i] += v * v;
            }
        }
        for (i, &v) in rest.iter().enumerate() {
            let v = u32::from(v);
            s[i] += v;
            q[i] += v * v;
        }
        for i in 0..LANES {
            sum[i] += u64::from(s[i]);
            sq[i] += u64::from(q[i]);
        }
    }
    let n = (block.len() / c) as u128;
    (0..c)
        .map(|ch| {
            let s: u128 = (ch..LANES).step_by(c).map(|i| u128::from(sum[i])).sum();
            let q: u128 = (ch..LANES).step_by(c).map(|i| u128::from(sq[i])).sum();
            Moments {
                n: n as f64,
                mean: s as f64 / n as f64,
                m2: (n * q - s * s) as f64 / n as f64,
            }
        })
        .collect()
}

/// Lanes of the per-channel accumulators: a multiple of 1, 2, 3, 4, 6 and 8
/// channels, so with channels last lane `i` always holds channel `i % c`.
const LANES: usize = 24;

/// Per channel of `block`: the sum of the values, or with `mean` the sum of
/// squared deviations from it. Fixed-width lane accumulators let the
/// compiler vectorise (a per-value closure call cost 3× the whole pass);
/// the summation order is fixed, so results do not depend on threads.
#[inline(always)]
fn channel_sums(block: &[f64], image: ImageShape, mean: Option<&[f64]>) -> Vec<f64> {
    let c = image.channels;
    let term = |v: f64, m: f64| match mean {
        Some(_) => (v - m) * (v - m),
        None => v,
    };
    let mut out = vec![0.0; c];
    match image.format {
        DataFormat::ChannelsLast if LANES.is_multiple_of(c) => {
            let lane_mean: [f64; LANES] = std::array::from_fn(|i| mean.map_or(0.0, |m| m[i % c]));
            let mut acc = [0.0; LANES];
            let chunks = block.chunks_exact(LANES);
            let rest = chunks.remainder();
            for chunk in chunks {
                for i in 0..LANES {
                    acc[i] += term(chunk[i], lane_mean[i]);
                }
            }
            // The remainder starts on channel 0 (LANES is a multiple of c).
            for (i, &v) in rest.iter().enumerate() {
                acc[i] += term(v, lane_mean[i]);
            }
            for (i, a) in acc.iter().enumerate() {
                out[i % c] += a;
            }
        }
        DataFormat::ChannelsLast => {
            for px in block.chunks_exact(c) {
                for (ch, &v) in px.iter().enumerate() {
                    out[ch] += term(v, mean.map_or(0.0, |m| m[ch]));
                }
            }
        }
        DataFormat::ChannelsFirst => {
            let plane = image.height * image.width;
            for row in block.chunks_exact(image.len()) {
                for (ch, p) in row.chunks_exact(plane).enumerate() {
                    let m = mean.map_or(0.0, |m| m[ch]);
                    let mut acc = [0.0; 8];
                    let chunks = p.chunks_exact(8);
                    let rest = chunks.remainder();
                    for chunk in chunks {
                        for i in 0..8 {
                            acc[i] += term(chunk[i], m);
                        }
                    }
                    for (i, &v) in rest.iter().enumerate() {
                        acc[i] += term(v, m);
                    }
                    out[ch] += acc.iter().sum::<f64>();
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of the passes gives the baseline build's bits (no
    /// FMA, the same order in each lane), for each channel layout.
    #[test]
    fn the_dispatched_passes_equal_the_baseline_ones_to_the_bit() {
        let x: Vec<f64> = (0..16 * 7 * 5 * 3)
            .map(|i| (i as f64 * 0.731).sin() * 1e3 + (i % 251) as f64 * 1e-7)
            .collect();
        for img in [
            ImageShape::hwc(7, 5, 3),
            ImageShape::hwc(7, 15, 1),
            ImageShape::chw(3, 7, 5),
            ImageShape::hwc(7, 3, 5),
        ] {
            let (fast, base) = (block_moments(&x, img), block_moments_body(&x, img));
            for (f, b) in fast.iter().zip(&base) {
                assert_eq!(
                    (f.mean.to_bits(), f.m2.to_bits()),
                    (b.mean.to_bits(), b.m2.to_bits()),
                    "{img:?}"
                );
            }
        }
    }

    /// The integer moments of u8 blocks against the f64 passes on the same
    /// values, across the u32 → u64 flush (more than `LANES × U32_RUN`
    /// bytes) and a remainder, for 1, 3 and 4 channels; and exactly on a
    /// block whose answer is known.
    #[test]
    fn u8_moments_equal_the_f64_passes() {
        let len = LANES * U32_RUN * 2 + 12 * 7;
        let bytes: Vec<u8> = (0..len).map(|i| ((i * 7919) % 256) as u8).collect();
        for c in [1, 3, 4] {
            let image = ImageShape::hwc(1, len / c, c);
            assert!(u8_moments_apply(image));
            let values: Vec<f64> = bytes.iter().map(|&b| f64::from(b)).collect();
            let (ints, floats) = (
                block_moments_u8(&bytes, image),
                block_moments(&values, image),
            );
            for (i, f) in ints.iter().zip(&floats) {
                assert_eq!(i.n, f.n);
                assert!(
                    (i.mean - f.mean).abs() <= 1e-12 * f.mean,
                    "{c}: {i:?} {f:?}"
                );
                assert!((i.m2 - f.m2).abs() <= 1e-12 * f.m2, "{c}: {i:?} {f:?}");
            }
        }
        // Half 0, half 255 on one channel: mean 127.5, m2 = n × 127.5².
        let n = LANES * U32_RUN + 2;
        let block: Vec<u8> = (0..n).map(|i| if i < n / 2 { 0 } else { 255 }).collect();
        let m = block_moments_u8(&block, ImageShape::hwc(1, n, 1))[0];
        assert_eq!((m.mean, m.m2), (127.5, n as f64 * 127.5 * 127.5));
        assert!(!u8_moments_apply(ImageShape::chw(3, 4, 4)));
        assert!(!u8_moments_apply(ImageShape::hwc(4, 4, 5)));
    }

    #[test]
    fn chan_merge_matches_two_pass() {
        let x: Vec<f64> = (0..37).map(|i| 1e6 + (i as f64 * 0.37).sin()).collect();
        let (a, b) = x.split_at(11);
        let img = ImageShape::hwc(1, 1, 1);
        let m = block_moments(a, img)[0].merge(block_moments(b, img)[0]);
        let mean = x.iter().sum::<f64>() / 37.0;
        let m2: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
        assert!((m.mean - mean).abs() < 1e-9);
        assert!((m.m2 - m2).abs() < 1e-9 * m2);
    }
}
