//! `nearest` mode on small images through an edge-replicated copy of the
//! input, so that every output pixel is an interior one.
//!
//! Keras' augmentations map the corners of a 32×32 image a few pixels
//! outside it (rotation 20°, shear 10°, shifts 0.1, zoom 0.1: about 5 at the
//! median, 13 at worst), and the output pixels that land there are a quarter
//! of the image. On the direct path (`runs::nearest_row`) they take the
//! clamped loop, mostly in runs too short for its vector form, and every
//! row first solves where its interior is (`fixed::span`): a large share of
//! the kernel on small images. Here the input is first copied with its
//! edges repeated outward, by as many pixels on each side as the corners
//! reach, plus one. Then every pixel's four taps are in the copy, and each
//! row is one run of the interior loop (four pixels per step on AVX2) with
//! no clamp, no spans and no scalar ends.
//!
//! The copy costs less than it saves while it stays in the core's caches,
//! and more once it does not: hence [`MAX_ELEMENTS`].
//!
//! A caller that reads the image from storage anyway reads it straight
//! into the copy ([`Pad::placement`]); its resampling then has a loop over
//! output rows in which to spread the prefetches of the next sample
//! ([`Padded::next`]).
//!
//! Values: the nearest extension repeats the edge pixels, which is what
//! the copy holds, so the pixels are the direct path's, to the bit, but
//! where a coordinate is past the last row (or column). There the direct
//! path clamps to a fraction of 1 between the last two, `a + (b - a)·1`,
//! which in f32 can be an ulp off `b` (`a` and `b` are blends themselves);
//! the copy blends the last with itself and gets `b`, which is scipy's
//! value. Which path an image takes depends only on its shape and matrix,
//! never on the CPU, so a seed still gives the same bytes everywhere.

use super::fixed::{Fixed, FRAC};
use super::runs::{pixels, Avx2};
use super::scalar::{Run, Sampled};
use crate::augment::resample::linear::job::Job;
use crate::augment::resample::prefetch::Prefetch;
use crate::layout::Placement;
use crate::ImageShape;

/// The largest copy taken, in elements: 128 KiB of f32. A 32×32×3 image
/// with its typical margins is 19 KiB and a 64×64×3 one 75 KiB; from about
/// 96×96×3 (170 KiB) on, the copy no longer pays for itself.
const MAX_ELEMENTS: usize = 32 * 1024;

#[cfg(test)]
thread_local! {
    /// Set by the tests that hold the padded copy to the direct path.
    pub(super) static UNPADDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a test has turned the padded copy off.
pub(super) fn unpadded() -> bool {
    #[cfg(test)]
    if UNPADDED.get() {
        return true;
    }
    false
}

/// Pixels of replicated edge on each side of the copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pad {
    top: usize,
    left: usize,
    bottom: usize,
    right: usize,
}

impl Pad {
    /// The margins that hold every tap of the image's output, when the
    /// copy is small enough to pay (see [`MAX_ELEMENTS`]). The map is
    /// affine, so its extremes over the image are at the corners; the one
    /// extra pixel covers the second tap and the fixed point's rounding
    /// (far below a pixel).
    pub(super) fn fit(job: &Job<'_, f32>) -> Option<Pad> {
        let (h, w) = (job.shape.height, job.shape.width);
        let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
        let corners =
            [(0.0, 0.0), (0.0, wm1), (hm1, 0.0), (hm1, wm1)].map(|(r, c)| job.m.apply(r, c));
        let last = [hm1, wm1];
        // Whole pixels past the edge on side `below` of axis `k` (finite:
        // see `applies`), plus one.
        let reach = |k: usize, below: bool| {
            let past = corners
                .iter()
                .map(|v| if below { -v[k] } else { v[k] - last[k] });
            past.fold(0.0, f64::max).ceil() as usize + 1
        };
        let pad = Pad {
            top: reach(0, true),
            left: reach(1, true),
            bottom: reach(0, false),
            right: reach(1, false),
        };
        let elements = (h + pad.top + pad.bottom)
            .checked_mul(w + pad.left + pad.right)
            .and_then(|n| n.checked_mul(job.shape.channels));
        elements.is_some_and(|n| n <= MAX_ELEMENTS).then_some(pad)
    }
}

impl Pad {
    /// Elements per row of the copy.
    fn row(&self, shape: ImageShape) -> usize {
        (shape.width + self.left + self.right) * shape.channels
    }

    /// Where the image goes in the copy: one run per row, inside the
    /// margins.
    pub(crate) fn placement(&self, shape: ImageShape) -> Placement {
        let row = self.row(shape);
        Placement {
            run: shape.width * shape.channels,
            start: self.top * row + self.left * shape.channels,
            stride: row,
        }
    }

    /// `buf` as the copy of an image of `shape`: its rows, and 4 elements
    /// to spare at the end for the 4-lane loads of the last taps (whatever
    /// they hold lands in lanes that are discarded).
    pub(crate) fn buffer(self, shape: ImageShape, buf: &mut Vec<f32>) -> &mut [f32] {
        let len = (shape.height + self.top + self.bottom) * self.row(shape) + 4;
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        &mut buf[..len]
    }
}

/// The margins of the copy `buf`, whose inside holds the image (see
/// [`Pad::placement`]): each row's first and last pixel repeated outward,
/// then its first and last row. Every element but the spare ones written.
#[inline(always)]
fn fill_margins<const C: usize>(shape: ImageShape, pad: Pad, buf: &mut [f32]) {
    let (h, w) = (shape.height, shape.width);
    let row = pad.row(shape);
    let (top, rest) = buf.split_at_mut(pad.top * row);
    let (middle, bottom) = rest.split_at_mut(h * row);
    for r in middle.chunks_exact_mut(row) {
        let (left, rest) = r.split_at_mut(pad.left * C);
        let (inside, right) = rest.split_at_mut(w * C);
        let pixel = |at: usize| -> [f32; C] { inside[at..at + C].try_into().expect("C elements") };
        let (first, last) = (pixel(0), pixel((w - 1) * C));
        left.chunks_exact_mut(C)
            .for_each(|px| px.copy_from_slice(&first));
        right
            .chunks_exact_mut(C)
            .for_each(|px| px.copy_from_slice(&last));
    }
    let (first, last) = (&middle[..row], &middle[(h - 1) * row..]);
    top.chunks_exact_mut(row).for_each(|r| copy(r, first));
    let bottom = &mut bottom[..pad.bottom * row];
    bottom.chunks_exact_mut(row).for_each(|r| copy(r, last));
}

/// `input`, if any, into the inside of the copy (else the caller has read
/// the image there), then the margins.
#[inline(always)]
fn fill<const C: usize>(input: Option<&[f32]>, shape: ImageShape, pad: Pad, buf: &mut [f32]) {
    if let Some(input) = input {
        let runs = pad.placement(shape).runs(buf, input.len());
        for (run, src) in runs.zip(input.chunks_exact(shape.width * C)) {
            copy(run, src);
        }
    }
    fill_margins::<C>(shape, pad, buf);
}

/// `dst.copy_from_slice(src)` as a loop compiled in place (in the AVX2
/// context: 256-bit moves) rather than a call to `memcpy`, which costs more
/// than these short copies.
#[inline(always)]
fn copy(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
}

/// One image through the copy: what [`run`] needs besides the buffers.
pub(super) struct Padded<'a> {
    /// The image's job; its input is [`run`]'s `input`.
    pub job: &'a Job<'a, f32>,
    /// The image's map in fixed point.
    pub map: &'a Fixed,
    /// The copy's margins.
    pub pad: Pad,
    /// The factor every value is multiplied by.
    pub scale: f32,
    /// The vector path, when the CPU has one.
    pub vector: Option<Avx2>,
    /// Memory the caller wants in the CPU caches soon (the next sample's
    /// row): a few lines issued per output row, spread over the image.
    pub next: &'a Prefetch<'a>,
}

/// The image through the copy: [`fill`], then each output row as one
/// interior run ([`pixels`]) with the coordinates moved by the top and left
/// margins. `input`: the image, or `None` when the caller has read it into
/// the copy already. `buf` is the caller's reusable buffer.
pub(super) fn run<const C: usize>(
    image: &Padded<'_>,
    input: Option<&[f32]>,
    output: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let Padded {
        job,
        map,
        pad,
        scale,
        vector,
        next,
    } = *image;
    let shape = job.shape;
    let (h, w) = (shape.height, shape.width);
    let buf = pad.buffer(shape, buf);
    match vector {
        // The copies take 256-bit moves inside the AVX2 context.
        Some(v) => v.vectorize(
            #[inline(always)]
            || fill::<C>(input, shape, pad, buf),
        ),
        None => fill::<C>(input, shape, pad, buf),
    }
    let (ph, pw) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
    let src = Sampled {
        input: buf,
        sr32: (pw * C) as u32,
        top: [((ph - 1) as i64) << FRAC, ((pw - 1) as i64) << FRAC],
        scale,
    };
    let shift = [(pad.top as i64) << FRAC, (pad.left as i64) << FRAC];
    let len = output.len();
    // All of `next` by the last row, evenly: see `Prefetch`.
    let per_row = next.lines_left().div_ceil(h.max(1));
    for i in 0..h {
        next.issue(per_row);
        let p = map.row(i);
        let row = Run {
            count: w,
            p: [p[0] + shift[0], p[1] + shift[1]],
            d: map.step,
        };
        let start = i * w * C;
        let out = &mut output[start..(start + w * C + 4 - C).min(len)];
        pixels::<C, false>(vector, &src, out, row);
    }
}
