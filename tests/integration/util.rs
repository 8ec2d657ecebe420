//! Helpers shared by the integration tests: small arrays written to a tempdir.

use std::path::{Path, PathBuf};

use npyflow::npy::{write_npy, ElemType};
use npyflow::{Batch, NpyArray, NumpyArrayIterator, Order, OutputDtype};

/// Held by the tests that measure page-cache residency on a device of
/// their own or run a memory-capped child doing cold reads. Run side by
/// side in CI, the page budget's resident bytes on the loop device read
/// 3–4 MB over a 1 MiB budget (twice; never when the test ran alone, nor
/// beside two busy loops); which interaction does it was not found.
pub static HEAVY_IO: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes `data` (native-endian `T`) as `name` in `dir` with `shape` and opens it.
pub fn write<T: bytemuck::Pod>(
    dir: &Path,
    name: &str,
    elem: ElemType,
    shape: &[usize],
    data: &[T],
) -> NpyArray {
    let path: PathBuf = dir.join(name);
    write_npy(&path, elem, shape, bytemuck::cast_slice(data)).unwrap();
    NpyArray::open(&path).unwrap()
}

/// The bytes of a batch's images (native order), whatever its dtype.
pub fn image_bytes(batch: &Batch) -> Vec<u8> {
    fn bytes<T: npyflow::OutputElement>(batch: &Batch) -> Vec<u8> {
        let images = batch.images::<T>().unwrap();
        bytemuck::cast_slice(images.as_slice().unwrap()).to_vec()
    }
    match batch.dtype() {
        OutputDtype::F32 => bytes::<f32>(batch),
        OutputDtype::F64 => bytes::<f64>(batch),
        OutputDtype::F16 => bytes::<half::f16>(batch),
        OutputDtype::BF16 => bytes::<half::bf16>(batch),
    }
}

/// One epoch of `it`: each batch's indices and image bytes.
pub fn epoch_bytes(it: &mut NumpyArrayIterator) -> Vec<(Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    it.for_each_in_epoch(|b| {
        out.push((b.indices().to_vec(), image_bytes(b)));
        Ok(())
    })
    .unwrap();
    out
}

/// The most bytes of `x` resident in the page cache after any batch of one
/// epoch in `order` under a page budget of `budget` bytes (no prefetch, so
/// each sample is taken right after its batch was made).
pub fn worst_residency(x: &NpyArray, order: Order, batch_size: usize, budget: u64) -> u64 {
    let mut it = NumpyArrayIterator::builder(x.clone())
        .batch_size(batch_size)
        .order(order)
        .seed(1)
        .prefetch(0)
        .cache_budget(budget)
        .build()
        .unwrap();
    let mut worst = 0;
    it.for_each_in_epoch(|_| {
        worst = worst.max(npyflow::cache::residency_of(x).unwrap().resident_bytes());
        Ok(())
    })
    .unwrap();
    worst
}

/// `n` images of `h`×`w`×`c` u8 whose first pixel encodes the sample index
/// (low byte) and the rest a ramp, so every sample is distinguishable.
pub fn images_u8(dir: &Path, n: usize, h: usize, w: usize, c: usize) -> NpyArray {
    let sl = h * w * c;
    let data: Vec<u8> = (0..n * sl)
        .map(|k| {
            if k % sl == 0 {
                (k / sl) as u8
            } else {
                (k * 7 % 251) as u8
            }
        })
        .collect();
    write(dir, "x.npy", ElemType::U8, &[n, h, w, c], &data)
}

/// Labels `0..n` as int64.
pub fn labels(dir: &Path, name: &str, values: &[i64]) -> NpyArray {
    write(dir, name, ElemType::I64, &[values.len()], values)
}

/// A little-endian `<f4` / `<f8` C-order `.npy`, widened to f64 (exact).
/// The tests' one reader of reference fixtures: independent of the
/// crate's reader, so a reader bug cannot hide a kernel bug.
pub fn read_reference_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &bytes[start + header_len..];
    let values: Vec<f64> = if header.contains("'<f4'") {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else if header.contains("'<f8'") {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        panic!("{}: unsupported dtype in {header}", path.display());
    };
    assert_eq!(values.len(), shape.iter().product::<usize>());
    (shape, values)
}

/// The images of one epoch from `it`'s position, widened to f64 (exact for
/// f32 and f64 output).
pub fn epoch_images_f64(it: &mut NumpyArrayIterator) -> Vec<f64> {
    let mut got = Vec::new();
    it.for_each_in_epoch(|b| {
        match b.dtype() {
            OutputDtype::F32 => got.extend(b.images::<f32>()?.iter().map(|&v| v as f64)),
            OutputDtype::F64 => got.extend(b.images::<f64>()?.iter().copied()),
            OutputDtype::F16 => got.extend(b.images::<half::f16>()?.iter().map(|v| v.to_f64())),
            OutputDtype::BF16 => got.extend(b.images::<half::bf16>()?.iter().map(|v| v.to_f64())),
        }
        Ok(())
    })
    .unwrap();
    got
}
