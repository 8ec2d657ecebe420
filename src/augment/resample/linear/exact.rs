//! Orders 0 and 1 in scipy's arithmetic, straight from the input: every
//! layout, element type and mode. Pixels whose footprint is inside the image
//! skip every boundary rule; the others go through [`Border`].

use super::border::Border;
use super::channels::Channels;
use super::job::Job;
use super::plan::RowPlan;
use crate::Real;

/// Order 0: one rounded tap per axis. Cheap enough that planning rows
/// ahead costs more than it saves, so pixels are handled one by one.
#[inline(always)]
pub(super) fn nearest<T: Real, K: Channels>(job: &Job<'_, T>, output: &mut [T], k: K) {
    let (h, w) = (job.shape.height, job.shape.width);
    let (sr, sc, _) = job.shape.strides();
    let m = job.m;
    let (hm1, wm1) = ((h - 1) as f64, (w - 1) as f64);
    let mut border = Border::new(job, k);
    for r in 0..h {
        // scipy sums offset + r·a0 + c·a1 left to right: the row part is
        // shared by the whole row.
        let rf = r as f64;
        let (y0, x0) = (m.offset[0] + rf * m.a[0][0], m.offset[1] + rf * m.a[1][0]);
        let mut cf = 0.0;
        for col in 0..w {
            let (y, x) = (y0 + cf * m.a[0][1], x0 + cf * m.a[1][1]);
            cf += 1.0;
            let dst = job.dst(r, col);
            // Inside [0, n-1] no mode folds the coordinate and the rounded
            // tap is inside too (comparisons fail for NaN). floor(c + 0.5)
            // is scipy's rounding (ties up); truncation is floor here.
            if y >= 0.0 && y <= hm1 && x >= 0.0 && x <= wm1 {
                let i = (y + 0.5) as i64 as usize * sr + (x + 0.5) as i64 as usize * sc;
                k.copy(job.input, output, i, dst);
            } else {
                border.pixel::<false>(output, y, x, dst);
            }
        }
    }
}

/// Order 1: rows are planned first (vectorisable), then blended.
#[inline(always)]
pub(super) fn linear<T: Real, K: Channels>(
    job: &Job<'_, T>,
    output: &mut [T],
    plan: &mut RowPlan,
    k: K,
) {
    let (h, w) = (job.shape.height, job.shape.width);
    let (sr, sc, _) = job.shape.strides();
    let mut border = Border::new(job, k);
    for r in 0..h {
        plan.plan(job.m, r, h, w);
        for col in 0..w {
            let dst = job.dst(r, col);
            if plan.inside[col] {
                let r0 = plan.iy[col] as usize * sr;
                let c0 = plan.ix[col] as usize * sc;
                let (wr0, wc0) = (plan.wy[col], plan.wx[col]);
                k.blend(
                    job.input,
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
