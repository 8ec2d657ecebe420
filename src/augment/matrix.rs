//! Keras 1.1.2's affine matrix composition (R·T·S·Z about its off-centre pivot).

/// The 2-D pull mapping of scipy's `affine_transform`:
/// input coordinate = `a · output + offset`, coordinates in (row, col).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine2 {
    /// The linear part.
    pub a: [[f64; 2]; 2],
    /// The translation.
    pub offset: [f64; 2],
}

/// Keras 1.1.2's matrix for (theta°, tx, ty, shear°, zx, zy) on an image of
/// `height` × `width`; `None` when every factor is the identity.
pub fn keras_affine(
    _theta: f64,
    _tx: f64,
    _ty: f64,
    _shear: f64,
    _zx: f64,
    _zy: f64,
    _height: usize,
    _width: usize,
) -> Option<Affine2> {
    None
}
