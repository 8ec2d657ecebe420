//! A procedural labelled image dataset: one shape per class (circles,
//! squares, triangles, stripes...) drawn at random positions, sizes, angles
//! and colours, written straight to `x.npy` / `y.npy` in chunks.
//!
//! It exists so that `npyflow demo` and the tool's tests have a dataset of
//! any size without downloads or Python; the same seed always gives the same
//! bytes. (The tests include this file with `#[path]`: it uses nothing of
//! the tool but the library.)

use std::f64::consts::PI;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use npyflow::convert::Progress;
use npyflow::npy::{write_atomic, Dtype, ElemType, NpyWriter};
use npyflow::{Error, Result, SampleRng, Stream};

/// The shapes, in class-index order (`classes.txt` lists these names).
pub const SYNTH_CLASSES: [&str; 8] = [
    "circle", "square", "triangle", "stripes", "ring", "cross", "diamond", "ellipse",
];

/// Mixed into the seed so the dataset's streams never coincide with an
/// iterator's augmentation streams when both use the same user seed.
const SALT: u64 = 0x5359_4e54_4845_5349;

/// Bytes of images drawn per chunk (as the converters' chunks): memory stays
/// flat whatever the number of samples.
const CHUNK_BYTES: usize = 32 << 20;

/// Options for [`write_synthetic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthOptions {
    /// Number of images. By default 1000.
    pub samples: usize,
    /// Image height in pixels. By default 32.
    pub height: usize,
    /// Image width in pixels. By default 32.
    pub width: usize,
    /// Channels: 1 (gray), 3 (RGB) or 4 (RGBA, opaque). By default 3.
    pub channels: usize,
    /// Number of classes, 1 to 8 (one shape each). By default 4.
    pub classes: usize,
    /// Seed of every random choice. By default 0.
    pub seed: u64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            samples: 1000,
            height: 32,
            width: 32,
            channels: 3,
            classes: 4,
            seed: 0,
        }
    }
}

impl SynthOptions {
    /// Bytes of `x.npy`'s data: `samples × height × width × channels`.
    pub fn x_bytes(&self) -> u64 {
        self.samples as u64 * self.height as u64 * self.width as u64 * self.channels as u64
    }
}

/// Where [`write_synthetic`] put the dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthPaths {
    /// `(samples, height, width, channels)` `uint8` images.
    pub x: PathBuf,
    /// `(samples,)` `int32` labels: sample `i` has class `i % classes`.
    pub y: PathBuf,
    /// The class names, one per line.
    pub classes_txt: PathBuf,
}

/// Writes a synthetic dataset into `dir` (created if needed) as `x.npy`,
/// `y.npy` and `classes.txt`, the layout `convert images` produces.
///
/// Images are drawn in parallel a chunk at a time, so memory stays flat
/// whatever `samples` is. Labels cycle through the classes (balanced, and
/// every contiguous run of `classes` samples holds each class once, so a
/// Keras validation split sees every class). `progress` receives
/// `(images done, images total)`.
///
/// # Errors
/// [`npyflow::ErrorKind::InvalidArgument`] for zero or too many classes,
/// channels other than 1, 3 or 4, a zero size; I/O errors.
pub fn write_synthetic(
    dir: impl AsRef<Path>,
    options: &SynthOptions,
    progress: Option<Progress<'_>>,
) -> Result<SynthPaths> {
    let dir = dir.as_ref();
    let o = *options;
    if o.classes == 0 || o.classes > SYNTH_CLASSES.len() {
        return Err(Error::invalid(
            "classes",
            o.classes,
            format!("must be 1 to {}", SYNTH_CLASSES.len()),
        ));
    }
    if ![1, 3, 4].contains(&o.channels) {
        return Err(Error::invalid("channels", o.channels, "must be 1, 3 or 4"));
    }
    if o.height == 0 || o.width == 0 {
        return Err(Error::invalid(
            "size",
            format!("{}x{}", o.height, o.width),
            "height and width must be positive",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let paths = SynthPaths {
        x: dir.join("x.npy"),
        y: dir.join("y.npy"),
        classes_txt: dir.join("classes.txt"),
    };
    let row = o.height * o.width * o.channels;
    let mut x = NpyWriter::create(
        &paths.x,
        Dtype::native(ElemType::U8),
        &[o.samples, o.height, o.width, o.channels],
    )?;
    let mut y = NpyWriter::create(&paths.y, Dtype::native(ElemType::I32), &[o.samples])?;
    let chunk = (CHUNK_BYTES / row).clamp(1, 4096);
    let mut buf = vec![0u8; chunk.min(o.samples) * row];
    let mut start = 0;
    while start < o.samples {
        let n = chunk.min(o.samples - start);
        buf[..n * row]
            .par_chunks_mut(row)
            .enumerate()
            .for_each(|(k, img)| draw(&o, start + k, img));
        x.write_bytes(&buf[..n * row])?;
        let labels: Vec<i32> = (start..start + n).map(|i| (i % o.classes) as i32).collect();
        y.write_bytes(bytemuck::cast_slice(&labels))?;
        start += n;
        if let Some(p) = progress {
            p(start as u64, o.samples as u64);
        }
    }
    let text: String = SYNTH_CLASSES[..o.classes]
        .iter()
        .map(|c| format!("{c}\n"))
        .collect();
    write_atomic(&paths.classes_txt, |f| f.write_all(text.as_bytes()))?;
    y.finish()?;
    x.finish()?;
    Ok(paths)
}

/// Draws sample `i` into `img` (`height × width × channels`, channels last).
fn draw(o: &SynthOptions, i: usize, img: &mut [u8]) {
    let mut rng = SampleRng::new(o.seed ^ SALT, Stream::Augment, u64::MAX, i as u64);
    let class = i % o.classes;
    let (h, w) = (o.height as f64, o.width as f64);
    let side = h.min(w);
    // Dark background, bright shape: the class is always visible.
    let bg: Vec<f64> = (0..o.channels).map(|_| rng.uniform(0.0, 90.0)).collect();
    let fg: Vec<f64> = (0..o.channels).map(|_| rng.uniform(140.0, 255.0)).collect();
    let cx = rng.uniform(0.35, 0.65) * w;
    let cy = rng.uniform(0.35, 0.65) * h;
    let r = rng.uniform(0.18, 0.32) * side;
    let angle = rng.uniform(0.0, 2.0 * PI);
    let period = rng.uniform(0.09, 0.14) * side;
    let (sin, cos) = angle.sin_cos();
    let inside = |px: f64, py: f64| -> bool {
        // Shape coordinates: rotated about the centre, v pointing up.
        let (dx, dy) = (px - cx, cy - py);
        let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
        let d = (u * u + v * v).sqrt();
        match class {
            0 => d < r,
            1 => u.abs().max(v.abs()) < 0.8 * r,
            2 => v >= -0.5 * r && v <= r - 3f64.sqrt() * u.abs(),
            3 => u.abs().max(v.abs()) < r && (v / period).floor().rem_euclid(2.0) == 0.0,
            4 => d < r && d > 0.6 * r,
            5 => (u.abs() < 0.25 * r && v.abs() < r) || (v.abs() < 0.25 * r && u.abs() < r),
            6 => u.abs() + v.abs() < r,
            _ => (u / r).powi(2) + (v / (0.5 * r)).powi(2) < 1.0,
        }
    };
    let c = o.channels;
    for (p, px) in img.chunks_exact_mut(c).enumerate() {
        let (x, y) = ((p % o.width) as f64, (p / o.width) as f64);
        // 2×2 supersampling: anti-aliased edges make resampling visible in previews.
        let cover = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
            .iter()
            .filter(|(sx, sy)| inside(x + sx, y + sy))
            .count() as f64
            / 4.0;
        let noise = rng.uniform(-6.0, 6.0);
        for (ch, v) in px.iter_mut().enumerate() {
            *v = if c == 4 && ch == 3 {
                255
            } else {
                (bg[ch] + (fg[ch] - bg[ch]) * cover + noise)
                    .round()
                    .clamp(0.0, 255.0) as u8
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_dataset_and_its_classes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            samples: 10,
            height: 8,
            width: 6,
            classes: 3,
            ..Default::default()
        };
        let paths = write_synthetic(dir.path(), &opts, None).unwrap();
        let x = npyflow::NpyArray::open(&paths.x).unwrap();
        assert_eq!(x.shape(), &[10, 8, 6, 3]);
        let y = npyflow::NpyArray::open(&paths.y).unwrap();
        assert_eq!(
            y.to_vec_f64().unwrap(),
            [0., 1., 2., 0., 1., 2., 0., 1., 2., 0.]
        );
        let classes = std::fs::read_to_string(&paths.classes_txt).unwrap();
        assert_eq!(classes, "circle\nsquare\ntriangle\n");
        let bad = SynthOptions { classes: 9, ..opts };
        assert!(write_synthetic(dir.path(), &bad, None).is_err());
    }

    #[test]
    fn same_seed_same_pixels_and_shapes_differ_by_class() {
        let o = SynthOptions {
            samples: 4,
            height: 16,
            width: 16,
            channels: 1,
            classes: 4,
            seed: 9,
        };
        let mut a = vec![0u8; 256];
        let mut b = vec![0u8; 256];
        draw(&o, 2, &mut a);
        draw(&o, 2, &mut b);
        assert_eq!(a, b);
        draw(&o, 3, &mut b);
        assert_ne!(a, b);
        // The shape covers some, not all, of the image.
        let bright = a.iter().filter(|&&v| v > 120).count();
        assert!(bright > 10 && bright < 200, "{bright}");
    }
}
