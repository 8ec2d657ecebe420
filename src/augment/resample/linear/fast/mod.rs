//! Order 1 in single precision: the kernel behind Keras' default
//! augmentation (bilinear, `float32`), for channels-last images of 1, 3 or
//! 4 channels and channels-first ones plane by plane.
//!
//! Positions are exact enough to be invisible and only the blend runs in
//! f32, one pixel's channels as the lanes of one 4-wide vector. The error
//! against scipy's f64 result rounded to f32, on 0..255 data, is bounded by
//! a few f32 roundings of values below 256 plus the 24-bit fractions (each
//! within 2^-25 pixel): about 5e-5 at worst, against the spec's 1e-4; the
//! conformance fixtures see one f32 ulp (1.5e-5), random matrices 3e-5.
//!
//! Coordinates are fixed point (40 fractional bits), anchored at source
//! pixel (0, 0) and stepped by the matrix's columns, so a mirrored output
//! (Keras' flips, fused here) holds the very values of the unmirrored one,
//! and the drift across an image stays below 1e-9 pixel. In each output row
//! the columns whose four taps are all inside the image form one interval
//! (the map is affine); it is solved exactly in integers ([`fixed::span`])
//! and run with no clamp and no branch but the loop's ([`scalar::stepped`]);
//! on x86-64 CPUs with AVX2, four pixels per step (`avx2`, to the same
//! bits; [`runs`] picks the loop).
//!
//! The columns outside it depend on the mode. `nearest` clamps the fixed
//! point coordinates to the image, which is exactly the nearest extension,
//! so its whole row stays in fixed point ([`runs::nearest_row`], long
//! clamped runs four pixels per step on AVX2 as well); small images skip
//! even that, through a copy with the edges repeated outward, in which
//! every pixel is interior ([`padded`]). Every other mode first shrinks the
//! interval to where scipy's own coordinates (its sums, in its order, in
//! f64) agree that the taps are inside, then takes the pixels around it
//! through scipy's border rules ([`segment::Row::segment`], with
//! `linear::border`): the discontinuous modes (`constant`, legacy `wrap`)
//! switch to their border value at exactly the pixels scipy does.
//!
//! Keras' `rescale` can ride along (a multiply of each rounded value, as
//! `standardize` would do it). Loads are 4 lanes wide whatever the channel
//! count: the extra lanes read the next pixel and are discarded. Stores are 4
//! lanes wide too, spilling onto the next output pixel, which is written
//! afterwards (pixels are produced in memory order); where no room is left,
//! at the end of the image, pixels are stored channel by channel. All of it
//! is safe slicing that LLVM turns into plain vector loads and stores.
//!
//! This file picks the path for an image; the layers under it, each using
//! only those before it: `fixed` (the map in fixed point), `scalar` (the
//! portable loop over a run of pixels), `avx2` (the same loop on AVX2),
//! `runs` (which loop a run takes, and `nearest` rows), `segment` (the
//! border columns of the other modes) and `padded` (the edge copy).

#[cfg(target_arch = "x86_64")]
mod avx2;
mod fixed;
mod padded;
mod runs;
mod scalar;
mod segment;

pub(super) use padded::Pad;

use crate::augment::resample::linear::border::Border;
use crate::augment::resample::linear::channels::Packed;
use crate::augment::resample::linear::job::Job;
use crate::augment::resample::mode::FillMode;
use crate::augment::resample::prefetch::Prefetch;
use crate::DataFormat;
use fixed::{span, Fixed, FRAC};
use padded::{unpadded, Padded};
use runs::{nearest_row, pixels, vector_path};
use scalar::{Run, Sampled};
use segment::Row;

/// Largest image side the fixed point holds (coordinates below 2^22).
const MAX_SIDE: usize = 1 << 22;

/// Coordinates beyond this magnitude (or non-finite ones) send the image to
/// the exact path, which owns scipy's handling of absurd matrices. Keras'
/// draws stay within a few image sizes; this keeps every fixed-point value
/// below 2^60.
const SANE: f64 = (1u64 << 20) as f64;

/// Whether the image can take the single-precision kernel: at least 2×2,
/// sides the fixed point holds, a tap offset that fits 31 bits, and finite,
/// moderate coordinates at the four corners (the map is affine, so
/// everywhere in between as well).
fn applies(job: &Job<'_, f32>) -> bool {
    let (h, w) = (job.shape.height, job.shape.width);
    if h < 2 || w < 2 || h >= MAX_SIDE || w >= MAX_SIDE || job.input.len() >= 1 << 31 {
        return false;
    }
    let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
    [(0.0, 0.0), (0.0, wm1), (hm1, 0.0), (hm1, wm1)]
        .into_iter()
        .flat_map(|(r, c)| job.m.apply(r, c))
        .all(|v| v.abs() < SANE) // false for NaN
}

/// Order 1 for a packed channels-last image (or one plane) of `C` ≤ 4
/// channels. `padded` is the reusable buffer of [`padded`]'s copy.
fn run<const C: usize>(job: &Job<'_, f32>, output: &mut [f32], scale: f32, padded: &mut Vec<f32>) {
    let vector = vector_path();
    let map = Fixed::new(job);
    let exact = job.mode != FillMode::Nearest;
    if !exact && !unpadded() {
        if let Some(pad) = padded::Pad::fit(job) {
            let image = Padded {
                job,
                map: &map,
                pad,
                scale,
                vector,
                next: &Prefetch::default(),
            };
            return padded::run::<C>(&image, Some(job.input), output, padded);
        }
    }
    let (h, w) = (job.shape.height, job.shape.width);
    let m = job.m;
    let src = Sampled {
        input: job.input,
        // Below 2^31 (see `applies`).
        sr32: (w * C) as u32,
        top: [((h - 1) as i64) << FRAC, ((w - 1) as i64) << FRAC],
        scale,
    };
    let (sr, top) = (src.sr32 as usize, src.top);
    let mut border = Border::new(job, Packed::<C>);
    // Output column j samples source column c0 + j·dc.
    let dc = if job.flips[1] { -1 } else { 1 };
    let dj = map.step;
    let len = output.len();
    for i in 0..h {
        let r = map.source_row(i);
        let p = map.row(i);
        // The columns whose fixed-point first taps are in [0, n - 2] on both
        // axes, solved exactly in integers.
        let ((lo_y, hi_y), (lo_x, hi_x)) =
            (span(p[0], dj[0], top[0], w), span(p[1], dj[1], top[1], w));
        let lo = lo_y.max(lo_x);
        let mut hi = hi_y.min(hi_x).max(lo);
        let mut lo = lo;
        let start = i * w * C;
        let row_out = &mut output[start..(start + w * C + 4 - C).min(len)];
        if !exact {
            let row = Run { count: w, p, d: dj };
            nearest_row::<C>(vector, &src, row_out, [lo, hi], row);
            continue;
        }
        let mut row = Row::<C> {
            job,
            border: &mut border,
            base: [
                m.offset[0] + r as f64 * m.a[0][0],
                m.offset[1] + r as f64 * m.a[1][0],
            ],
            a1: [m.a[0][1], m.a[1][1]],
            c0: map.c0 as f64,
            dc: dc as f64,
            hi: [(h - 1) as f64, (w - 1) as f64],
            sr,
            scale,
        };
        // The discontinuous modes switch to their border where scipy's own
        // coordinates do: the interval shrinks to where scipy agrees.
        while lo < hi && !row.inside(lo) {
            lo += 1;
        }
        while hi > lo && !row.inside(hi - 1) {
            hi -= 1;
        }
        row.segment(output, start, 0, lo);
        if lo < hi {
            let out = &mut output[start + lo * C..(start + hi * C + 4 - C).min(len)];
            let interior = Run {
                count: hi - lo,
                p: [p[0] + lo as i64 * dj[0], p[1] + lo as i64 * dj[1]],
                d: dj,
            };
            pixels::<C, false>(vector, &src, out, interior);
        }
        row.segment(output, start, hi, w);
    }
}

/// Runs order 1 in single precision when the image qualifies (see
/// [`applies`]) and the layout has a kernel (channels-last with 1, 3 or 4
/// channels; channels-first plane by plane); `false` leaves the image to the
/// exact path.
pub(super) fn linear_f32(
    job: &Job<'_, f32>,
    output: &mut [f32],
    scale: f32,
    padded: &mut Vec<f32>,
) -> bool {
    if !applies(job) {
        return false;
    }
    let shape = job.shape;
    let packed = shape.format == DataFormat::ChannelsLast || shape.channels == 1;
    match (packed, shape.channels) {
        (true, 1) => run::<1>(job, output, scale, padded),
        (true, 3) => run::<3>(job, output, scale, padded),
        (true, 4) => run::<4>(job, output, scale, padded),
        (true, _) => return false,
        (false, _) => {
            let plane = shape.height * shape.width;
            let one = crate::ImageShape::hwc(shape.height, shape.width, 1);
            for (src, dst) in job
                .input
                .chunks_exact(plane)
                .zip(output.chunks_exact_mut(plane))
            {
                let job = Job {
                    input: src,
                    shape: one,
                    ..*job
                };
                run::<1>(&job, dst, scale, padded);
            }
        }
    }
    true
}

/// The copy [`linear_f32`] takes this image through when it takes one
/// (`nearest` mode, a small image of 1, 3 or 4 packed channels: see
/// [`padded`]), so that a caller can read the image straight into it
/// ([`padded::Pad::placement`]) and call [`linear_f32_read`]. `job.input`
/// is not looked at.
pub(super) fn read_pad(job: &Job<'_, f32>) -> Option<padded::Pad> {
    let shape = job.shape;
    let packed = shape.format == DataFormat::ChannelsLast || shape.channels == 1;
    let kernel = packed && matches!(shape.channels, 1 | 3 | 4);
    if !kernel || job.mode != FillMode::Nearest || unpadded() || !applies(job) {
        return None;
    }
    padded::Pad::fit(job)
}

/// [`linear_f32`] of the image the caller has read into `padded` where
/// `pad` (from [`read_pad`] for this job) places it; `job.input` is not
/// looked at. The same values as [`linear_f32`] on the image. `next`:
/// lines to prefetch for the next sample while this one is resampled.
pub(super) fn linear_f32_read(
    job: &Job<'_, f32>,
    pad: padded::Pad,
    output: &mut [f32],
    scale: f32,
    padded: &mut Vec<f32>,
    next: &Prefetch<'_>,
) {
    let map = Fixed::new(job);
    let image = Padded {
        job,
        map: &map,
        pad,
        scale,
        vector: vector_path(),
        next,
    };
    match job.shape.channels {
        1 => padded::run::<1>(&image, None, output, padded),
        3 => padded::run::<3>(&image, None, output, padded),
        _ => padded::run::<4>(&image, None, output, padded),
    }
}

#[cfg(test)]
mod tests;
