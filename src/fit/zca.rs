//! The covariance for ZCA, streamed in lower-triangle tiles, and the ZCA
//! matrix from its eigendecomposition.

use faer::diag::DiagMut;
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::generator::statistics::ZcaMatrix;
use crate::layout::{DataFormat, ImageShape};
use crate::{Error, ErrorKind, Result};

/// Side of the square tiles the covariance and the ZCA product are split in:
/// the unit of parallel work (fixed, so results do not depend on thread count).
const TILE: usize = 128;

/// One lower-triangle tile of the Gram matrix, column-major.
struct Tile {
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

/// The streaming Gram matrix of shifted rows, in lower-triangle tiles so each
/// tile is one independent parallel task (a blocked `syrk`).
pub(super) struct Gram {
    d: usize,
    shift: Option<Vec<f64>>,
    sum: Vec<f64>,
    tiles: Vec<Tile>,
}

fn tile_spans(d: usize) -> impl Iterator<Item = (usize, usize)> + Clone {
    (0..d).step_by(TILE).map(move |s| (s, TILE.min(d - s)))
}

/// Elements in the lower-triangle tiles of a `d × d` matrix.
fn tile_elems(d: usize) -> Option<u64> {
    let mut total = 0u64;
    for (bi, (_, h)) in tile_spans(d).enumerate() {
        for (_, w) in tile_spans(d).take(bi + 1) {
            total = total.checked_add((h * w) as u64)?;
        }
    }
    Some(total)
}

/// Peak bytes of the ZCA stage for `d` features (see [`FitPlan::zca_bytes`]).
pub(super) fn zca_bytes(d: usize) -> Option<u64> {
    let square = (d as u64).checked_mul(d as u64)?.checked_mul(8)?;
    let vectors = (d as u64).checked_mul(8 * 3)?; // shift, column sums, eigenvalues
    let workspace = evd_workspace(d).layout().ok()?;
    let workspace = workspace.size().checked_add(workspace.align())? as u64;
    // Phases: tiles + covariance; covariance + eigenvectors + workspace;
    // eigenvectors + result. The second is always the largest.
    let assemble = tile_elems(d)?.checked_mul(8)?.checked_add(square)?;
    let evd = square.checked_mul(2)?.checked_add(workspace)?;
    assemble.max(evd).checked_add(vectors)
}

/// The eigensolver's workspace for a `d × d` matrix (an unsatisfiable
/// request when its size overflows).
fn evd_workspace(d: usize) -> StackReq {
    self_adjoint_evd_scratch::<f64>(d, ComputeEigenvectors::Yes, Par::Seq, Default::default())
}

/// A zero-filled vector, or a [`ErrorKind::MemoryLimit`] error instead of an abort.
fn try_zeroed(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| ErrorKind::MemoryLimit {
            what: format!("{what} (the allocator refused)"),
            needed: (len as u64).saturating_mul(8),
            limit: 0,
        })?;
    v.resize(len, 0.0);
    Ok(v)
}

impl Gram {
    pub(super) fn new(d: usize) -> Result<Gram> {
        let mut tiles = Vec::new();
        for (bi, (i0, rows)) in tile_spans(d).enumerate() {
            for (j0, cols) in tile_spans(d).take(bi + 1) {
                tiles.push(Tile {
                    i0,
                    j0,
                    rows,
                    cols,
                    data: try_zeroed(rows * cols, "ZCA covariance")?,
                });
            }
        }
        Ok(Gram {
            d,
            shift: None,
            sum: vec![0.0; d],
            tiles,
        })
    }

    /// Adds the rows of `buf` (row-major, `d` wide); shifts them in place.
    pub(super) fn add_rows(&mut self, buf: &mut [f64]) {
        let d = self.d;
        let rows = buf.len() / d;
        let shift = self.shift.get_or_insert_with(|| {
            let mut m = vec![0.0; d];
            buf.chunks_exact(d)
                .for_each(|row| m.iter_mut().zip(row).for_each(|(m, v)| *m += v));
            m.iter_mut().for_each(|m| *m /= rows as f64);
            m
        });
        buf.par_chunks_mut(d)
            .for_each(|row| row.iter_mut().zip(shift.iter()).for_each(|(v, k)| *v -= k));
        for row in buf.chunks_exact(d) {
            self.sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        let x = MatRef::from_row_major_slice(buf, rows, d);
        self.tiles.par_iter_mut().for_each(|t| {
            let a = x.subcols(t.i0, t.rows).transpose();
            let b = x.subcols(t.j0, t.cols);
            let dst = MatMut::from_column_major_slice_mut(&mut t.data, t.rows, t.cols);
            matmul(dst, Accum::Add, a, b, 1.0, Par::Seq);
        });
    }

    /// The covariance about the per-channel `mean`, divided by `n` (Keras'
    /// `flatᵀ·flat / N` of the centred data): lower triangle, column-major.
    ///
    /// With `y = x − k` accumulated and `c = m − k` per feature,
    /// `Σ (x − m)(x − m)ᵀ = G − s·cᵀ − c·sᵀ + n·c·cᵀ`.
    pub(super) fn into_covariance(
        self,
        mean: &[f64],
        image: ImageShape,
        n: f64,
    ) -> Result<Vec<f64>> {
        let d = self.d;
        let plane = image.height * image.width;
        let shift = self.shift.unwrap_or_else(|| vec![0.0; d]);
        let c: Vec<f64> = (0..d)
            .map(|f| {
                let ch = match image.format {
                    DataFormat::ChannelsLast => f % image.channels,
                    DataFormat::ChannelsFirst => f / plane,
                };
                mean[ch] - shift[f]
            })
            .collect();
        let s = &self.sum;
        let mut sigma = try_zeroed(d * d, "ZCA covariance")?;
        // Tiles are consumed one by one so their memory is released while
        // the dense matrix fills.
        for t in self.tiles {
            for jj in 0..t.cols {
                let j = t.j0 + jj;
                for ii in 0..t.rows {
                    let i = t.i0 + ii;
                    if i >= j {
                        let g = t.data[ii + jj * t.rows];
                        sigma[i + j * d] = (g - s[i] * c[j] - c[i] * s[j] + n * c[i] * c[j]) / n;
                    }
                }
            }
        }
        if sigma.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "x",
                "NaN or infinity",
                "the data produce a non-finite covariance",
            ));
        }
        Ok(sigma)
    }
}

/// Whose formula turns the covariance's eigenvalues into the ZCA matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum ZcaRule {
    /// keras-preprocessing 1.1.2: `U·diag(1/sqrt(|λ| + ε))·Uᵀ` from the SVD
    /// of the covariance.
    Keras,
    /// Keras 3: the thin SVD of the `rows × d` centred data, whose singular
    /// values are `σ = sqrt(rows·λ)`: `U·diag(sqrt(rows)/(σ + ε))·Uᵀ` over
    /// the `min(rows, d)` largest only (the rest, the null space when
    /// `rows < d`, is dropped), with `σ` and `σ + ε` rounded to float32
    /// when the data are float32, as Keras' SVD has them then.
    Keras3 {
        /// Rows of the data (samples × rounds).
        rows: u64,
        /// The generator dtype is float32.
        single: bool,
    },
}

impl ZcaRule {
    /// The factor of each eigenvector column, `sqrt` of its weight in the
    /// matrix (so that `V·Vᵀ` is the matrix); `None` when a weight is not
    /// finite.
    fn column_scales(self, eigenvalues: &[f64], epsilon: f64) -> Option<Vec<f64>> {
        let scales: Vec<f64> = match self {
            ZcaRule::Keras => eigenvalues
                .iter()
                .map(|ev| (ev.abs() + epsilon).powf(-0.25))
                .collect(),
            ZcaRule::Keras3 { rows, single } => {
                let keep = usize::try_from(rows).unwrap_or(usize::MAX);
                let mut order: Vec<usize> = (0..eigenvalues.len()).collect();
                order.sort_by(|&a, &b| eigenvalues[b].total_cmp(&eigenvalues[a]));
                let mut scales = vec![0.0; eigenvalues.len()];
                let n = rows as f64;
                for &i in order.iter().take(keep) {
                    let sigma = (n * eigenvalues[i].abs()).sqrt();
                    // `s + zca_epsilon`: an array of the data's dtype plus a
                    // Python float, so in float32 for float32 data.
                    let denom = if single {
                        (sigma as f32 + epsilon as f32) as f64
                    } else {
                        sigma + epsilon
                    };
                    scales[i] = (n.sqrt() / denom).sqrt();
                }
                scales
            }
        };
        scales.iter().all(|s| s.is_finite()).then_some(scales)
    }
}

/// The ZCA matrix by `rule` from the lower triangle of the column-major
/// covariance `sigma`.
pub(super) fn zca_matrix(
    sigma: Vec<f64>,
    d: usize,
    epsilon: f64,
    rule: ZcaRule,
) -> Result<ZcaMatrix> {
    let mut s = vec![0.0; d];
    let mut u = try_zeroed(d * d, "ZCA eigenvectors")?;
    {
        let req = evd_workspace(d);
        let needed = req.layout().map_err(|_| ErrorKind::MemoryLimit {
            what: "ZCA eigensolver workspace".into(),
            needed: u64::MAX,
            limit: 0,
        })?;
        let mut mem = MemBuffer::try_new(req).map_err(|_| ErrorKind::MemoryLimit {
            what: "ZCA eigensolver workspace (the allocator refused)".into(),
            needed: needed.size() as u64,
            limit: 0,
        })?;
        // One thread: the result must not depend on the pool size.
        self_adjoint_evd(
            MatRef::from_column_major_slice(&sigma, d, d),
            DiagMut::from_slice_mut(&mut s),
            Some(MatMut::from_column_major_slice_mut(&mut u, d, d)),
            Par::Seq,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .map_err(|_| {
            Error::invalid(
                "x",
                format!("a {d}×{d} covariance"),
                "its eigendecomposition did not converge",
            )
        })?;
    }
    drop(sigma);
    // V = U·diag(w^½) so that V·Vᵀ = U·diag(w)·Uᵀ with one product. The
    // singular values of a symmetric matrix are |eigenvalues|: taking the
    // magnitude matches Keras' SVD even for round-off-negative eigenvalues.
    let scales = rule.column_scales(&s, epsilon).ok_or_else(|| {
        Error::invalid(
            "zca_epsilon",
            epsilon,
            "the covariance is singular; use a positive zca_epsilon",
        )
    })?;
    for (col, scale) in u.chunks_exact_mut(d).zip(scales) {
        col.iter_mut().for_each(|v| *v *= scale);
    }
    let v = MatRef::from_column_major_slice(&u, d, d);
    let mut pc = try_zeroed(d * d, "ZCA matrix")?;
    pc.par_chunks_mut(TILE * d)
        .enumerate()
        .for_each(|(b, block)| {
            let h = block.len() / d;
            let dst = MatMut::from_row_major_slice_mut(block, h, d);
            matmul(
                dst,
                Accum::Replace,
                v.subrows(b * TILE, h),
                v.transpose(),
                1.0,
                Par::Seq,
            );
        });
    drop(u);
    ZcaMatrix::from_row_major(d, pc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras3_keeps_the_largest_rows_eigenvalues() {
        let ev = [1e-9, 4.0, 0.25];
        let k3 = ZcaRule::Keras3 {
            rows: 2,
            single: true,
        }
        .column_scales(&ev, 0.0)
        .unwrap();
        // σ = sqrt(2·λ); weight sqrt(2)/σ = 1/sqrt(λ); the smallest is dropped.
        assert_eq!(k3[0], 0.0);
        assert!((k3[1] - 0.5f64.sqrt()).abs() < 1e-7, "{k3:?}");
        assert!((k3[2] - 2f64.sqrt()).abs() < 1e-6, "{k3:?}");
        let k = ZcaRule::Keras.column_scales(&ev, 0.0).unwrap();
        assert!(k[0] > 100.0);
        let k3 = ZcaRule::Keras3 {
            rows: 3,
            single: false,
        };
        assert!(k3.column_scales(&[0.0], 0.0).is_none());
    }

    #[test]
    fn tiles_cover_the_lower_triangle() {
        for d in [1usize, 90, 128, 129, 300] {
            let nb = d.div_ceil(TILE) as u64;
            let full = (d * d) as u64;
            let t = tile_elems(d).unwrap();
            assert!(t >= full / 2 && t <= full, "{d}: {t}");
            assert_eq!(Gram::new(d).unwrap().tiles.len() as u64, nb * (nb + 1) / 2);
        }
    }
}
