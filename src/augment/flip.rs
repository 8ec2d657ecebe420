//! Flips (Keras' `flip_axis` on the column or row axis), in place.

use super::color::check_len;
use crate::{DataFormat, ImageShape, Result};

/// Reverses the columns of one image (Keras' `flip_horizontal`).
///
/// # Errors
/// [`ErrorKind::ShapeMismatch`](crate::ErrorKind::ShapeMismatch) when
/// `image.len()` differs from `shape.len()`.
pub fn flip_horizontal<T: Copy>(image: &mut [T], shape: ImageShape) -> Result<()> {
    check_len(image.len(), shape)?;
    if shape.is_empty() {
        return Ok(());
    }
    match (shape.format, shape.channels) {
        (DataFormat::ChannelsFirst, _) | (_, 1) => {
            image.chunks_exact_mut(shape.width).for_each(<[T]>::reverse)
        }
        (_, 3) => swap_pixels::<T, 3>(image, shape.width),
        (_, 4) => swap_pixels::<T, 4>(image, shape.width),
        (_, c) => {
            for row in image.chunks_exact_mut(shape.width * c) {
                // Reversing the row reverses the channels of each pixel too;
                // reversing every pixel back restores their order.
                row.reverse();
                row.chunks_exact_mut(c).for_each(<[T]>::reverse);
            }
        }
    }
    Ok(())
}

/// Mirrors every row of `w` pixels of `C` channels by swapping pixel `j`
/// with pixel `w - 1 - j` as fixed-size arrays (one pass, no per-element
/// reversal of the channels).
fn swap_pixels<T: Copy, const C: usize>(image: &mut [T], w: usize) {
    for row in image.chunks_exact_mut(w * C) {
        let (left, right) = row.split_at_mut(w / 2 * C);
        // An odd row keeps its middle pixel, the first of `right`.
        let right = &mut right[w % 2 * C..];
        for (a, b) in left.chunks_exact_mut(C).zip(right.rchunks_exact_mut(C)) {
            let a: &mut [T; C] = a.try_into().expect("C elements");
            let b: &mut [T; C] = b.try_into().expect("C elements");
            std::mem::swap(a, b);
        }
    }
}

/// Reverses the rows of one image (Keras' `flip_vertical`).
///
/// # Errors
/// [`ErrorKind::ShapeMismatch`](crate::ErrorKind::ShapeMismatch) when
/// `image.len()` differs from `shape.len()`.
pub fn flip_vertical<T: Copy>(image: &mut [T], shape: ImageShape) -> Result<()> {
    check_len(image.len(), shape)?;
    if shape.is_empty() {
        return Ok(());
    }
    // A plane is a stack of `height` contiguous rows: the whole image for
    // channels-last, one channel for channels-first.
    let row = match shape.format {
        DataFormat::ChannelsLast => shape.width * shape.channels,
        DataFormat::ChannelsFirst => shape.width,
    };
    let h = shape.height;
    for plane in image.chunks_exact_mut(h * row) {
        for i in 0..h / 2 {
            let (top, bottom) = plane.split_at_mut((h - 1 - i) * row);
            top[i * row..(i + 1) * row].swap_with_slice(&mut bottom[..row]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value = 100·row + 10·col + channel, laid out as `shape` says.
    fn image(shape: ImageShape) -> Vec<u32> {
        let mut v = vec![0; shape.len()];
        for r in 0..shape.height {
            for c in 0..shape.width {
                for ch in 0..shape.channels {
                    v[shape.index(r, c, ch)] = (100 * r + 10 * c + ch) as u32;
                }
            }
        }
        v
    }

    #[test]
    fn flips_match_reversed_indices_in_both_layouts() {
        for shape in [
            ImageShape::hwc(3, 4, 2),
            ImageShape::chw(2, 3, 4),
            ImageShape::hwc(5, 1, 3),
            ImageShape::hwc(2, 5, 3),
            ImageShape::hwc(3, 6, 3),
            ImageShape::hwc(2, 7, 4),
            ImageShape::hwc(4, 3, 1),
        ] {
            let x = image(shape);
            let (mut h, mut v) = (x.clone(), x.clone());
            flip_horizontal(&mut h, shape).unwrap();
            flip_vertical(&mut v, shape).unwrap();
            for r in 0..shape.height {
                for c in 0..shape.width {
                    for ch in 0..shape.channels {
                        let at = shape.index(r, c, ch);
                        assert_eq!(h[at], x[shape.index(r, shape.width - 1 - c, ch)]);
                        assert_eq!(v[at], x[shape.index(shape.height - 1 - r, c, ch)]);
                    }
                }
            }
        }
    }

    #[test]
    fn empty_and_mismatched_images() {
        flip_horizontal::<f32>(&mut [], ImageShape::hwc(0, 3, 1)).unwrap();
        flip_vertical::<f32>(&mut [], ImageShape::chw(1, 3, 0)).unwrap();
        assert!(flip_vertical(&mut [0.0f32; 3], ImageShape::hwc(2, 2, 1)).is_err());
    }
}
