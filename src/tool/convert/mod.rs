//! Conversions into mappable `.npy` files: image folders, `.npz` members,
//! and dtype / byte-order / memory-order rewrites of existing arrays.
//!
//! Every conversion streams: memory use depends on the chunk size, never on
//! the number of samples (except for the list of input file names and one
//! label per image). Every output is written to a temporary file in its
//! destination folder and renamed into place only when it is complete, so an
//! interrupted conversion never leaves a truncated file at the destination
//! (a killed process can leave a hidden `.NAME.*.partial` file behind, which
//! is safe to delete).

mod array;
mod cast;
mod images;
mod npz;

pub use array::{convert_array, ConvertArrayOptions, ConvertArrayReport};
pub use images::{
    convert_images, list_image_folder, ColorMode, ImageConvertOptions, ImageConvertReport,
    ImageFolder, ResizeFilter, SkippedImage,
};
pub use npz::{extract_npz, npz_member_header, ExtractedMember};

/// A progress callback: `(done, total)` in the unit the operation documents
/// (images for [`convert_images`], bytes for the array conversions).
///
/// Called from the thread that runs the conversion, after each chunk.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Bytes of output rows buffered per chunk: large enough that per-chunk
/// overhead (a rayon fork-join, a write call) is negligible, small enough to
/// keep the converter's memory flat on a laptop.
pub(crate) const CHUNK_BYTES: usize = 32 << 20;

/// Rows per chunk for rows of `row_bytes` bytes (at least one).
fn chunk_rows(row_bytes: usize) -> usize {
    (CHUNK_BYTES / row_bytes.max(1)).max(1)
}
