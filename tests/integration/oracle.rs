//! The one oracle for hostile inputs, shared by the property tests
//! (`hostile.rs`) and the fuzz targets (`fuzz/src/lib.rs` includes this
//! file): open a file through the map and through `pread`, and require that
//! both succeed or fail alike with a file error; read what opens by every
//! path and iterate it; everything must agree, nothing may panic.

use std::mem::discriminant;
use std::path::Path;

use npyflow::npy::{ElemType, NpyArray, NpzArchive, OpenOptions, SourceKind};
use npyflow::{
    Error, ErrorKind, GeneratorOptions, ImageDataGenerator, NumpyArrayIterator, Order, ShiftRange,
};

/// Skip a step that would buffer more than this (shapes may be absurd).
pub const MAX_BYTES: usize = 1 << 20;
/// Rows visited at most when rows hold no bytes.
const MAX_EMPTY_ROWS: usize = 4096;

/// The kinds a file (as opposed to an argument) can be refused with.
pub fn is_file_error(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Io { .. }
            | ErrorKind::BadMagic { .. }
            | ErrorKind::BadHeader { .. }
            | ErrorKind::UnsupportedDtype { .. }
            | ErrorKind::FortranOrder { .. }
            | ErrorKind::SizeOverflow { .. }
            | ErrorKind::Truncated { .. }
            | ErrorKind::Misaligned { .. }
            | ErrorKind::Npz { .. }
            | ErrorKind::CompressedMember { .. }
    )
}

/// Open options for one source.
pub fn with_source(source: SourceKind) -> OpenOptions {
    OpenOptions {
        source,
        ..Default::default()
    }
}

/// Both sources must succeed together or fail with the same kind, a file kind.
pub fn same_outcome<T, U>(what: &str, m: &Result<T, Error>, r: &Result<U, Error>) {
    match (m, r) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => {
            assert!(is_file_error(a), "{what}: unexpected error kind: {a}");
            assert_eq!(
                discriminant(a.kind()),
                discriminant(b.kind()),
                "{what}: mmap says {a}, read says {b}"
            );
            // Every message renders (no panic in Display) and says something.
            assert!(!a.to_string().is_empty() && !b.to_string().is_empty());
        }
        (Ok(_), Err(e)) => panic!("{what}: the map opens, pread fails: {e}"),
        (Err(e), Ok(_)) => panic!("{what}: pread opens, the map fails: {e}"),
    }
}

/// Opens `path` as `.npy` with both sources and exercises what opens.
/// Returns what happened: `iterated`, `opened` (not an image batch, or too
/// large to iterate here) or the error kind's name.
pub fn exercise_npy(path: &Path) -> String {
    let m = NpyArray::open_with(path, with_source(SourceKind::Mmap));
    let r = NpyArray::open_with(path, with_source(SourceKind::Read));
    same_outcome("open", &m, &r);
    // Raw access to Fortran arrays (the converter's path) must hold up too.
    let fortran = OpenOptions {
        source: SourceKind::Mmap,
        allow_fortran: true,
    };
    if let Ok(f) = NpyArray::open_with(path, fortran) {
        rows_f64(&f);
    }
    match (m, r) {
        (Ok(m), Ok(r)) => if exercise_pair(&m, &r) {
            "iterated"
        } else {
            "opened"
        }
        .to_string(),
        (Err(e), _) => kind_name(&e),
        _ => unreachable!("same_outcome checked"),
    }
}

/// `BadHeader` for `BadHeader { .. }`.
pub fn kind_name(e: &Error) -> String {
    format!("{:?}", e.kind())
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Opens `path` as `.npz` with both sources, then every member. Returns the
/// number of members that opened.
pub fn exercise_npz(path: &Path) -> usize {
    let open = |s| NpzArchive::open_with(path, with_source(s));
    let (m, r) = (open(SourceKind::Mmap), open(SourceKind::Read));
    same_outcome("npz open", &m, &r);
    let (Ok(m), Ok(r)) = (m, r) else { return 0 };
    assert_eq!(m.members(), r.members());
    let mut opened = 0;
    for (name, member) in m.names().iter().zip(m.members()) {
        let (a, b) = (m.array(name), r.array(name));
        same_outcome(&format!("member {name:?}"), &a, &b);
        // Members are also found by their full name.
        let _ = m.array(&member.name);
        if let (Ok(a), Ok(b)) = (a, b) {
            exercise_pair(&a, &b);
            opened += 1;
        }
    }
    assert!(m.array("\u{0}no such member").is_err());
    opened
}

/// The same array through the map and through `pread`: every row by every
/// read path, the whole array, views and one epoch must succeed and agree.
/// True when it iterated.
pub fn exercise_pair(m: &NpyArray, r: &NpyArray) -> bool {
    assert_eq!((m.shape(), m.dtype()), (r.shape(), r.dtype()));
    assert_eq!(m.data_offset(), r.data_offset());
    m.check_unchanged().expect("nothing changed the file");
    r.check_unchanged().expect("nothing changed the file");
    let _ = (m.name(), format!("{m:?}"), m.header().num_elements);
    assert_eq!(
        rows_f64(m),
        rows_f64(r),
        "rows differ between the map and pread"
    );
    assert_eq!(
        whole_f64(m),
        whole_f64(r),
        "to_vec_f64 differs between the map and pread"
    );
    views(m);
    assert!(
        r.data_bytes().is_none() && r.view::<u8>().is_err(),
        "pread arrays have no zero-copy view"
    );
    match (epoch(m, false), epoch(r, true)) {
        (Some(a), Some(b)) => {
            assert_eq!(a, b, "an epoch differs between the map and pread");
            true
        }
        _ => false,
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
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
        let read = "an opened array's rows read";
        a.read_sample_into(i, &mut f64_row).expect(read);
        a.read_sample_into(i, &mut f32_row).expect(read);
        a.read_row_raw(i, &mut raw).expect(read);
        a.read_row_native(i, &mut native).expect(read);
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
        out.extend(bits(&f64_row));
    }
    Some(out)
}

/// The whole array as f64 bits; `None` when too large to buffer.
fn whole_f64(a: &NpyArray) -> Option<Vec<u64>> {
    if a.header().num_elements.checked_mul(8)? > MAX_BYTES {
        return None;
    }
    let v = a.to_vec_f64().expect("an opened array reads whole");
    assert_eq!(v.len(), a.header().num_elements);
    Some(bits(&v))
}

/// Zero-copy views in the array's own type work; another type is an error,
/// never a reinterpretation.
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
    if a.dtype().elem != ElemType::F64 {
        assert!(a.view::<f64>().is_err());
    }
}

/// One epoch of a small rank-4 array with augmentation on (geometry, flips,
/// shifts: odd image shapes reach the resampler), in sequential order as
/// bytes, after checking that a shuffled (`alt`: block) epoch visits every
/// sample once. `alt` assembles on two threads with prefetch: the bytes
/// must not change. `None` when the array is not an image batch or too
/// large to iterate here.
pub fn epoch(a: &NpyArray, alt: bool) -> Option<Vec<u8>> {
    const BATCH: usize = 3;
    if a.shape().len() != 4
        || a.row_len().checked_mul(8 * BATCH)? > MAX_BYTES
        || row_count(a) != a.len()
    {
        return None;
    }
    if a.shape()[1..].contains(&0) {
        // Images without pixels are refused when the iterator is built.
        let e = NumpyArrayIterator::builder(a.clone()).build().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidArgument { .. }), "{e}");
        return None;
    }
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 30.0,
        width_shift_range: ShiftRange::Float(0.2),
        shear_range: 5.0,
        horizontal_flip: true,
        vertical_flip: true,
        channel_shift_range: 3.0,
        ..Default::default()
    })
    .expect("valid options");
    let other = if alt {
        Order::Blocks {
            block_rows: 2,
            window: 2,
        }
    } else {
        Order::Shuffle
    };
    let mut out = Vec::new();
    for order in [Order::Sequential, other] {
        let mut it = NumpyArrayIterator::builder(a.clone())
            .generator(generator.clone())
            .aux(a.clone())
            .batch_size(BATCH)
            .order(order)
            .seed(11)
            .threads(if alt { 2 } else { 1 })
            .prefetch(if alt { 2 } else { 0 })
            .build()
            .expect("a small rank-4 array builds an iterator");
        let mut seen = vec![false; a.len()];
        it.for_each_in_epoch(|b| {
            for &j in b.indices() {
                assert!(!std::mem::replace(&mut seen[j], true), "sample {j} twice");
            }
            if order == Order::Sequential {
                // The generator's default dtype: float32.
                let images = b.images::<f32>()?;
                out.extend(images.iter().flat_map(|v| v.to_ne_bytes()));
                out.extend_from_slice(b.aux()[0].bytes());
            }
            Ok(())
        })
        .expect("an opened array iterates");
        assert!(seen.iter().all(|&s| s), "an epoch misses samples");
    }
    Some(out)
}
