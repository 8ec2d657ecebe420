//! Orders 0 and 1 (nearest neighbour and bilinear), the kernels Keras users
//! run by default, tuned for small images.
//!
//! Per output pixel the coordinates, taps and weights are computed once and
//! the channels are blended in one pass. Pixels whose neighbourhood is inside
//! the image skip every boundary rule; the others fold their taps through
//! [`axis_taps`] and reuse the same blend. Channels-last images with 1, 3 or 4
//! channels get a kernel with the channel count known at compile time, so a
//! pixel's channels are loaded, blended and stored as one small array (bounds
//! checked once, vectorisable); other layouts go through strides.
//!
//! The arithmetic is scipy's, term for term (`((v·w_row)·w_col)` summed in
//! footprint order), so results equal scipy's to the last bit. The exception
//! is order 1 on `f32` images, Keras' default: [`fast`] blends in single
//! precision (within the spec's 1e-4 of scipy) at a fraction of the cost.
//!
//! Both kernels can write the result mirrored (Keras' flips, which come right
//! after the affine step), so a flipped sample costs no extra pass.

mod fast;

use super::boundary::{axis_taps, floor, AxisTaps};
use super::resample::{general_pixel, Source};
use super::{Affine2, FillMode};
use crate::layout::Placement;
use crate::sys::PrefetchTrickle;
use crate::{DataFormat, ImageShape, Real};

/// How the channels of one pixel are laid out in the buffer.
trait Channels: Copy {
    /// Copies the pixel whose channel 0 is at `src` to the one at `dst`.
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize);

    /// Sets every channel of the pixel at `dst` to `v`.
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T);

    /// Writes at `dst` the bilinear blend of the four pixels at `r[a] + c[b]`
    /// with weights `w = [w_row0, w_row1, w_col0, w_col1]`.
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    );
}

/// scipy's bilinear sum for one channel, in its order.
#[inline(always)]
fn bilinear(v: [f64; 4], w: [f64; 4]) -> f64 {
    v[0] * w[0] * w[2] + v[1] * w[0] * w[3] + v[2] * w[1] * w[2] + v[3] * w[1] * w[3]
}

/// Channels-last with `C` channels: a pixel is `C` adjacent elements.
#[derive(Clone, Copy)]
struct Packed<const C: usize>;

impl<const C: usize> Packed<C> {
    #[inline(always)]
    fn pixel<T: Real>(data: &[T], at: usize) -> &[T; C] {
        // The slice has exactly C elements, so the conversion cannot fail.
        data[at..at + C].try_into().expect("C elements")
    }
}

impl<const C: usize> Channels for Packed<C> {
    #[inline(always)]
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize) {
        output[dst..dst + C].copy_from_slice(Self::pixel(input, src));
    }

    #[inline(always)]
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T) {
        output[dst..dst + C].fill(v);
    }

    #[inline(always)]
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    ) {
        let p00 = Self::pixel(input, r[0] + c[0]);
        let p01 = Self::pixel(input, r[0] + c[1]);
        let p10 = Self::pixel(input, r[1] + c[0]);
        let p11 = Self::pixel(input, r[1] + c[1]);
        let out: &mut [T; C] = (&mut output[dst..dst + C]).try_into().expect("C elements");
        for ch in 0..C {
            let v = [p00[ch], p01[ch], p10[ch], p11[ch]].map(T::to_f64_lossless);
            out[ch] = T::from_f64_lossy(bilinear(v, w));
        }
    }
}

/// Any layout: `count` channels `stride` elements apart.
#[derive(Clone, Copy)]
struct Strided {
    count: usize,
    stride: usize,
}

impl Channels for Strided {
    #[inline(always)]
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize) {
        for ch in 0..self.count {
            let o = ch * self.stride;
            output[dst + o] = input[src + o];
        }
    }

    #[inline(always)]
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T) {
        for ch in 0..self.count {
            output[dst + ch * self.stride] = v;
        }
    }

    #[inline(always)]
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    ) {
        for ch in 0..self.count {
            let o = ch * self.stride;
            let v = [
                input[r[0] + c[0] + o],
                input[r[0] + c[1] + o],
                input[r[1] + c[0] + o],
                input[r[1] + c[1] + o],
            ]
            .map(T::to_f64_lossless);
            output[dst + o] = T::from_f64_lossy(bilinear(v, w));
        }
    }
}

/// Channels-first with `C` channels: planes `stride` elements apart.
#[derive(Clone, Copy)]
struct Planes<const C: usize> {
    stride: usize,
}

impl<const C: usize> Channels for Planes<C> {
    #[inline(always)]
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize) {
        Strided {
            count: C,
            stride: self.stride,
        }
        .copy(input, output, src, dst);
    }

    #[inline(always)]
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T) {
        Strided {
            count: C,
            stride: self.stride,
        }
        .fill(output, dst, v);
    }

    #[inline(always)]
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    ) {
        Strided {
            count: C,
            stride: self.stride,
        }
        .blend(input, output, r, c, w, dst);
    }
}

/// 2^52: adding and subtracting it rounds an f64 of magnitude below 2^51 to
/// an integer, and leaves a non-negative integer below 2^32 in the low bits.
const MAGIC: f64 = 4_503_599_627_370_496.0;

/// `floor(v)` for |v| < 2^51 with plain adds and a compare, which vectorise on
/// the baseline target (its float-to-int conversions do not). Exact: the
/// round-to-nearest result is at most 0.5 away, so stepping down when it
/// overshoots gives the floor, ties included. Garbage beyond 2^51 or for
/// non-finite `v`, where callers do not use it.
#[inline(always)]
fn floor_small(v: f64) -> f64 {
    let r = (v + MAGIC) - MAGIC;
    r - if r > v { 1.0 } else { 0.0 }
}

/// The integer value of a whole `v` in `[0, 2^32)`, read from the bits of
/// `v + 2^52` (a vectorisable reinterpretation instead of a conversion).
#[inline(always)]
fn small_to_u32(v: f64) -> u32 {
    (v + MAGIC).to_bits() as u32
}

/// Reusable buffers of orders 0 and 1.
#[derive(Debug, Default)]
pub(crate) struct LowScratch {
    plan: RowPlan,
    /// The single-precision kernel's edge-replicated copy of small inputs.
    padded: Vec<f32>,
    /// The copy's margins as [`LowScratch::read_buffer`] last handed it
    /// out, for [`LowScratch::transform_read`] (not worked out twice).
    read: Option<fast::Pad>,
    /// The next sample's row lines queued on this thread (`sys::prefetch_later`)
    /// when `read_buffer` handed out a copy: the copy's resampling issues
    /// them a few per output row.
    trickle: PrefetchTrickle,
}

impl LowScratch {
    /// Order 1 on an `f32` image may read it through an edge-replicated
    /// copy (`nearest` mode, small images: see `fast::padded`). When it
    /// does, the copy and where the image goes in it, so that the caller
    /// can read the image straight in (no intermediate buffer) and call
    /// [`LowScratch::transform_read`] with the same arguments.
    pub(crate) fn read_buffer(
        &mut self,
        shape: ImageShape,
        m: &Affine2,
        mode: FillMode,
    ) -> Option<(&mut [f32], Placement)> {
        self.read = fast::read_pad(&Job::without_input(shape, m, mode, [false; 2]));
        let pad = self.read?;
        // Taken before the image is read: the read would issue them all.
        self.trickle = PrefetchTrickle::take();
        Some((pad.buffer(shape, &mut self.padded), pad.placement(shape)))
    }

    /// Order 1 of the image read into [`LowScratch::read_buffer`]'s copy
    /// (the same `shape`, `m` and `mode`), mirrored by `flips` and
    /// multiplied by `scale` as [`low_order`] does: the same values as
    /// [`low_order`] on the image.
    ///
    /// # Panics
    /// When the last `read_buffer` gave no copy, or its copy was used
    /// already (caller bugs).
    pub(crate) fn transform_read(
        &mut self,
        output: &mut [f32],
        shape: ImageShape,
        m: &Affine2,
        mode: FillMode,
        flips: [bool; 2],
        scale: Option<f64>,
    ) {
        let job = Job::without_input(shape, m, mode, flips);
        let pad = self
            .read
            .take()
            .expect("transform_read after read_buffer gave a copy");
        let scale = scale.map_or(1.0, |s| s as f32);
        let trickle = std::mem::take(&mut self.trickle);
        fast::linear_f32_read(&job, pad, output, scale, &mut self.padded, trickle);
    }
}

/// Per-row scratch for order 1: the coordinates, integer taps, weights and
/// interior flags of every output pixel of one row, computed in a first,
/// branch-free pass (done pixel by pixel, the float-to-int conversions and
/// weights cost more than the blend itself).
#[derive(Debug, Default)]
pub(crate) struct RowPlan {
    col: Vec<f64>,
    y: Vec<f64>,
    x: Vec<f64>,
    iy: Vec<u32>,
    ix: Vec<u32>,
    wy: Vec<f64>,
    wx: Vec<f64>,
    inside: Vec<bool>,
}

impl RowPlan {
    fn reset(&mut self, w: usize) {
        if self.col.len() != w {
            self.col.clear();
            self.col.extend((0..w).map(|c| c as f64));
            for v in [&mut self.y, &mut self.x, &mut self.wy, &mut self.wx] {
                v.resize(w, 0.0);
            }
            self.iy.resize(w, 0);
            self.ix.resize(w, 0);
            self.inside.resize(w, false);
        }
    }

    /// Plans row `r` for order 1. Coordinates are summed as scipy does
    /// (`offset + r·a0 + c·a1`, left to right). A pixel is "inside" when both
    /// taps of both axes are within the image, so no boundary rule applies;
    /// its taps are then `iy, iy + 1` / `ix, ix + 1` with weights
    /// `wy, 1 - wy` / `wx, 1 - wx` (scipy's `1 - t` and `1 - (1 - t)`).
    #[inline(always)]
    fn plan(&mut self, m: &Affine2, r: usize, h: usize, w: usize) {
        let rf = r as f64;
        let (y0, x0) = (m.offset[0] + rf * m.a[0][0], m.offset[1] + rf * m.a[1][0]);
        let (ay, ax) = (m.a[0][1], m.a[1][1]);
        let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
        let n = w.min(self.col.len());
        let (col, ys, xs) = (&self.col[..n], &mut self.y[..n], &mut self.x[..n]);
        let (iy, ix, wy, wx, inside) = (
            &mut self.iy[..n],
            &mut self.ix[..n],
            &mut self.wy[..n],
            &mut self.wx[..n],
            &mut self.inside[..n],
        );
        for c in 0..n {
            let y = y0 + col[c] * ay;
            let x = x0 + col[c] * ax;
            ys[c] = y;
            xs[c] = x;
            let (fy, fx) = (floor_small(y), floor_small(x));
            iy[c] = small_to_u32(fy);
            ix[c] = small_to_u32(fx);
            wy[c] = 1.0 - (y - fy);
            wx[c] = 1.0 - (x - fx);
            // Non-short-circuit `&` keeps the loop branch-free; NaN fails.
            inside[c] = (y >= 0.0) & (y < hm1) & (x >= 0.0) & (x < wm1);
        }
    }
}

/// Orders 0 and 1, straight from the input, dispatched on the layout and
/// the element type. `flips` (`[vertical, horizontal]`) mirrors the output;
/// `scale`, if any, multiplies it (single-precision kernel only). Returns
/// whether `scale` was applied (`true` when there is none).
#[allow(clippy::too_many_arguments)] // affine_transform's arguments, passed through
pub(crate) fn low_order<T: Real>(
    input: &[T],
    output: &mut [T],
    shape: ImageShape,
    m: &Affine2,
    order: usize,
    mode: FillMode,
    cval: f64,
    scratch: &mut LowScratch,
    flips: [bool; 2],
    scale: Option<f64>,
) -> bool {
    if order == 1 && T::DTYPE == crate::OutputDtype::F32 {
        // Same type: the casts are reinterpretations and cannot fail.
        if let (Ok(input), Ok(out)) = (
            bytemuck::try_cast_slice::<T, f32>(input),
            bytemuck::try_cast_slice_mut::<T, f32>(output),
        ) {
            let job = Job {
                input,
                shape,
                m,
                mode,
                cval,
                flips,
            };
            // Rounded as `standardize` rounds `rescale` for f32 images.
            let scale = scale.map_or(1.0, |s| s as f32);
            if fast::linear_f32(&job, out, scale, &mut scratch.padded) {
                return true;
            }
        }
    }
    let (_, _, sch) = shape.strides();
    let packed = shape.format == DataFormat::ChannelsLast || shape.channels == 1;
    let job = Job {
        input,
        shape,
        m,
        mode,
        cval,
        flips,
    };
    let plan = &mut scratch.plan;
    plan.reset(shape.width);
    match (packed, shape.channels, order) {
        (true, 1, 0) => job.nearest(output, Packed::<1>),
        (true, 1, _) => job.linear(output, plan, Packed::<1>),
        (true, 3, 0) => job.nearest(output, Packed::<3>),
        (true, 3, _) => job.linear(output, plan, Packed::<3>),
        (true, 4, 0) => job.nearest(output, Packed::<4>),
        (true, 4, _) => job.linear(output, plan, Packed::<4>),
        (false, 3, 0) => job.nearest(output, Planes::<3> { stride: sch }),
        (false, 3, _) => job.linear(output, plan, Planes::<3> { stride: sch }),
        (_, count, 0) => job.nearest(output, Strided { count, stride: sch }),
        (_, count, _) => job.linear(output, plan, Strided { count, stride: sch }),
    }
    scale.is_none()
}

/// The fixed inputs of one low-order resampling.
#[derive(Clone, Copy)]
struct Job<'a, T> {
    input: &'a [T],
    shape: ImageShape,
    m: &'a Affine2,
    mode: FillMode,
    cval: f64,
    /// `[vertical, horizontal]`: output row `i` (column `j`) holds source
    /// row `h-1-i` (column `w-1-j`) when set.
    flips: [bool; 2],
}

impl<'a> Job<'a, f32> {
    /// A job whose input is elsewhere (read into a copy by the caller):
    /// for the order-1 kernel's copy, whose values never depend on `cval`.
    fn without_input(shape: ImageShape, m: &'a Affine2, mode: FillMode, flips: [bool; 2]) -> Self {
        Job {
            input: &[],
            shape,
            m,
            mode,
            cval: 0.0,
            flips,
        }
    }
}

impl<T: Real> Job<'_, T> {
    /// The element offset of the output pixel holding source pixel `(r, c)`.
    #[inline(always)]
    fn dst(&self, r: usize, c: usize) -> usize {
        let (sr, sc, _) = self.shape.strides();
        let [v, h] = self.flips;
        let r = if v { self.shape.height - 1 - r } else { r };
        let c = if h { self.shape.width - 1 - c } else { c };
        r * sr + c * sc
    }

    /// Order 0: one rounded tap per axis. Cheap enough that planning rows
    /// ahead costs more than it saves, so pixels are handled one by one.
    #[inline(always)]
    fn nearest<K: Channels>(&self, output: &mut [T], k: K) {
        let (h, w) = (self.shape.height, self.shape.width);
        let (sr, sc, _) = self.shape.strides();
        let m = self.m;
        let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
        let mut border = Border::new(self, k);
        for r in 0..h {
            // scipy sums offset + r·a0 + c·a1 left to right: the row part is
            // shared by the whole row.
            let rf = r as f64;
            let (y0, x0) = (m.offset[0] + rf * m.a[0][0], m.offset[1] + rf * m.a[1][0]);
            let mut cf = 0.0;
            for col in 0..w {
                let (y, x) = (y0 + cf * m.a[0][1], x0 + cf * m.a[1][1]);
                cf += 1.0;
                let dst = self.dst(r, col);
                // Inside [0, n-1] no mode folds the coordinate and the rounded
                // tap is inside too (comparisons fail for NaN). floor(c + 0.5)
                // is scipy's rounding (ties up); truncation is floor here.
                if y >= 0.0 && y <= hm1 && x >= 0.0 && x <= wm1 {
                    let i = (y + 0.5) as i64 as usize * sr + (x + 0.5) as i64 as usize * sc;
                    k.copy(self.input, output, i, dst);
                } else {
                    border.pixel::<false>(output, y, x, dst);
                }
            }
        }
    }

    /// Order 1: rows are planned first (vectorisable), then blended.
    #[inline(always)]
    fn linear<K: Channels>(&self, output: &mut [T], plan: &mut RowPlan, k: K) {
        let (h, w) = (self.shape.height, self.shape.width);
        let (sr, sc, _) = self.shape.strides();
        let mut border = Border::new(self, k);
        for r in 0..h {
            plan.plan(self.m, r, h, w);
            for col in 0..w {
                let dst = self.dst(r, col);
                if plan.inside[col] {
                    let r0 = plan.iy[col] as usize * sr;
                    let c0 = plan.ix[col] as usize * sc;
                    let (wr0, wc0) = (plan.wy[col], plan.wx[col]);
                    k.blend(
                        self.input,
                        output,
                        [r0, r0 + sr],
                        [c0, c0 + sc],
                        [wr0, 1.0 - wr0, wc0, 1.0 - wc0],
                        dst,
                    );
                } else {
                    border.pixel::<true>(output, plan.y[col], plan.x[col], dst);
                }
            }
        }
    }
}

/// Pixels whose footprint leaves the image: scipy's full rules place the
/// taps, then the same copy / blend as inside applies.
struct Border<'a, T, K> {
    job: &'a Job<'a, T>,
    k: K,
    src: Source<'a, T>,
    tr: AxisTaps,
    tc: AxisTaps,
    fill: T,
}

impl<'a, T: Real, K: Channels> Border<'a, T, K> {
    fn new(job: &'a Job<'a, T>, k: K) -> Self {
        let shape = job.shape;
        Border {
            job,
            k,
            src: Source {
                data: job.input,
                rows: shape.height,
                cols: shape.width,
                pad: 0,
                strides: shape.strides(),
                channels: shape.channels,
            },
            tr: AxisTaps::default(),
            tc: AxisTaps::default(),
            fill: T::from_f64_lossy(job.cval),
        }
    }

    #[inline(never)]
    fn pixel<const LINEAR: bool>(&mut self, output: &mut [T], y: f64, x: f64, dst: usize) {
        let (job, k) = (self.job, self.k);
        let order = usize::from(LINEAR);
        let (sr, sc, sch) = self.src.strides;
        let (rows, cols) = (self.src.rows, self.src.cols);
        // The two commonest Keras borders, short-cut: nearest (taps clamped to
        // the edge, the coordinate itself never folded, exactly as scipy does)
        // and constant (any coordinate outside [0, n-1] is cval).
        let sane = y.abs() < 1e9 && x.abs() < 1e9; // false for NaN
        if !LINEAR && job.mode == FillMode::Nearest && sane {
            let (hmax, wmax) = (rows as i64 - 1, cols as i64 - 1);
            let yi = (floor(y + 0.5) as i64).clamp(0, hmax) as usize;
            let xi = (floor(x + 0.5) as i64).clamp(0, wmax) as usize;
            k.copy(job.input, output, yi * sr + xi * sc, dst);
            return;
        }
        if LINEAR && job.mode == FillMode::Nearest && sane {
            let (fy, fx) = (floor(y), floor(x));
            let (wr0, wc0) = (1.0 - (y - fy), 1.0 - (x - fx));
            let (yi, xi) = (fy as i64, fx as i64);
            let (hmax, wmax) = (rows as i64 - 1, cols as i64 - 1);
            let rr = [
                yi.clamp(0, hmax) as usize * sr,
                (yi + 1).clamp(0, hmax) as usize * sr,
            ];
            let cc = [
                xi.clamp(0, wmax) as usize * sc,
                (xi + 1).clamp(0, wmax) as usize * sc,
            ];
            k.blend(
                job.input,
                output,
                rr,
                cc,
                [wr0, 1.0 - wr0, wc0, 1.0 - wc0],
                dst,
            );
            return;
        }
        if job.mode == FillMode::Constant
            && sane
            && (y < 0.0 || y > (rows - 1) as f64 || x < 0.0 || x > (cols - 1) as f64)
        {
            k.fill(output, dst, self.fill);
            return;
        }
        let inside = axis_taps(y, self.src.rows, 0, order, job.mode, &mut self.tr)
            && axis_taps(x, self.src.cols, 0, order, job.mode, &mut self.tc);
        let (tr, tc) = (&self.tr, &self.tc);
        if !inside {
            k.fill(output, dst, self.fill);
        } else if job.mode == FillMode::GridConstant {
            // Taps beyond the edge read cval: the general sum handles them.
            general_pixel(
                &self.src,
                [y, x],
                order,
                job.mode,
                job.cval,
                output,
                dst,
                sch,
            );
        } else if LINEAR {
            let rr = [tr.idx[0] * sr, tr.idx[1] * sr];
            let cc = [tc.idx[0] * sc, tc.idx[1] * sc];
            k.blend(
                job.input,
                output,
                rr,
                cc,
                [tr.w[0], tr.w[1], tc.w[0], tc.w[1]],
                dst,
            );
        } else {
            k.copy(job.input, output, tr.idx[0] * sr + tc.idx[0] * sc, dst);
        }
    }
}
