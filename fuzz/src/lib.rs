//! Shared oracles of the fuzz targets: open what the fuzzer wrote with both
//! sources, require the same outcome, and when it opens, read every row, take
//! every view and iterate one epoch, requiring identical bytes from the map
//! and from `pread`.
//!
//! Inputs may declare any shape; each step is skipped when it would allocate
//! more than [`MAX_BYTES`], so one input never costs more than a few MB.

use std::mem::discriminant;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use npyflow::npy::{ElemType, NpyArray, OpenOptions, SourceKind};
use npyflow::{Error, GeneratorOptions, ImageDataGenerator, NumpyArrayIterator, Order, ShiftRange};

/// The most one step of one input may allocate.
pub const MAX_BYTES: usize = 1 << 20;
/// Rows visited at most when rows hold no bytes (a huge declared length costs nothing to store).
const MAX_EMPTY_ROWS: usize = 4096;
/// Batch size of the epochs iterated.
const BATCH: usize = 3;

/// A private folder for the files the targets write (in /dev/shm when there is one).
pub fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new()
            .prefix("npyflow-fuzz.")
            .tempdir_in(shm);
        builder
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary folder")
    });
    dir.path().join(name)
}

/// Writes `data` to a scratch file called `name` and returns its path.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, data).expect("writing the input file");
    path
}

fn options(source: SourceKind) -> OpenOptions {
    OpenOptions {
        source,
        ..Default::default()
    }
}

/// Requires that both sources agree on success or on the kind of error.
pub fn same_outcome<T, U>(what: &str, m: &Result<T, Error>, r: &Result<U, Error>) {
    match (m, r) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => {
            assert_eq!(
                discriminant(a.kind()),
                discriminant(b.kind()),
                "{what}: mmap says {a}, read says {b}"
            );
            // Every message must render (no panics in Display).
            let _ = (a.to_string(), b.to_string());
        }
        (Ok(_), Err(e)) => panic!("{what}: mmap opens, read fails with {e}"),
        (Err(e), Ok(_)) => panic!("{what}: read opens, mmap fails with {e}"),
    }
}

/// Opens the `.npy` at `path` with both sources and exercises what opens.
pub fn exercise_npy_file(path: &Path) {
    let m = NpyArray::open_with(path, options(SourceKind::Mmap));
    let r = NpyArray::open_with(path, options(SourceKind::Read));
    same_outcome("open", &m, &r);
    if let (Ok(m), Ok(r)) = (m, r) {
        exercise_pair(&m, &r);
    }
    // Raw access to Fortran arrays (the converter's path) must hold up too.
    let f = NpyArray::open_with(
        path,
        OpenOptions {
            source: SourceKind::Mmap,
            allow_fortran: true,
        },
    );
    if let Ok(f) = f {
        rows_f64(&f);
    }
}

/// Reads every row of both arrays (which are the same bytes through two
/// sources) and iterates one epoch of each; everything must agree.
pub fn exercise_pair(m: &NpyArray, r: &NpyArray) {
    assert_eq!(m.shape(), r.shape());
    assert_eq!(m.dtype(), r.dtype());
    assert_eq!(m.data_offset(), r.data_offset());
    m.check_unchanged().expect("nothing changed the file");
    r.check_unchanged().expect("nothing changed the file");
    let _ = (m.name(), format!("{m:?}"), m.header().num_elements);

    assert_eq!(
        rows_f64(m),
        rows_f64(r),
        "rows differ between mmap and read"
    );
    assert_eq!(
        whole_f64(m),
        whole_f64(r),
        "to_vec_f64 differs between mmap and read"
    );
    views(m);
    assert!(r.data_bytes().is_none());

    if let (Some(a), Some(b)) = (epoch(m, 0), epoch(r, 1)) {
        assert_eq!(
            a, b,
            "an epoch differs between mmap (1 thread) and read (2 threads, prefetch)"
        );
    }
}

/// Rows visited for `a`: all, unless rows hold no bytes and the length is absurd.
fn row_count(a: &NpyArray) -> usize {
    if a.row_bytes() == 0 {
        a.len().min(MAX_EMPTY_ROWS)
    } else {
        a.len()
    }
}

/// Every row as f64 bits (bits, so NaN compares equal to itself), through
/// every read path; `None` when a row is too large to buffer.
fn rows_f64(a: &NpyArray) -> Option<Vec<u64>> {
    if a.row_len().checked_mul(8)? > MAX_BYTES {
        return None;
    }
    let mut out = Vec::new();
    let mut f64_row = vec![0f64; a.row_len()];
    let mut f32_row = vec![0f32; a.row_len()];
    let mut raw = vec![0u8; a.row_bytes()];
    let mut native = vec![0u8; a.row_bytes()];
    for i in 0..row_count(a) {
        a.read_sample_into(i, &mut f64_row)
            .expect("an opened array's rows read");
        a.read_sample_into(i, &mut f32_row)
            .expect("an opened array's rows read");
        a.read_row_raw(i, &mut raw)
            .expect("an opened array's rows read");
        a.read_row_native(i, &mut native)
            .expect("an opened array's rows read");
        for (x, y) in f64_row.iter().zip(&f32_row) {
            // NaN payloads may differ between conversion paths (Rust does not
            // fix them); everything else must be bit-identical.
            if !(x.is_nan() && y.is_nan()) {
                assert_eq!(
                    (*x as f32).to_bits(),
                    y.to_bits(),
                    "f32 and f64 paths disagree"
                );
            }
        }
        out.extend(f64_row.iter().map(|v| v.to_bits()));
    }
    Some(out)
}

fn whole_f64(a: &NpyArray) -> Option<Vec<u64>> {
    if a.header().num_elements.checked_mul(8)? > MAX_BYTES {
        return None;
    }
    let v = a.to_vec_f64().expect("an opened array reads whole");
    assert_eq!(v.len(), a.header().num_elements);
    Some(v.into_iter().map(f64::to_bits).collect())
}

fn views(a: &NpyArray) {
    macro_rules! view_as {
        ($t:ty) => {{
            if let Ok(v) = a.view::<$t>() {
                assert_eq!(v.len(), a.header().num_elements);
                assert_eq!(v.shape(), a.shape());
            }
            if a.len() > 0 && !a.shape().is_empty() {
                let _ = a.sample_view::<$t>(a.len() - 1);
            }
        }};
    }
    match a.dtype().elem {
        ElemType::Bool | ElemType::U8 => view_as!(u8),
        ElemType::I8 => view_as!(i8),
        ElemType::U16 => view_as!(u16),
        ElemType::I16 => view_as!(i16),
        ElemType::U32 => view_as!(u32),
        ElemType::I32 => view_as!(i32),
        ElemType::U64 => view_as!(u64),
        ElemType::I64 => view_as!(i64),
        ElemType::F16 => view_as!(half::f16),
        ElemType::F32 => view_as!(f32),
        ElemType::F64 => view_as!(f64),
    }
    // A wrong type is an error, never a reinterpretation.
    if a.dtype().elem != ElemType::F64 {
        assert!(a.view::<f64>().is_err());
    }
}

/// The generator of the fuzzed epochs: geometry, flips and shifts on, so odd
/// image shapes reach the resampler.
fn generator() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 30.0,
        width_shift_range: ShiftRange::Float(0.2),
        shear_range: 5.0,
        horizontal_flip: true,
        vertical_flip: true,
        channel_shift_range: 3.0,
        ..Default::default()
    })
    .expect("valid options")
}

/// One epoch of a rank-4 array as output bytes, or `None` when the array is
/// not an image batch or too large for one fuzz input. `variant` 0 assembles
/// on the caller's thread; 1 on two threads with prefetch (same bytes due).
pub fn epoch(a: &NpyArray, variant: u8) -> Option<Vec<u8>> {
    if a.shape().len() != 4
        || a.row_len().checked_mul(8 * BATCH)? > MAX_BYTES
        || row_count(a) != a.len()
    {
        return None;
    }
    if a.shape()[1..].contains(&0) {
        // Images without pixels are refused when the iterator is built.
        let e = NumpyArrayIterator::builder(a.clone()).build().unwrap_err();
        assert!(
            matches!(e.kind(), npyflow::ErrorKind::InvalidArgument { .. }),
            "{e}"
        );
        return None;
    }
    let order = match a.len() % 3 {
        0 => Order::Sequential,
        1 => Order::Shuffle,
        _ => Order::Blocks {
            block_rows: 2,
            window: 2,
        },
    };
    let (threads, prefetch) = if variant == 0 { (1, 0) } else { (2, 2) };
    let mut it = NumpyArrayIterator::builder(a.clone())
        .generator(generator())
        .aux(a.clone())
        .batch_size(BATCH)
        .order(order)
        .seed(7)
        .threads(threads)
        .prefetch(prefetch)
        .build()
        .expect("a rank-4 array of a small row size builds an iterator");
    let mut out = Vec::new();
    let mut seen = 0;
    it.for_each_in_epoch(|b| {
        seen += b.len();
        // The generator's default dtype: float32.
        let images = b.images::<f32>()?;
        out.extend(images.iter().flat_map(|v| v.to_ne_bytes()));
        out.extend_from_slice(b.aux()[0].bytes());
        Ok(())
    })
    .expect("an opened array iterates");
    assert_eq!(seen, a.len(), "an epoch yields every sample");
    Some(out)
}
