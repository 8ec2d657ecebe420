//! Image folder (one sub-folder per class, as Keras' `flow_from_directory`
//! reads it) → `x.npy` (N, H, W, C) `uint8` + `y.npy` (N,) `int32` + `classes.txt`.

use std::fmt;
use std::fs;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageReader};
use rayon::prelude::*;

use super::{chunk_rows, Progress};
use crate::npy::{header_bytes, persist, Dtype, ElemType, NpyWriter, Partial};
use crate::{Error, ErrorKind, Result, WHITE_LIST_FORMATS};

/// The colour mode of converted images (Keras' `color_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColorMode {
    /// Three channels. The default, as in Keras.
    #[default]
    Rgb,
    /// One channel, converted with PIL's `convert('L')` weights
    /// (ITU-R 601-2: 0.299 R + 0.587 G + 0.114 B) so values match Keras.
    Grayscale,
    /// Four channels (opaque alpha added when the file has none).
    Rgba,
}

impl ColorMode {
    /// Channels per pixel.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Rgb => 3,
            ColorMode::Grayscale => 1,
            ColorMode::Rgba => 4,
        }
    }
}

impl FromStr for ColorMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<ColorMode> {
        match s {
            "rgb" => Ok(ColorMode::Rgb),
            "grayscale" | "greyscale" | "gray" | "grey" => Ok(ColorMode::Grayscale),
            "rgba" => Ok(ColorMode::Rgba),
            _ => Err(Error::invalid(
                "color_mode",
                format!("{s:?}"),
                "expected rgb, grayscale or rgba",
            )),
        }
    }
}

impl fmt::Display for ColorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColorMode::Rgb => "rgb",
            ColorMode::Grayscale => "grayscale",
            ColorMode::Rgba => "rgba",
        })
    }
}

/// The resampling filter used to resize images (the `image` crate's filters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResizeFilter {
    /// Nearest neighbour. The default, as Keras' `interpolation='nearest'`.
    #[default]
    Nearest,
    /// Linear (PIL's `bilinear`).
    Triangle,
    /// Cubic (PIL's `bicubic`).
    CatmullRom,
    /// Gaussian.
    Gaussian,
    /// Lanczos with a window of 3 (PIL's `lanczos`).
    Lanczos3,
}

impl ResizeFilter {
    fn filter_type(self) -> FilterType {
        match self {
            ResizeFilter::Nearest => FilterType::Nearest,
            ResizeFilter::Triangle => FilterType::Triangle,
            ResizeFilter::CatmullRom => FilterType::CatmullRom,
            ResizeFilter::Gaussian => FilterType::Gaussian,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        }
    }
}

impl FromStr for ResizeFilter {
    type Err = Error;
    /// Accepts the `image` crate's names and Keras/PIL's interpolation names.
    fn from_str(s: &str) -> Result<ResizeFilter> {
        match s {
            "nearest" => Ok(ResizeFilter::Nearest),
            "triangle" | "bilinear" | "linear" => Ok(ResizeFilter::Triangle),
            "catmull-rom" | "catmullrom" | "bicubic" | "cubic" => Ok(ResizeFilter::CatmullRom),
            "gaussian" => Ok(ResizeFilter::Gaussian),
            "lanczos3" | "lanczos" => Ok(ResizeFilter::Lanczos3),
            _ => Err(Error::invalid(
                "filter",
                format!("{s:?}"),
                "expected nearest, triangle, catmull-rom, gaussian or lanczos3",
            )),
        }
    }
}

impl fmt::Display for ResizeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResizeFilter::Nearest => "nearest",
            ResizeFilter::Triangle => "triangle",
            ResizeFilter::CatmullRom => "catmull-rom",
            ResizeFilter::Gaussian => "gaussian",
            ResizeFilter::Lanczos3 => "lanczos3",
        })
    }
}

/// Options for [`convert_images`].
#[derive(Clone, Copy)]
pub struct ImageConvertOptions<'a> {
    /// Output `(height, width)`; every image is resized to it. `None`: the
    /// images' own size when they all share one, else `(256, 256)` (see
    /// [`SizeChoice`]). By default `Some((256, 256))`, Keras' `target_size`.
    pub size: Option<(u32, u32)>,
    /// Colour mode. By default RGB.
    pub color: ColorMode,
    /// Resampling filter. By default nearest, as Keras.
    pub filter: ResizeFilter,
    /// Skip (and report) images that cannot be decoded instead of failing.
    /// By default, an unreadable image is an error.
    pub skip_bad: bool,
    /// Write the images in the order this seed shuffles them into
    /// ([`super::shuffled_rows`]) instead of class by class, so that a
    /// validation split holds every class. By default, Keras' directory
    /// order (classes sorted, files sorted within each).
    pub shuffle: Option<u64>,
    /// Called with `(images done, images total)` after each chunk.
    pub progress: Option<Progress<'a>>,
}

impl Default for ImageConvertOptions<'_> {
    fn default() -> Self {
        ImageConvertOptions {
            size: Some((256, 256)),
            color: ColorMode::Rgb,
            filter: ResizeFilter::Nearest,
            skip_bad: false,
            shuffle: None,
            progress: None,
        }
    }
}

impl fmt::Debug for ImageConvertOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageConvertOptions")
            .field("size", &self.size)
            .field("color", &self.color)
            .field("filter", &self.filter)
            .field("skip_bad", &self.skip_bad)
            .field("shuffle", &self.shuffle)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Why the images were converted at the size they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeChoice {
    /// The size was given.
    Given,
    /// No size was given and every image has this size: kept as is.
    Shared,
    /// No size was given and the images differ in size (from `smallest` to
    /// `largest` pixels, as `(height, width)`): Keras' default
    /// `target_size` of 256×256 was used.
    Mixed {
        /// The size of the image with the fewest pixels.
        smallest: (u32, u32),
        /// The size of the image with the most pixels.
        largest: (u32, u32),
    },
}

/// Keras' `target_size` default, used when no size is given and the
/// images differ in size.
pub const DEFAULT_SIZE: (u32, u32) = (256, 256);

/// The images of a class folder tree, in the order they are converted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFolder {
    /// Class names: the sub-folder names, sorted.
    pub classes: Vec<String>,
    /// Image files with their class index, class by class, each class in
    /// sorted path order (Keras' order).
    pub files: Vec<(PathBuf, u32)>,
}

/// An image that could not be decoded and was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedImage {
    /// The file.
    pub path: PathBuf,
    /// Why it could not be read.
    pub reason: String,
}

/// What [`convert_images`] wrote.
#[derive(Clone, Debug)]
pub struct ImageConvertReport {
    /// `OUT/x.npy`: `(N, H, W, C)` `uint8`.
    pub x: PathBuf,
    /// `OUT/y.npy`: `(N,)` `int32` class indices (Keras' `classes` dtype).
    pub y: PathBuf,
    /// `OUT/classes.txt`: one class name per line, line `i` is class `i`.
    pub classes_txt: PathBuf,
    /// The class names.
    pub classes: Vec<String>,
    /// Images written per class.
    pub per_class: Vec<usize>,
    /// Images written (N).
    pub samples: usize,
    /// The array's shape.
    pub shape: [usize; 4],
    /// Why the images have the size they have.
    pub size_choice: SizeChoice,
    /// The seed of the shuffled order, when [`ImageConvertOptions::shuffle`] was set.
    pub shuffled: Option<u64>,
    /// Images skipped because they could not be decoded (`skip_bad` only).
    pub skipped: Vec<SkippedImage>,
}

fn has_white_listed_extension(name: &Path) -> bool {
    name.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| WHITE_LIST_FORMATS.iter().any(|w| w.eq_ignore_ascii_case(e)))
}

/// Lists a class folder tree the way Keras' `flow_from_directory` does.
///
/// Classes are the sorted names of `dir`'s sub-folders (symbolic links to
/// folders count). Inside a class, files are found recursively without
/// following symbolic links to folders, ordered by folder path and then by
/// file name (Keras' `sorted(os.walk(...))` order), and kept when their
/// extension is in [`WHITE_LIST_FORMATS`](crate::WHITE_LIST_FORMATS)
/// (case-insensitive; the constant the iterator exposes).
///
/// # Errors
/// I/O errors; [`ErrorKind::InvalidArgument`] when `dir` has no class
/// folders, or a class name cannot go on one line of `classes.txt`.
pub fn list_image_folder(dir: impl AsRef<Path>) -> Result<ImageFolder> {
    let dir = dir.as_ref();
    let meta = fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::invalid("directory", dir.display(), "not a folder"));
    }
    let mut classes = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        // `metadata` follows links, as Python's `os.path.isdir` does.
        if fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(['\n', '\r']) {
                return Err(Error::invalid(
                    "class",
                    format!("{name:?}"),
                    "class folder names must not contain line breaks",
                ));
            }
            classes.push(name);
        }
    }
    // Byte order of UTF-8 is code point order: the same as Python's `sorted`.
    classes.sort();
    if classes.is_empty() {
        return Err(Error::invalid(
            "directory",
            dir.display(),
            "no class sub-folders (expected one folder per class holding its images)",
        ));
    }
    let mut files = Vec::new();
    for (index, class) in classes.iter().enumerate() {
        let mut folders = Vec::new();
        walk(&dir.join(class), &mut folders)?;
        folders.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
        for (_, mut names) in folders {
            names.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            files.extend(
                names
                    .into_iter()
                    .filter(|p| has_white_listed_extension(p))
                    .map(|p| (p, index as u32)),
            );
        }
    }
    Ok(ImageFolder { classes, files })
}

/// Collects `(folder, files in it)` for `root` and every folder below it,
/// not descending into links to folders (Python's `os.walk` default).
fn walk(root: &Path, out: &mut Vec<(PathBuf, Vec<PathBuf>)>) -> Result<()> {
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            subdirs.push(path);
        } else if kind.is_symlink() {
            // A link to a file is a file; a link to a folder is not walked; a
            // dangling link is listed and then reported as unreadable.
            if !fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
                files.push(path);
            }
        } else {
            files.push(path);
        }
    }
    out.push((root.to_path_buf(), files));
    for sub in subdirs {
        walk(&sub, out)?;
    }
    Ok(())
}

/// Converts a class folder tree into `out_dir/x.npy`, `out_dir/y.npy` and
/// `out_dir/classes.txt` (the folder is created if needed).
///
/// Images are decoded, converted to the colour mode and resized (only when
/// their size differs) in parallel, a chunk at a time, and written in
/// [`list_image_folder`] order, so memory use does not grow with the number
/// of images. The colour conversion happens before the resize, as Keras'
/// `load_img` does.
///
/// Each output goes to a temporary file beside its destination and is
/// renamed only when every image has been written; `x.npy` is renamed last,
/// so its presence means the conversion finished.
///
/// # Errors
/// I/O errors (including an unwritable `out_dir`); the folder errors of
/// [`list_image_folder`]; [`ErrorKind::InvalidArgument`] for a zero size or
/// when no image is found; [`ErrorKind::Image`] naming the first file that
/// cannot be decoded, unless `skip_bad` is set (then only when every image
/// fails).
pub fn convert_images(
    dir: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    options: &ImageConvertOptions<'_>,
) -> Result<ImageConvertReport> {
    let (dir, out_dir) = (dir.as_ref(), out_dir.as_ref());
    if let Some((h, w)) = options.size.filter(|&(h, w)| h == 0 || w == 0) {
        return Err(Error::invalid(
            "size",
            format!("{h}x{w}"),
            "height and width must be positive",
        ));
    }
    let mut folder = list_image_folder(dir)?;
    let total = folder.files.len();
    if total == 0 {
        return Err(Error::invalid(
            "directory",
            dir.display(),
            format!(
                "no images found in its class folders (looked for {})",
                WHITE_LIST_FORMATS.join(", ")
            ),
        ));
    }
    let (size_choice, (h, w)) = match options.size {
        Some(size) => (SizeChoice::Given, size),
        None => survey_sizes(&folder.files),
    };
    let options = &ImageConvertOptions {
        size: Some((h, w)),
        ..*options
    };
    if let Some(seed) = options.shuffle {
        let order = super::shuffled_rows(total, seed);
        let files = std::mem::take(&mut folder.files);
        let mut slots: Vec<Option<(PathBuf, u32)>> = files.into_iter().map(Some).collect();
        folder.files = order.iter().filter_map(|&i| slots[i].take()).collect();
    }
    let channels = options.color.channels();
    let row_bytes = (h as usize)
        .checked_mul(w as usize)
        .and_then(|p| p.checked_mul(channels))
        .ok_or_else(|| Error::invalid("size", format!("{h}x{w}"), "too large"))?;
    // Before anything is created: an impossible size leaves nothing behind.
    let mut buf = chunk_buffer(total, row_bytes, (h, w, channels))?;
    let rows = buf.len() / row_bytes;
    fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let x_path = out_dir.join("x.npy");
    let y_path = out_dir.join("y.npy");
    let classes_path = out_dir.join("classes.txt");

    let mut x_out = ReservedNpy::create(
        &x_path,
        Dtype::native(ElemType::U8),
        &[total, h as usize, w as usize, channels],
    )?;
    let mut labels: Vec<i32> = Vec::with_capacity(total);
    let mut per_class = vec![0usize; folder.classes.len()];
    let mut skipped = Vec::new();
    if let Some(p) = options.progress {
        p(0, total as u64);
    }
    let mut done = 0usize;
    for files in folder.files.chunks(rows) {
        let slots = &mut buf[..files.len() * row_bytes];
        let results: Vec<std::result::Result<(), String>> = slots
            .par_chunks_mut(row_bytes)
            .zip(files.par_iter())
            .map(|(slot, (path, _))| load_into(path, options, slot))
            .collect();
        for ((slot, (path, class)), result) in slots.chunks(row_bytes).zip(files).zip(results) {
            match result {
                Ok(()) => {
                    x_out.write(slot)?;
                    labels.push(*class as i32);
                    per_class[*class as usize] += 1;
                }
                Err(reason) if options.skip_bad => skipped.push(SkippedImage {
                    path: path.clone(),
                    reason,
                }),
                Err(reason) => {
                    return Err(ErrorKind::Image {
                        path: path.clone(),
                        reason,
                    }
                    .into())
                }
            }
        }
        done += files.len();
        if let Some(p) = options.progress {
            p(done as u64, total as u64);
        }
    }
    let samples = labels.len();
    if samples == 0 {
        return Err(Error::invalid(
            "directory",
            dir.display(),
            format!(
                "none of its {total} images could be decoded (first: {})",
                skipped[0].path.display()
            ),
        ));
    }

    let mut y_out = NpyWriter::create(&y_path, Dtype::native(ElemType::I32), &[samples])?;
    y_out.write_bytes(bytemuck::cast_slice(&labels))?;
    let (classes_tmp, mut classes_file) = crate::npy::create_atomic(&classes_path)?;
    let mut text = folder.classes.join("\n");
    text.push('\n');
    classes_file
        .write_all(text.as_bytes())
        .map_err(|e| Error::io(&classes_path, e))?;
    // A stale x.npy from an earlier run would pair with the new labels if we
    // stopped between renames; removing it first keeps "x.npy exists" meaning
    // "this conversion finished".
    match fs::remove_file(&x_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&x_path, e)),
        _ => {}
    }
    y_out.finish()?;
    persist(classes_tmp, &classes_path)?;
    let shape = [samples, h as usize, w as usize, channels];
    x_out.finish(&shape)?;
    Ok(ImageConvertReport {
        x: x_path,
        y: y_path,
        classes_txt: classes_path,
        classes: folder.classes,
        per_class,
        samples,
        shape,
        size_choice,
        shuffled: options.shuffle,
        skipped,
    })
}

/// The images' common size, or Keras' default when they differ; sizes are
/// read from the files' headers (nothing is decoded). Files whose header
/// cannot be read are left out here (the conversion reports them).
fn survey_sizes(files: &[(PathBuf, u32)]) -> (SizeChoice, (u32, u32)) {
    let sizes: Vec<(u32, u32)> = files
        .par_iter()
        .filter_map(|(path, _)| {
            ImageReader::open(path)
                .ok()?
                .with_guessed_format()
                .ok()?
                .into_dimensions()
                .ok()
                .map(|(w, h)| (h, w))
        })
        .collect();
    let pixels = |&(h, w): &(u32, u32)| h as u64 * w as u64;
    match (
        sizes.iter().min_by_key(|s| pixels(s)),
        sizes.iter().max_by_key(|s| pixels(s)),
    ) {
        (Some(&first), Some(_)) if sizes.iter().all(|&s| s == first) => (SizeChoice::Shared, first),
        (Some(&smallest), Some(&largest)) => {
            (SizeChoice::Mixed { smallest, largest }, DEFAULT_SIZE)
        }
        // Nothing readable: the conversion will report the files.
        _ => (
            SizeChoice::Mixed {
                smallest: DEFAULT_SIZE,
                largest: DEFAULT_SIZE,
            },
            DEFAULT_SIZE,
        ),
    }
}

/// Each decoding thread holds, besides its slot of the chunk, the decoded
/// image and its resized copy with the resampler's float intermediates:
/// about this many output images' worth.
const WORKING_IMAGES_PER_THREAD: u64 = 6;

/// The buffer of one chunk of output images (at least two per thread, so
/// every thread has work), checked to fit with the threads' working memory:
/// [`ErrorKind::OutOfMemory`] naming the size instead of an abort when an
/// image size is beyond the machine.
fn chunk_buffer(total: usize, row_bytes: usize, (h, w, c): (u32, u32, usize)) -> Result<Vec<u8>> {
    let threads = rayon::current_num_threads();
    let rows = chunk_rows(row_bytes).max(threads * 2).min(total).max(1);
    let what = || format!("{rows} images of {h}x{w}x{c} bytes in flight (size {h}x{w})");
    let bytes = rows
        .checked_mul(row_bytes)
        .ok_or_else(|| Error::out_of_memory(what(), u64::MAX))?;
    let working = (threads as u64)
        .saturating_mul(row_bytes as u64)
        .saturating_mul(WORKING_IMAGES_PER_THREAD);
    crate::error::check_allocation((bytes as u64).saturating_add(working), what)?;
    crate::error::try_zeroed(bytes, what)
}

/// Decodes `path`, converts and resizes it, and copies its pixels into `slot`.
fn load_into(
    path: &Path,
    options: &ImageConvertOptions<'_>,
    slot: &mut [u8],
) -> std::result::Result<(), String> {
    let img = ImageReader::open(path)
        .map_err(|e| format!("cannot open image: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?
        .decode()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let img = match options.color {
        ColorMode::Rgb => DynamicImage::ImageRgb8(img.to_rgb8()),
        ColorMode::Rgba => DynamicImage::ImageRgba8(img.to_rgba8()),
        ColorMode::Grayscale => DynamicImage::ImageLuma8(pil_luma(&img)),
    };
    let (h, w) = options.size.unwrap_or(DEFAULT_SIZE);
    let img = if img.height() == h && img.width() == w {
        img
    } else {
        img.resize_exact(w, h, options.filter.filter_type())
    };
    let bytes = img.as_bytes();
    if bytes.len() != slot.len() {
        // Cannot happen for the 8-bit buffers built above; guard instead of panicking.
        return Err(format!(
            "decoded to {} bytes, expected {}",
            bytes.len(),
            slot.len()
        ));
    }
    slot.copy_from_slice(bytes);
    Ok(())
}

/// Grayscale with PIL's `convert('L')` integer weights, so that values match
/// Keras (which loads through PIL); the `image` crate uses Rec. 709 weights.
fn pil_luma(img: &DynamicImage) -> GrayImage {
    match img {
        // Already one channel: no weighting involved.
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => img.to_luma8(),
        _ => {
            let rgb = img.to_rgb8();
            GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let [r, g, b] = rgb.get_pixel(x, y).0;
                let l = (r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16;
                image::Luma([l as u8])
            })
        }
    }
}

/// A `.npy` written into a temporary file under a header sized for the most
/// rows it may hold; [`ReservedNpy::finish`] rewrites the header with the
/// rows actually written (fewer when images were skipped) before renaming.
///
/// [`NpyWriter`] needs the final shape up front, which a skipping conversion
/// only knows at the end; decoding everything twice to count would double
/// the cost, so the header is rewritten in place instead.
struct ReservedNpy {
    path: PathBuf,
    dtype: Dtype,
    header_len: usize,
    out: BufWriter<Partial>,
    written: u64,
}

impl ReservedNpy {
    fn create(path: &Path, dtype: Dtype, max_shape: &[usize]) -> Result<ReservedNpy> {
        let header = header_bytes(dtype, max_shape);
        let tmp = Partial::create_replacing(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp);
        out.write_all(&header).map_err(|e| Error::io(path, e))?;
        Ok(ReservedNpy {
            path: path.to_path_buf(),
            dtype,
            header_len: header.len(),
            out,
            written: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    fn finish(self, shape: &[usize]) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        let expected = shape.iter().product::<usize>() as u64 * self.dtype.size() as u64;
        if expected != self.written {
            return Err(Error::invalid(
                "data",
                self.written,
                format!("{} expects {expected} data bytes", self.path.display()),
            ));
        }
        let header = header_padded(self.dtype, shape, self.header_len).ok_or_else(|| {
            Error::invalid(
                "shape",
                format!("{shape:?}"),
                "header does not fit the reserved space",
            )
        })?;
        let mut tmp = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        tmp.seek(SeekFrom::Start(0)).map_err(io)?;
        tmp.write_all(&header).map_err(io)?;
        persist(tmp, &self.path)
    }
}

/// numpy's header for `shape`, padded with spaces to exactly `len` bytes
/// (`None` when it is longer). Fewer rows never need a longer header.
fn header_padded(dtype: Dtype, shape: &[usize], len: usize) -> Option<Vec<u8>> {
    let mut h = header_bytes(dtype, shape);
    if h.len() > len {
        return None;
    }
    if h.len() < len {
        h.pop(); // the terminating newline
        h.resize(len - 1, b' ');
        h.push(b'\n');
        match h[6] {
            1 => h[8..10].copy_from_slice(&u16::try_from(len - 10).ok()?.to_le_bytes()),
            _ => h[8..12].copy_from_slice(&u32::try_from(len - 12).ok()?.to_le_bytes()),
        }
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_header_parses_with_the_new_shape() {
        let d = Dtype::native(ElemType::U8);
        let long = header_bytes(d, &[1_000_000_000_000_000, 32, 32, 3]);
        for n in [0usize, 7, 999_999] {
            let h = header_padded(d, &[n, 32, 32, 3], long.len()).unwrap();
            assert_eq!(h.len(), long.len());
            let parsed = crate::npy::parse_header(&h, Path::new("t")).unwrap();
            assert_eq!(parsed.shape, vec![n, 32, 32, 3]);
            assert_eq!(parsed.data_offset, long.len());
        }
        assert!(header_padded(d, &[usize::MAX, 1, 1, 1], 64).is_none());
    }

    #[test]
    fn extension_filter_is_case_insensitive() {
        for ok in ["a.PNG", "b.jpeg", "c.Tiff", "d.ppm", "e.JPG"] {
            assert!(has_white_listed_extension(Path::new(ok)), "{ok}");
        }
        for bad in ["a.gif", "b", "c.png.txt", ".png"] {
            assert!(!has_white_listed_extension(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            "bicubic".parse::<ResizeFilter>().unwrap(),
            ResizeFilter::CatmullRom
        );
        assert_eq!(
            "grayscale".parse::<ColorMode>().unwrap(),
            ColorMode::Grayscale
        );
        assert!("cubist".parse::<ResizeFilter>().is_err());
        for f in ["nearest", "triangle", "catmull-rom", "gaussian", "lanczos3"] {
            assert_eq!(f.parse::<ResizeFilter>().unwrap().to_string(), f);
        }
    }
}
