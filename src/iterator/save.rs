//! `save_to_dir`: write each final image of a batch as a picture file.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::iterator::batch::{Batch, Images};
use crate::npy::{persist, temp_beside};
use crate::rng::{SampleRng, Stream};
use crate::{Error, ErrorKind, ImageShape, Real, Result};

/// Picture formats `save_to_dir` can write (`white_list_formats` that the `image` crate encodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SaveFormat {
    /// PNG (Keras' default).
    #[default]
    Png,
    /// JPEG (alpha is dropped).
    Jpeg,
    /// BMP.
    Bmp,
    /// TIFF.
    Tiff,
    /// Binary PPM/PGM (PNM).
    Ppm,
}

impl SaveFormat {
    /// The file extension written.
    pub fn extension(self) -> &'static str {
        match self {
            SaveFormat::Png => "png",
            SaveFormat::Jpeg => "jpeg",
            SaveFormat::Bmp => "bmp",
            SaveFormat::Tiff => "tiff",
            SaveFormat::Ppm => "ppm",
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            SaveFormat::Png => image::ImageFormat::Png,
            SaveFormat::Jpeg => image::ImageFormat::Jpeg,
            SaveFormat::Bmp => image::ImageFormat::Bmp,
            SaveFormat::Tiff => image::ImageFormat::Tiff,
            SaveFormat::Ppm => image::ImageFormat::Pnm,
        }
    }
}

impl std::str::FromStr for SaveFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<SaveFormat> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "png" => SaveFormat::Png,
            "jpg" | "jpeg" => SaveFormat::Jpeg,
            "bmp" => SaveFormat::Bmp,
            "tif" | "tiff" => SaveFormat::Tiff,
            "ppm" => SaveFormat::Ppm,
            other => {
                return Err(Error::invalid(
                    "save_format",
                    format!("{other:?}"),
                    "expected png, jpeg, bmp, tiff or ppm",
                ))
            }
        })
    }
}

/// Where and how `save_to_dir` writes images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveConfig {
    /// The folder (created if missing).
    pub dir: PathBuf,
    /// File name prefix (Keras' `save_prefix`, default empty).
    pub prefix: String,
    /// Picture format.
    pub format: SaveFormat,
}

impl SaveConfig {
    /// Creates the folder if needed and checks it is writable, so a bad
    /// folder is an error before iteration starts rather than mid-epoch.
    pub(crate) fn prepare(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let probe = tempfile::Builder::new()
            .prefix(".npyflow-write-test")
            .tempfile_in(&self.dir);
        probe.map(drop).map_err(|e| Error::io(&self.dir, e))
    }

    /// The file name of sample `index` (subset-relative) at `row` of `epoch`:
    /// `{prefix}_{index}_{hash}.{ext}` with a deterministic 4-digit hash.
    pub fn file_name(&self, seed: u64, epoch: u64, row: usize, index: usize) -> String {
        let hash = SampleRng::new(seed, Stream::SaveName, epoch, row as u64).below(10_000);
        format!(
            "{}_{index}_{hash:04}.{}",
            self.prefix,
            self.format.extension()
        )
    }

    pub(crate) fn save_batch(&self, batch: &Batch, shape: ImageShape, seed: u64) -> Result<()> {
        let sl = shape.len();
        for (slot, &j) in batch.indices.iter().enumerate() {
            let name = self.file_name(seed, batch.epoch, j, j);
            let path = self.dir.join(name);
            match &batch.images {
                Images::F32(v) => {
                    save_image(&path, &v[slot * sl..(slot + 1) * sl], shape, self.format)?
                }
                Images::F64(v) => {
                    save_image(&path, &v[slot * sl..(slot + 1) * sl], shape, self.format)?
                }
                // Keras' `array_to_img` converts to float32 first.
                Images::F16(v) => {
                    let image: Vec<f32> = v[slot * sl..(slot + 1) * sl]
                        .iter()
                        .map(|h| h.to_f32())
                        .collect();
                    save_image(&path, &image, shape, self.format)?
                }
                Images::BF16(v) => {
                    let image: Vec<f32> = v[slot * sl..(slot + 1) * sl]
                        .iter()
                        .map(|h| h.to_f32())
                        .collect();
                    save_image(&path, &image, shape, self.format)?
                }
            }
        }
        Ok(())
    }
}

/// Keras' `array_to_img(x, scale=True)`: min-max stretch to 0..255 in
/// float32 steps, truncated to u8, laid out as HWC.
pub fn to_u8_hwc<T: Real>(image: &[T], shape: ImageShape) -> Vec<u8> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in image {
        let v = v.to_f64_lossless() as f32;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let range = hi - lo;
    let mut out = vec![0u8; image.len()];
    for r in 0..shape.height {
        for c in 0..shape.width {
            for ch in 0..shape.channels {
                let mut v = image[shape.index(r, c, ch)].to_f64_lossless() as f32 - lo;
                if range != 0.0 {
                    v /= range;
                }
                v *= 255.0;
                out[(r * shape.width + c) * shape.channels + ch] = v as u8;
            }
        }
    }
    out
}

/// Writes one image (any range; min-max scaled) atomically to `path`.
///
/// # Errors
/// [`ErrorKind::Image`] for channel counts other than 1, 3, 4, and I/O errors.
pub fn save_image<T: Real>(
    path: &Path,
    image: &[T],
    shape: ImageShape,
    format: SaveFormat,
) -> Result<()> {
    let mut pixels = to_u8_hwc(image, shape);
    let mut color = match shape.channels {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        c => {
            return Err(ErrorKind::Image {
                path: path.to_path_buf(),
                reason: format!("unsupported channel number {c} (1, 3 or 4 can be saved)"),
            }
            .into())
        }
    };
    if format == SaveFormat::Jpeg && shape.channels == 4 {
        // JPEG has no alpha channel.
        pixels = pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        color = image::ExtendedColorType::Rgb8;
    }
    let tmp = temp_beside(path)?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        image::write_buffer_with_format(
            &mut w,
            &pixels,
            shape.width as u32,
            shape.height as u32,
            color,
            format.image_format(),
        )
        .map_err(|e| {
            Error::from(ErrorKind::Image {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        std::io::Write::flush(&mut w).map_err(|e| Error::io(path, e))?;
    }
    persist(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_matches_keras_array_to_img() {
        // keras-behaviour §4.7: [0,1,2,3] -> [0,85,170,255]
        let px = to_u8_hwc(&[0f32, 1.0, 2.0, 3.0], ImageShape::hwc(1, 4, 1));
        assert_eq!(px, vec![0, 85, 170, 255]);
        // A constant image maps to zeros.
        assert_eq!(
            to_u8_hwc(&[5f32; 3], ImageShape::hwc(1, 3, 1)),
            vec![0, 0, 0]
        );
        // Channels-first input is written as HWC.
        let px = to_u8_hwc(&[0f32, 1.0, 2.0, 3.0], ImageShape::chw(2, 1, 2));
        assert_eq!(px, vec![0, 170, 85, 255]);
    }

    #[test]
    fn file_names_are_deterministic_and_4_digits() {
        let cfg = SaveConfig {
            dir: "d".into(),
            prefix: "pre".into(),
            format: SaveFormat::Png,
        };
        let a = cfg.file_name(1, 0, 7, 2);
        assert_eq!(a, cfg.file_name(1, 0, 7, 2));
        assert!(
            a.starts_with("pre_2_") && a.ends_with(".png") && a.len() == "pre_2_0000.png".len(),
            "{a}"
        );
        assert_ne!(a, cfg.file_name(1, 1, 7, 2));
    }
}
