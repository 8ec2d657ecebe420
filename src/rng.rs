//! Reproducible randomness: one independent stream per (seed, purpose, epoch, index).
//!
//! Keras reseeds numpy's global generator per batch, so augmentation depends
//! on how many batches were drawn before and races between threads. npyflow
//! instead derives a fresh xoshiro256++ stream from the tuple it belongs to:
//! the epoch permutation from (seed, epoch), a sample's augmentation from
//! (seed, epoch, sample index). Output is then independent of thread count,
//! prefetch depth, batch size and call order.

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// What a stream is used for; keeps streams of different purposes disjoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// The permutation of an epoch.
    Permutation = 0x5045_524d,
    /// One sample's augmentation parameters.
    Augment = 0x4155_474d,
    /// Augmentation during `fit(augment=true)`.
    Fit = 0x4649_5421,
    /// The 4-digit suffix of a saved image's file name.
    SaveName = 0x5341_5645,
    /// Block order of the page-aware shuffle.
    Blocks = 0x424c_4b53,
}

/// SplitMix64 finaliser: a bijective 64-bit mixer.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, fast, seedable random stream with the draws augmentation needs.
///
/// Seeded on its first draw: every sample gets a stream, and without random
/// augmentation none is drawn from (seeding each was a tenth of a
/// rescale-only epoch's CPU time).
#[derive(Clone, Debug)]
pub struct SampleRng {
    key: u64,
    state: Option<Xoshiro256PlusPlus>,
}

impl SampleRng {
    /// The stream for `purpose` at (`seed`, `epoch`, `index`).
    pub fn new(seed: u64, purpose: Stream, epoch: u64, index: u64) -> SampleRng {
        SampleRng {
            key: mix(mix(mix(seed ^ purpose as u64) ^ epoch) ^ index),
            state: None,
        }
    }

    /// A raw 64-bit draw.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let key = self.key;
        self.state
            .get_or_insert_with(|| Xoshiro256PlusPlus::seed_from_u64(key))
            .next_u64()
    }

    /// Uniform in `[0, 1)` with 53 bits of precision (numpy's `random()` resolution).
    #[inline]
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `lo + (hi - lo) * random()`, numpy's `uniform(lo, hi)` formula (so `hi < lo` is allowed).
    #[inline]
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.random()
    }

    /// Uniform integer in `0..n` without modulo bias (Lemire's method). `n == 0` returns 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Draws a seed for users who give none (read back with the iterator's `seed()`).
pub(crate) fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    mix(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_each_coordinate() {
        let base = SampleRng::new(1, Stream::Augment, 0, 0).next_u64();
        assert_ne!(base, SampleRng::new(2, Stream::Augment, 0, 0).next_u64());
        assert_ne!(base, SampleRng::new(1, Stream::Fit, 0, 0).next_u64());
        assert_ne!(base, SampleRng::new(1, Stream::Augment, 1, 0).next_u64());
        assert_ne!(base, SampleRng::new(1, Stream::Augment, 0, 1).next_u64());
        assert_eq!(base, SampleRng::new(1, Stream::Augment, 0, 0).next_u64());
    }

    /// Every permutation and augmentation derives from these draws: a
    /// `rand_xoshiro` (or `rand_core`) release that seeds or steps the
    /// generator differently fails here, where the cause is plain, before
    /// it fails the golden pins.
    #[test]
    fn streams_are_pinned() {
        let draws = |mut r: SampleRng| [r.next_u64(), r.next_u64(), r.next_u64()];
        assert_eq!(
            draws(SampleRng::new(1, Stream::Augment, 0, 0)),
            [
                0x96e9_0d0a_5f51_b73f,
                0xa698_9836_17ad_f91d,
                0xc0e3_aaba_276f_023b
            ]
        );
        assert_eq!(
            draws(SampleRng::new(u64::MAX, Stream::Permutation, 7, 123_456)),
            [
                0x79f2_b2f7_e7e9_269d,
                0xf6d9_335e_c473_ba8a,
                0x4b28_6dc5_1fa1_046e
            ]
        );
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = SampleRng::new(7, Stream::Augment, 0, 0);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[r.below(3) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn uniform_stays_in_half_open_range() {
        let mut r = SampleRng::new(3, Stream::Augment, 0, 0);
        for _ in 0..10_000 {
            let v = r.uniform(-2.0, 5.0);
            assert!((-2.0..5.0).contains(&v));
        }
    }
}
