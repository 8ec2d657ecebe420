//! Keras 1.1.2's affine matrix composition (R·T·S·Z about its off-centre pivot).
//!
//! The result is scipy's *pull* mapping: for every output pixel `o = (row, col)`
//! the value is read at input coordinate `a · o + offset`. Keras builds that
//! mapping as 3×3 homogeneous matrices; this module keeps the same factors,
//! the same product order and the same pivot so that the numbers agree with
//! `apply_affine_transform` to the last few ulps (numpy's `dot` may use FMA, so
//! bit-identity is not promised).

use super::params::TransformParams;

/// The 2-D pull mapping of scipy's `affine_transform`:
/// input coordinate = `a · output + offset`, coordinates in (row, col).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine2 {
    /// The linear part: `a[k]` is the row of the matrix giving input axis `k`
    /// (0 = rows, 1 = columns).
    pub a: [[f64; 2]; 2],
    /// The translation, in input pixels along (rows, columns).
    pub offset: [f64; 2],
}

impl Affine2 {
    /// The identity mapping: every output pixel reads the same input pixel.
    pub const IDENTITY: Affine2 = Affine2 {
        a: [[1.0, 0.0], [0.0, 1.0]],
        offset: [0.0, 0.0],
    };

    /// The input coordinate `(row, col)` sampled for output pixel `(row, col)`,
    /// summed in scipy's order (`offset + row·a[k][0] + col·a[k][1]`, left to
    /// right) so that order-0 rounding agrees with scipy bit for bit.
    #[inline]
    pub fn apply(&self, row: f64, col: f64) -> [f64; 2] {
        [
            (self.offset[0] + row * self.a[0][0]) + col * self.a[0][1],
            (self.offset[1] + row * self.a[1][0]) + col * self.a[1][1],
        ]
    }
}

impl Default for Affine2 {
    fn default() -> Affine2 {
        Affine2::IDENTITY
    }
}

type Mat3 = [[f64; 3]; 3];

/// A 3×3 product summed left to right, as a plain (non-FMA) `np.dot` would.
fn mul(p: &Mat3, q: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = p[i][0] * q[0][j] + p[i][1] * q[1][j] + p[i][2] * q[2][j];
        }
    }
    r
}

/// Keras 1.1.2's matrix for the geometry of `params` (theta°, tx, ty,
/// shear°, zx, zy; its flips, channel shift and brightness are other steps)
/// on an image of `height` × `width`; `None` when every factor is the
/// identity (Keras then returns the image untouched, without interpolating).
///
/// `tx` shifts along rows (content moves up for `tx > 0`), `ty` along columns;
/// `zx` scales rows and `zy` columns (values above 1 shrink the content);
/// `theta > 0` turns the content clockwise on screen. Only the factors that
/// differ from the identity enter the product `M = R·T·S·Z`, exactly as Keras
/// tests them (`theta != 0`, `tx != 0 or ty != 0`, `shear != 0`,
/// `zx != 1 or zy != 1`), so a NaN parameter counts as "not identity".
///
/// The pivot is Keras 1.1.2's `(h/2 + 0.5, w/2 + 0.5)`, one pixel below and
/// to the right of the true centre `((h-1)/2, (w-1)/2)`: a faithful port keeps
/// that offset (the reference's tests pin it, see the theta = 45° example in
/// this module's tests).
///
/// # Examples
///
/// ```
/// use npyflow::augment::keras_affine;
/// use npyflow::TransformParams;
///
/// // A shift of two rows: the identity's linear part, the rows offset.
/// let shift = TransformParams { tx: 2.0, ..TransformParams::default() };
/// let m = keras_affine(&shift, 32, 32).unwrap();
/// assert_eq!((m.a, m.offset), ([[1.0, 0.0], [0.0, 1.0]], [2.0, 0.0]));
/// assert_eq!(keras_affine(&TransformParams::default(), 32, 32), None);
/// ```
pub fn keras_affine(params: &TransformParams, height: usize, width: usize) -> Option<Affine2> {
    let TransformParams {
        theta,
        tx,
        ty,
        shear,
        zx,
        zy,
        ..
    } = *params;
    let mut m: Option<Mat3> = None;
    let mut push = |f: Mat3| {
        m = Some(match &m {
            None => f,
            Some(prev) => mul(prev, &f),
        });
    };
    if theta != 0.0 {
        // numpy's deg2rad multiplies by pi/180, as `to_radians` does.
        let t = theta.to_radians();
        let (s, c) = (t.sin(), t.cos());
        push([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
    }
    if tx != 0.0 || ty != 0.0 {
        push([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]);
    }
    if shear != 0.0 {
        let s = shear.to_radians();
        push([[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]]);
    }
    if zx != 1.0 || zy != 1.0 {
        push([[zx, 0.0, 0.0], [0.0, zy, 0.0], [0.0, 0.0, 1.0]]);
    }
    let m = m?;
    let ox = height as f64 / 2.0 + 0.5;
    let oy = width as f64 / 2.0 + 0.5;
    let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
    let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
    let f = mul(&mul(&offset, &m), &reset);
    Some(Affine2 {
        a: [[f[0][0], f[0][1]], [f[1][0], f[1][1]]],
        offset: [f[0][2], f[1][2]],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parameters_give_none() {
        assert_eq!(keras_affine(&TransformParams::default(), 32, 32), None);
        assert!(keras_affine(
            &TransformParams {
                zy: 1.0 + 1e-12,
                ..TransformParams::default()
            },
            32,
            32
        )
        .is_some());
        assert!(keras_affine(
            &TransformParams {
                theta: f64::NAN,
                ..TransformParams::default()
            },
            32,
            32
        )
        .is_some());
    }

    #[test]
    fn translation_only_is_a_plain_offset() {
        // Off(o)·T·Off(-o) = T: the pivot cancels for a pure shift.
        let m = keras_affine(
            &TransformParams {
                tx: 2.0,
                ty: -3.0,
                ..TransformParams::default()
            },
            5,
            7,
        )
        .unwrap();
        assert_eq!(m.a, [[1.0, 0.0], [0.0, 1.0]]);
        assert_eq!(m.offset, [2.0, -3.0]);
    }

    #[test]
    fn zoom_scales_about_the_keras_pivot() {
        // in = o + z·(out - o) with o = h/2 + 0.5 = 3.0 (h = 5), w/2 + 0.5 = 4.5 (w = 8).
        let m = keras_affine(
            &TransformParams {
                zx: 2.0,
                zy: 0.5,
                ..TransformParams::default()
            },
            5,
            8,
        )
        .unwrap();
        assert_eq!(m.a, [[2.0, 0.0], [0.0, 0.5]]);
        assert_eq!(m.offset, [3.0 - 2.0 * 3.0, 4.5 - 0.5 * 4.5]);
    }

    #[test]
    fn rotation_180_maps_the_documented_pixel() {
        // keras-behaviour §4.2: on 5×9 a 180° rotation maps (2,4) → (4,6).
        let m = keras_affine(
            &TransformParams {
                theta: 180.0,
                ..TransformParams::default()
            },
            5,
            9,
        )
        .unwrap();
        let [r, c] = m.apply(4.0, 6.0);
        assert!(
            (r - 2.0).abs() < 1e-12 && (c - 4.0).abs() < 1e-12,
            "{r} {c}"
        );
    }

    #[test]
    fn factors_compose_as_r_t_s_z() {
        let (th, sh) = (30f64.to_radians(), 10f64.to_radians());
        let m = keras_affine(
            &TransformParams {
                theta: 30.0,
                tx: 1.5,
                ty: -0.5,
                shear: 10.0,
                zx: 1.2,
                zy: 0.8,
                ..TransformParams::default()
            },
            10,
            10,
        )
        .unwrap();
        // Linear part R·S·Z (T contributes only to the offset).
        let rs = [
            [th.cos(), -th.sin() * sh.cos() - th.cos() * sh.sin()],
            [th.sin(), th.cos() * sh.cos() - th.sin() * sh.sin()],
        ];
        let want = [
            [rs[0][0] * 1.2, rs[0][1] * 0.8],
            [rs[1][0] * 1.2, rs[1][1] * 0.8],
        ];
        for (got, want) in m.a.iter().flatten().zip(want.iter().flatten()) {
            assert!((got - want).abs() < 1e-12, "{:?} vs {want}", m.a);
        }
        // The pivot o = (5.5, 5.5) is a fixed point once the shift is removed:
        // in = o + R·(S·Z·(out - o) + t).
        let t = [1.5, -0.5];
        let o = 5.5;
        let [r, c] = m.apply(o, o);
        let want_r = o + th.cos() * t[0] - th.sin() * t[1];
        let want_c = o + th.sin() * t[0] + th.cos() * t[1];
        assert!((r - want_r).abs() < 1e-12 && (c - want_c).abs() < 1e-12);
    }
}
