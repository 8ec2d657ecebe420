//! Value transforms: Keras' channel shift and brightness.

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::{DataFormat, ImageShape, Real, Result};

/// How a `brightness` factor is applied (the `brightness_mode` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrightnessMode {
    /// keras-preprocessing 1.1.2, bit for bit: the image is min-max stretched
    /// to 0..255 and truncated to 8 bits (Keras' `array_to_img`), then every
    /// value becomes `trunc(f32(factor) · v)` clamped to 0..255 (Pillow's
    /// `ImageEnhance.Brightness`). The result holds whole numbers in 0..255
    /// **whatever the input range** (a Keras quirk: 0..1 data comes out in
    /// 0..255). With 4 channels the last one is treated as alpha: stretched
    /// and truncated with the rest but not scaled by the factor.
    #[default]
    Keras,
    /// Multiply values by the factor and nothing else: no stretch, no
    /// quantisation, no clipping, so the data keeps its units (0..1 stays
    /// 0..1-scaled). The alpha rule of [`Keras`](BrightnessMode::Keras) applies
    /// to 4-channel images too.
    Multiplicative,
}

/// Keras' `apply_channel_shift`: adds `intensity` to every value (the same
/// offset for all channels) and clips the result to the image's own minimum
/// and maximum over all channels, so it brightens or darkens within the
/// original range. The addition happens in the element type (as numpy does
/// with a float32 array and a Python float).
pub fn apply_channel_shift<T: Real>(image: &mut [T], intensity: f64) {
    let Some((lo, hi)) = min_max(image.iter().copied()) else {
        return;
    };
    let shift = T::from_f64_lossy(intensity);
    for v in image.iter_mut() {
        // numpy's clip is minimum(maximum(v, lo), hi); `clamp` would panic on NaN bounds.
        *v = (*v + shift).max(lo).min(hi);
    }
}

/// Applies a brightness `factor` to one image in the given `mode` (Keras'
/// `apply_brightness_shift` for [`BrightnessMode::Keras`]).
///
/// Unlike Keras 1.1.2, which reads every image as channels-last (and fails
/// for channels-first images unless the width is 1, 3 or 4), the channel axis
/// is taken from `shape`; images with a channel count other than 1, 3 or 4,
/// which Keras rejects, are processed with every channel treated as colour.
///
/// # Errors
/// [`ErrorKind::ShapeMismatch`] when `image.len()` differs from `shape.len()`.
pub fn apply_brightness_shift<T: Real>(
    image: &mut [T],
    shape: ImageShape,
    factor: f64,
    mode: BrightnessMode,
) -> Result<()> {
    check_len(image.len(), shape)?;
    match mode {
        BrightnessMode::Keras => keras_brightness(image, shape, factor),
        BrightnessMode::Multiplicative => {
            let f = T::from_f64_lossy(factor);
            for_each_split(image, shape, |v, alpha| if alpha { v } else { v * f });
        }
    }
    Ok(())
}

/// Keras 1.1.2 brightness: `array_to_img` (float32 stretch to 0..255, cast to
/// u8) then Pillow's blend with black (`trunc_f32(factor · v)`, clamped).
fn keras_brightness<T: Real>(image: &mut [T], shape: ImageShape, factor: f64) {
    // array_to_img converts to float32 first, so even a float64 image is
    // stretched in single precision; every step below is one rounded f32 op.
    let as_f32 = |v: T| v.to_f64_lossless() as f32;
    let Some((min, max)) = min_max(image.iter().map(|&v| as_f32(v))) else {
        return;
    };
    // max(x - min) == round(max - min): rounding is monotone.
    let span = max - min;
    // Pillow receives the factor as a C float.
    let factor = factor as f32;
    for_each_split(image, shape, |v, alpha| {
        let mut x = as_f32(v) - min;
        if span != 0.0 {
            x /= span;
        }
        x *= 255.0;
        // numpy's astype('uint8'): truncation (in range by construction;
        // `as` saturates and maps NaN to 0 instead of invoking UB).
        let byte = (x as u8) as f32;
        let out = if alpha { byte } else { blend(factor, byte) };
        T::from_f64_lossy(out as f64)
    });
}

/// The brightness shift of Keras 3's legacy generator (`apply_brightness_shift(x,
/// factor, scale=False)`, as its `apply_transform` calls it), with
/// [`BrightnessMode::Keras`]; the same channel-axis and channel-count rules
/// as [`apply_brightness_shift`].
///
/// Keras 3 stretches only when the image leaves 0..255 (`min < 0 or max >
/// 255`, on the values in `T`; a NaN makes both tests false):
/// - inside 0..255 the float32 values are **truncated** to bytes (no
///   stretch), blended with black as in 1.1.2, and the result holds whole
///   numbers in 0..255 (data in 0..1 collapses to 0 and 1, as in Keras 3);
/// - outside, 1.1.2's stretch and blend, then the bytes go back to the
///   image's range: `z / 255 · (max - min) + min`, the division in float32
///   and the rest in `T` (numpy's promotion), three separately rounded ops.
///
/// The alpha channel of a 4-channel image is truncated (or stretched) and
/// restored but not scaled by the factor.
pub(crate) fn keras3_brightness<T: Real>(image: &mut [T], shape: ImageShape, factor: f64) {
    let mut nan = false;
    let bounds = min_max(image.iter().map(|&v| {
        nan |= v.is_nan();
        v
    }));
    let Some((min, max)) = bounds else {
        return;
    };
    let stretch = !nan && (min < T::zero() || max > T::from_f64_lossy(255.0));
    if !stretch {
        let factor = factor as f32;
        for_each_split(image, shape, |v, alpha| {
            // numpy's astype('uint8') of the float32 values: truncation (`as`
            // saturates, and maps NaN to 0).
            let byte = ((v.to_f64_lossless() as f32) as u8) as f32;
            let out = if alpha { byte } else { blend(factor, byte) };
            T::from_f64_lossy(out as f64)
        });
        return;
    }
    keras_brightness(image, shape, factor);
    let span = max - min;
    for v in image.iter_mut() {
        // `z / 255` is float32 ÷ a Python int, so float32; widening it to
        // `T` is exact, and the product and sum are in `T`.
        let t = T::from_f64_lossy((v.to_f64_lossless() as f32 / 255.0) as f64);
        *v = t * span + min;
    }
}

/// Pillow's `ImagingBlend` with a black image at `factor` (a C float) on one
/// byte value: `0 + factor·v` in float, clipped to the byte range, truncated.
fn blend(factor: f32, byte: f32) -> f32 {
    let p = factor * byte;
    if p <= 0.0 {
        0.0
    } else if p >= 255.0 {
        255.0
    } else {
        p.trunc()
    }
}

/// Maps every value through `f(value, is_alpha)`, where the alpha channel is
/// the 4th channel of a 4-channel image (Pillow's RGBA) on the image's real
/// channel axis.
fn for_each_split<T: Copy>(image: &mut [T], shape: ImageShape, f: impl Fn(T, bool) -> T) {
    if shape.channels != 4 {
        image.iter_mut().for_each(|v| *v = f(*v, false));
        return;
    }
    match shape.format {
        DataFormat::ChannelsLast => {
            for px in image.chunks_exact_mut(4) {
                for (c, v) in px.iter_mut().enumerate() {
                    *v = f(*v, c == 3);
                }
            }
        }
        DataFormat::ChannelsFirst => {
            let split = 3 * shape.height * shape.width;
            let (colour, alpha) = image.split_at_mut(split.min(image.len()));
            colour.iter_mut().for_each(|v| *v = f(*v, false));
            alpha.iter_mut().for_each(|v| *v = f(*v, true));
        }
    }
}

/// Minimum and maximum, ignoring NaN the way `f32::min` does; `None` when empty.
fn min_max<T: Real>(mut values: impl Iterator<Item = T>) -> Option<(T, T)> {
    let first = values.next()?;
    Some(values.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

pub(crate) fn check_len(len: usize, shape: ImageShape) -> Result<()> {
    if len == shape.len() {
        return Ok(());
    }
    Err(ErrorKind::ShapeMismatch {
        what: "image buffer and image shape".to_string(),
        expected: shape.dims().to_vec(),
        found: vec![len],
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_shift_is_one_offset_clipped_to_the_whole_image() {
        // keras-behaviour §4.5: channels {0..3}, {10..13} with +5.
        let mut x: Vec<f32> = (0..4).flat_map(|i| [i as f32, 10.0 + i as f32]).collect();
        apply_channel_shift(&mut x, 5.0);
        let (c0, c1): (Vec<f32>, Vec<f32>) = x.chunks(2).map(|p| (p[0], p[1])).unzip();
        assert_eq!(c0, [5.0, 6.0, 7.0, 8.0]);
        assert_eq!(c1, [13.0; 4]);
        apply_channel_shift::<f64>(&mut [], 1.0);
    }

    #[test]
    fn keras_brightness_stretches_to_bytes() {
        // keras-behaviour §4.6: [0, 0.5, 1] with factor 1 -> [0, 127, 255].
        let mut x = [0.0f32, 0.5, 1.0];
        apply_brightness_shift(&mut x, ImageShape::hwc(1, 3, 1), 1.0, BrightnessMode::Keras)
            .unwrap();
        assert_eq!(x, [0.0, 127.0, 255.0]);
        // A constant image becomes zeros.
        let mut c = [7.0f64; 6];
        apply_brightness_shift(&mut c, ImageShape::chw(3, 1, 2), 2.0, BrightnessMode::Keras)
            .unwrap();
        assert_eq!(c, [0.0; 6]);
        // [0,1,2,3] -> [0,85,170,255], then factor 2.5 saturates.
        let mut y = [0.0f32, 1.0, 2.0, 3.0];
        apply_brightness_shift(&mut y, ImageShape::hwc(2, 2, 1), 2.5, BrightnessMode::Keras)
            .unwrap();
        assert_eq!(y, [0.0, 212.0, 255.0, 255.0]);
    }

    #[test]
    fn alpha_channel_is_stretched_but_not_scaled_on_the_real_axis() {
        let cl: Vec<f32> = vec![0.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.0];
        let mut a = cl.clone();
        apply_brightness_shift(&mut a, ImageShape::hwc(1, 2, 4), 0.5, BrightnessMode::Keras)
            .unwrap();
        assert_eq!(a, [0.0, 42.0, 85.0, 255.0, 127.0, 85.0, 42.0, 0.0]);
        // The same image channels-first: channel c of pixel p at c*2 + p.
        let mut b: Vec<f32> = (0..8).map(|i| cl[(i % 2) * 4 + i / 2]).collect();
        apply_brightness_shift(&mut b, ImageShape::chw(4, 1, 2), 0.5, BrightnessMode::Keras)
            .unwrap();
        let back: Vec<f32> = (0..8).map(|i| b[(i % 4) * 2 + i / 4]).collect();
        assert_eq!(back, a);
    }

    #[test]
    fn multiplicative_keeps_the_range() {
        let mut x = [0.1f64, 0.5, -0.2];
        apply_brightness_shift(
            &mut x,
            ImageShape::hwc(1, 1, 3),
            2.0,
            BrightnessMode::Multiplicative,
        )
        .unwrap();
        assert_eq!(x, [0.2, 1.0, -0.4]);
    }

    #[test]
    fn wrong_length_is_an_error_not_a_panic() {
        let mut x = [0.0f32; 5];
        let err =
            apply_brightness_shift(&mut x, ImageShape::hwc(2, 2, 1), 1.0, BrightnessMode::Keras);
        assert!(matches!(
            err.unwrap_err().kind(),
            ErrorKind::ShapeMismatch { .. }
        ));
    }

    #[test]
    fn keras3_brightness_follows_the_measured_cases() {
        let run = |x: &[f32], c: usize, f: f64| {
            let mut v = x.to_vec();
            keras3_brightness(&mut v, ImageShape::hwc(1, x.len() / c, c), f);
            v
        };
        // Values measured from Keras 3.15.1 (`apply_brightness_shift(x, f, False)`).
        assert_eq!(run(&[0.0, 0.3, 0.7, 1.0], 1, 1.5), [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            run(&[10.9, 100.5, 200.99, 50.0], 1, 1.0),
            [10.0, 100.0, 200.0, 50.0]
        );
        assert_eq!(run(&[7.6; 3], 1, 1.5), [10.0; 3]);
        assert_eq!(run(&[-5.0; 3], 1, 1.5), [-5.0; 3]);
        assert_eq!(
            run(&[0.0, 10.0, 20.0, 200.7], 4, 0.5),
            [0.0, 5.0, 10.0, 200.0]
        );
        let got = run(&[-1.0, 0.0, 0.5, 1.0], 1, 1.2);
        let want = [-1.0f32, 0.192157, 0.796078, 1.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        // The restore in f64 for f64 data: z/255 in f32, the rest in f64.
        let mut x = [0.0f64, 100.0, 255.5];
        keras3_brightness(&mut x, ImageShape::hwc(1, 3, 1), 1.0);
        let t = (99.0f32 / 255.0) as f64;
        assert_eq!(x[1], t * 255.5 + 0.0);
        assert_eq!((x[0], x[2]), (0.0, 255.5));
    }
}
