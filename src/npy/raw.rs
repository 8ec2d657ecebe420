//! Arrays that are not `.npy` files: a raw region of a headerless file
//! (what `numpy.memmap` views) and borrowed memory (an in-memory `ndarray`,
//! e.g. handed over from Python). Both are C order, validated as a header
//! would be, and read in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::array::MemoryOwner;
use super::dtype::Dtype;
use super::header::Header;
use super::NpyArray;
use crate::{sys, Error, ErrorKind, Result};

/// Constructors for arrays that are not `.npy` files: a raw region of a
/// headerless file (`numpy.memmap`) and borrowed memory (an in-memory
/// `ndarray`). Both are C-order and validated like a header would be.
impl NpyArray {
    /// An array over `shape` elements of `dtype` stored at byte `offset` of
    /// the file at `path`, in C order, with no header: what `numpy.memmap`
    /// (or a slice of a mapped `.npy` along its first axis) views. Memory-mapped.
    ///
    /// Rows are read byte-wise, so `offset` need not be aligned for the
    /// element type (zero-copy [`NpyArray::view`] still insists).
    ///
    /// # Errors
    /// I/O errors; [`ErrorKind::SizeOverflow`] for a shape whose size does
    /// not fit the address space; [`ErrorKind::Truncated`] when the file
    /// ends before `offset` + the data length.
    pub fn from_raw_file(
        path: impl AsRef<Path>,
        offset: u64,
        dtype: Dtype,
        shape: &[usize],
    ) -> Result<NpyArray> {
        let path = path.as_ref();
        let header = raw_header(path, dtype, shape)?;
        let (file, file_len) = super::open::open_data_file(path)?;
        let expected = offset.saturating_add(header.data_len as u64);
        if file_len < expected {
            return Err(ErrorKind::Truncated {
                path: path.to_path_buf(),
                expected,
                found: file_len,
            }
            .into());
        }
        let map = Arc::new(sys::map_readonly(&file).map_err(|e| Error::io(path, e))?);
        // As in `from_parts`: no read-around on the first touch.
        let _ = map.advise(sys::FileAdvice::Random);
        Ok(NpyArray::assemble(
            path.to_path_buf(),
            file,
            Some(map),
            offset,
            header,
            file_len,
            None,
        ))
    }

    /// An array over `shape` elements of `dtype` held in memory by `owner`,
    /// in C order: the data is read in place (no copy), and `owner` is kept
    /// alive by the array and its clones. `name` stands for the path in
    /// error messages and telemetry.
    ///
    /// The array has no file: page-cache functions see an empty one (no
    /// residency, advice that does nothing), and
    /// [`NpyArray::check_unchanged`] always passes.
    ///
    /// # Errors
    /// [`ErrorKind::SizeOverflow`] for a shape whose size does not fit the
    /// address space; [`ErrorKind::Truncated`] when `owner` holds fewer
    /// bytes than the shape needs; I/O errors creating the stand-in file.
    pub fn from_memory(
        owner: MemoryOwner,
        name: impl Into<PathBuf>,
        dtype: Dtype,
        shape: &[usize],
    ) -> Result<NpyArray> {
        let path = name.into();
        let header = raw_header(&path, dtype, shape)?;
        let found = (*owner).as_ref().len() as u64;
        if found < header.data_len as u64 {
            return Err(ErrorKind::Truncated {
                path,
                expected: header.data_len as u64,
                found,
            }
            .into());
        }
        // The cache layer and `check_unchanged` work on a file descriptor;
        // an empty, unnamed file answers them without touching anything.
        let file = tempfile::tempfile().map_err(|e| Error::io(&path, e))?;
        Ok(NpyArray::assemble(
            path,
            file,
            None,
            0,
            header,
            0,
            Some(owner),
        ))
    }
}

/// The header a C-order `.npy` of `dtype` and `shape` would have, its data
/// at offset 0, with the header parser's size checks.
fn raw_header(path: &Path, dtype: Dtype, shape: &[usize]) -> Result<Header> {
    let overflow = || -> Error {
        ErrorKind::SizeOverflow {
            path: path.to_path_buf(),
            shape: shape.iter().map(|&d| d as u64).collect(),
        }
        .into()
    };
    let num_elements = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let data_len = num_elements
        .checked_mul(dtype.size())
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(overflow)?;
    // A zero dimension hides the size of the others (see the header parser).
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
    if nonzero.is_none_or(|b| b > isize::MAX as usize) {
        return Err(overflow());
    }
    Ok(Header {
        version: (1, 0),
        dtype,
        fortran_order: false,
        shape: shape.to_vec(),
        data_offset: 0,
        num_elements,
        data_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::fit;
    use crate::npy::{write_npy, ByteOrder, ElemType, SourceKind};
    use crate::{FitConfig, GeneratorOptions, NumpyArrayIterator};

    /// 6 images of 2×3×1, value = 10·sample + position.
    fn pixels() -> Vec<u16> {
        (0..6u16)
            .flat_map(|n| (0..6u16).map(move |k| 10 * n + k))
            .collect()
    }

    fn f32_rows(a: &NpyArray) -> Vec<f32> {
        let mut out = vec![0f32; a.len() * a.row_len()];
        for (i, row) in out.chunks_exact_mut(a.row_len()).enumerate() {
            a.read_sample_into(i, row).unwrap();
        }
        out
    }

    #[test]
    fn memory_arrays_read_in_place_like_files() {
        let bytes: Vec<u8> = bytemuck::cast_slice(&pixels()).to_vec();
        let ptr = bytes.as_ptr();
        let shape = [6, 2, 3, 1];
        let a = NpyArray::from_memory(
            Box::new(bytes),
            "<memory>",
            Dtype::native(ElemType::U16),
            &shape,
        )
        .unwrap();
        assert_eq!(
            (a.shape(), a.row_bytes(), a.data_offset()),
            (&shape[..], 12, 0)
        );
        // Zero-copy: the view is the owner's own buffer.
        assert_eq!(a.data_bytes().unwrap().as_ptr(), ptr);
        assert_eq!(a.view::<u16>().unwrap()[[4, 1, 2, 0]], 45);
        assert_eq!(a.sample_view::<u16>(5).unwrap()[[0, 0, 0]], 50);
        let expected: Vec<f32> = pixels().iter().map(|&v| v as f32).collect();
        assert_eq!(f32_rows(&a), expected);
        a.check_unchanged().unwrap();

        // The same iteration and fit as over the file numpy would write.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write_npy(
            &path,
            ElemType::U16,
            &shape,
            bytemuck::cast_slice(&pixels()),
        )
        .unwrap();
        let file = NpyArray::open(&path).unwrap();
        let batches = |x: NpyArray| -> Vec<Vec<f32>> {
            let mut it = NumpyArrayIterator::builder(x)
                .batch_size(4)
                .shuffle(true)
                .seed(3)
                .build()
                .unwrap();
            let mut out = Vec::new();
            while let Some(b) = it.next_in_epoch().unwrap() {
                out.push(b.images::<f32>().unwrap().iter().copied().collect());
            }
            out
        };
        assert_eq!(batches(a.clone()), batches(file.clone()));
        let options = GeneratorOptions {
            featurewise_std_normalization: true,
            ..Default::default()
        };
        let config = FitConfig {
            chunk_bytes: 8,
            ..FitConfig::default()
        };
        let from_memory = fit(&options, &a, &config, None).unwrap();
        assert_eq!(from_memory, fit(&options, &file, &config, None).unwrap());
        assert!((from_memory.mean().unwrap()[0] - 27.5).abs() < 1e-12);
    }

    #[test]
    fn memory_arrays_refuse_short_owners_and_huge_shapes() {
        let short = NpyArray::from_memory(
            Box::new(vec![0u8; 11]),
            "<memory>",
            Dtype::native(ElemType::U16),
            &[6, 1],
        );
        match short.unwrap_err().into_kind() {
            ErrorKind::Truncated {
                expected, found, ..
            } => assert_eq!((expected, found), (12, 11)),
            k => panic!("{k:?}"),
        }
        let huge = NpyArray::from_memory(
            Box::new(Vec::<u8>::new()),
            "<memory>",
            Dtype::native(ElemType::F64),
            &[0, 1 << 62, 16],
        );
        assert!(matches!(
            huge.unwrap_err().into_kind(),
            ErrorKind::SizeOverflow { .. }
        ));
    }

    #[test]
    fn raw_file_regions_are_headerless_memmaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.bin");
        // 7 junk bytes (an odd offset), then big-endian u16 pixels, then a tail.
        let mut bytes = vec![0xAAu8; 7];
        bytes.extend(pixels().iter().flat_map(|v| v.to_be_bytes()));
        bytes.extend([1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let dtype = Dtype {
            elem: ElemType::U16,
            order: ByteOrder::Big,
        };
        let a = NpyArray::from_raw_file(&path, 7, dtype, &[6, 2, 3, 1]).unwrap();
        assert_eq!((a.len(), a.data_offset(), a.data_len()), (6, 7, 72));
        assert_eq!(a.source_kind(), SourceKind::Mmap);
        let expected: Vec<f32> = pixels().iter().map(|&v| v as f32).collect();
        assert_eq!(f32_rows(&a), expected);
        // Two rows further in: a slice of the first axis.
        let b = NpyArray::from_raw_file(&path, 7 + 2 * 12, dtype, &[4, 2, 3, 1]).unwrap();
        assert_eq!(f32_rows(&b), expected[12..]);
        match NpyArray::from_raw_file(&path, 12, dtype, &[6, 2, 3, 1])
            .unwrap_err()
            .into_kind()
        {
            ErrorKind::Truncated {
                expected, found, ..
            } => assert_eq!((expected, found), (84, 82)),
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            NpyArray::from_raw_file(dir.path().join("none"), 0, dtype, &[1])
                .unwrap_err()
                .into_kind(),
            ErrorKind::Io { .. }
        ));
    }
}
