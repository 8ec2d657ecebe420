//! Orders 0 and 1 (nearest neighbour and bilinear), the kernels Keras users
//! run by default, tuned for small images.
//!
//! Per output pixel the coordinates, taps and weights are computed once and
//! the channels are blended in one pass. Pixels whose neighbourhood is inside
//! the image skip every boundary rule; the others fold their taps through
//! `axis_taps` and reuse the same blend. Channels-last images with 1, 3 or 4
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

mod border;
mod channels;
mod exact;
mod fast;
mod job;
mod plan;

use crate::augment::resample::job::ResampleJob;
use crate::augment::resample::prefetch::Prefetch;
use crate::layout::Placement;
use crate::{DataFormat, Real};
use channels::{Packed, Planes, Strided};
use job::Job;
use plan::RowPlan;

/// Reusable buffers of orders 0 and 1.
#[derive(Debug, Default)]
pub(crate) struct LowScratch {
    plan: RowPlan,
    /// The single-precision kernel's edge-replicated copy of small inputs.
    padded: Vec<f32>,
    /// The copy's margins as [`LowScratch::read_buffer`] last handed it
    /// out, for [`LowScratch::transform_read`] (not worked out twice).
    read: Option<fast::Pad>,
}

impl LowScratch {
    /// Order 1 on an `f32` image may read it through an edge-replicated
    /// copy (`nearest` mode, small images: see `fast::padded`). When it
    /// does, the copy and where the image goes in it, so that the caller
    /// can read the image straight in (no intermediate buffer) and call
    /// [`LowScratch::transform_read`] with the same job.
    pub(crate) fn read_buffer(&mut self, job: &ResampleJob) -> Option<(&mut [f32], Placement)> {
        self.read = fast::read_pad(&Job::without_input(job));
        let pad = self.read?;
        let shape = job.shape;
        Some((pad.buffer(shape, &mut self.padded), pad.placement(shape)))
    }

    /// Order 1 of the image read into [`LowScratch::read_buffer`]'s copy
    /// for the same `job`, its flips and scale applied: the same values as
    /// [`low_order`] on the image. `next`'s lines are issued a few per
    /// output row.
    ///
    /// # Panics
    /// When the last `read_buffer` gave no copy, or its copy was used
    /// already (caller bugs).
    pub(crate) fn transform_read(
        &mut self,
        job: &ResampleJob,
        output: &mut [f32],
        next: &Prefetch<'_>,
    ) {
        let pad = self
            .read
            .take()
            .expect("transform_read after read_buffer gave a copy");
        let scale = f32_scale(job);
        let job = Job::without_input(job);
        fast::linear_f32_read(&job, pad, output, scale, &mut self.padded, next);
    }
}

/// The factor of the single-precision kernel: `job`'s scale rounded as
/// `standardize` rounds `rescale` for `f32` images, 1 (an exact no-op) when
/// there is none.
fn f32_scale(job: &ResampleJob) -> f32 {
    job.scale.map_or(1.0, |s| s as f32)
}

/// Orders 0 and 1 of `job` (order 0 or 1), straight from the input,
/// dispatched on the layout and the element type; the flips always applied,
/// the scale by the single-precision kernel only. Returns whether the scale
/// is done (applied, or none asked for).
pub(crate) fn low_order<T: Real>(
    job: &ResampleJob,
    input: &[T],
    output: &mut [T],
    scratch: &mut LowScratch,
) -> bool {
    let (shape, order) = (job.shape, job.interp.order);
    if order == 1 && T::DTYPE == crate::OutputDtype::F32 {
        // Same type: the casts are reinterpretations and cannot fail.
        if let (Ok(input), Ok(out)) = (
            bytemuck::try_cast_slice::<T, f32>(input),
            bytemuck::try_cast_slice_mut::<T, f32>(output),
        ) {
            let low = Job::new(input, job);
            if fast::linear_f32(&low, out, f32_scale(job), &mut scratch.padded) {
                return true;
            }
        }
    }
    let (_, _, sch) = shape.strides();
    let packed = shape.format == DataFormat::ChannelsLast || shape.channels == 1;
    let low = Job::new(input, job);
    let plan = &mut scratch.plan;
    plan.reset(shape.width);
    match (packed, shape.channels, order) {
        (true, 1, 0) => exact::nearest(&low, output, Packed::<1>),
        (true, 1, _) => exact::linear(&low, output, plan, Packed::<1>),
        (true, 3, 0) => exact::nearest(&low, output, Packed::<3>),
        (true, 3, _) => exact::linear(&low, output, plan, Packed::<3>),
        (true, 4, 0) => exact::nearest(&low, output, Packed::<4>),
        (true, 4, _) => exact::linear(&low, output, plan, Packed::<4>),
        (false, 3, 0) => exact::nearest(&low, output, Planes::<3> { stride: sch }),
        (false, 3, _) => exact::linear(&low, output, plan, Planes::<3> { stride: sch }),
        (_, count, 0) => exact::nearest(&low, output, Strided { count, stride: sch }),
        (_, count, _) => exact::linear(&low, output, plan, Strided { count, stride: sch }),
    }
    job.scale.is_none()
}
