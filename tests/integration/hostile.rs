//! Hostile files: valid `.npy` / `.npz` files mutated (bit flips, byte
//! writes, truncation at any length, header edits of shape, descr, fortran
//! flag, header length and version), then opened with both sources and,
//! when they open, read row by row and iterated for one epoch. The outcome
//! must be `Ok` or an error of a file-validation kind — never a panic (a
//! panic fails the property and proptest shrinks the input), never a
//! signal, and the map and `pread` must agree.
//!
//! Also replays every committed fuzz regression input (`fuzz/regressions/`).
//! The named hostile fixtures (bad magic, truncated...) are in `npy.rs`.

use std::mem::discriminant;
use std::path::{Path, PathBuf};

use npyflow::npy::{
    header_bytes, parse_header, ByteOrder, Dtype, ElemType, NpyArray, NpzArchive, NpzWriter,
};
use npyflow::npy::{OpenOptions, SourceKind};
use npyflow::{
    Error, ErrorKind, GeneratorOptions, ImageDataGenerator, NumpyArrayIterator, Order, ShiftRange,
};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::oracle::{exercise_npy, exercise_npz, is_file_error, with_source};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

// ---------------------------------------------------------------- mutations

/// One edit of a file's bytes.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    /// A bit flip after the header (the file stays valid, its values change).
    FlipData(Index, u8),
    Byte(Index, u8),
    Truncate(Index),
    /// Replace the text of the shape tuple.
    Shape(String),
    /// Replace the descr string's contents.
    Descr(String),
    /// Toggle `fortran_order`.
    Fortran,
    /// Overwrite the header-length field (low 16 bits for version 1).
    HeaderLen(u32),
    /// Move the header-length field by a few bytes (shifts the data offset).
    HeaderLenDelta(i32),
    /// Overwrite the major version byte.
    Version(u8),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        6 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipData(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Byte(i, v)),
        2 => any::<Index>().prop_map(Edit::Truncate),
        3 => prop_oneof![
            "\\(([0-9]{1,3}, ?){0,5}[0-9]{0,3}\\)",
            "\\(([0-9]{1,20}L?, ){1,4}[0-9]{1,20}\\)",
            "\\((0|1|18446744073709551615|9223372036854775807|4294967296), ?[0-9]{1,12}, ?[0-9]{1,12}, ?[0-9]{1,4}\\)",
            "[ (),0-9L-]{0,12}",
        ]
        .prop_map(Edit::Shape),
        2 => prop_oneof![
            Just("<c8".to_string()),
            Just("|O".to_string()),
            Just("<U3".to_string()),
            Just("".to_string()),
            "[<>|=]?[biufcOSUV?][0-9]{0,2}",
        ]
        .prop_map(Edit::Descr),
        1 => Just(Edit::Fortran),
        1 => any::<u32>().prop_map(Edit::HeaderLen),
        1 => (-70i32..70).prop_map(Edit::HeaderLenDelta),
        1 => any::<u8>().prop_map(Edit::Version),
    ]
}

/// The header dict of `bytes`: (its offset, its length in bytes, its text).
fn dict_of(bytes: &[u8]) -> Option<(usize, usize, String)> {
    let (start, len) = match *bytes.get(6)? {
        1 => (
            10usize,
            u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize,
        ),
        _ => (
            12,
            u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize,
        ),
    };
    let end = start.saturating_add(len).min(bytes.len());
    (start < end).then(|| {
        (
            start,
            end - start,
            String::from_utf8_lossy(&bytes[start..end]).into_owned(),
        )
    })
}

/// Replaces the dict text, keeping the header length when the new text fits
/// in it (padded with spaces) and growing it otherwise.
fn replace_dict(bytes: &mut Vec<u8>, start: usize, old_len: usize, new: &str) {
    let mut text = new.trim_end().to_string();
    if text.len() < old_len {
        text.push_str(&" ".repeat(old_len - 1 - text.len()));
        text.push('\n');
    }
    let tail = bytes.split_off(start + old_len);
    bytes.truncate(start);
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&tail);
    let len = text.len();
    if start == 10 {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        bytes[8..10].copy_from_slice(&len.to_le_bytes());
    } else if bytes.len() >= 12 {
        bytes[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    }
}

/// Replaces the text between `open` and the next `close` after `key`.
fn edit_value(bytes: &mut Vec<u8>, key: &str, open: char, close: char, new: &str) {
    let Some((start, old_len, dict)) = dict_of(bytes) else {
        return;
    };
    let Some(k) = dict.find(key) else { return };
    let Some(a) = dict[k + key.len()..]
        .find(open)
        .map(|i| i + k + key.len() + 1)
    else {
        return;
    };
    let Some(b) = dict[a..].find(close).map(|i| i + a) else {
        return;
    };
    let edited = format!("{}{new}{}", &dict[..a], &dict[b..]);
    replace_dict(bytes, start, old_len, &edited);
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Flip(i, bit) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Edit::FlipData(i, bit) => {
            let Some((start, len, _)) = dict_of(bytes) else {
                return;
            };
            let data = start + len;
            if data < bytes.len() {
                let i = data + i.index(bytes.len() - data);
                bytes[i] ^= 1 << bit;
            }
        }
        Edit::Byte(i, v) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *v;
        }
        Edit::Truncate(i) => {
            let len = i.index(bytes.len() + 1);
            bytes.truncate(len);
        }
        Edit::Shape(s) => {
            let Some((start, old_len, dict)) = dict_of(bytes) else {
                return;
            };
            let Some(k) = dict.find("'shape':") else {
                return;
            };
            let Some(close) = dict[k..].find(')').map(|i| i + k + 1) else {
                return;
            };
            let edited = format!("{}'shape': {s}{}", &dict[..k], &dict[close..]);
            replace_dict(bytes, start, old_len, &edited);
        }
        Edit::Descr(d) => edit_value(bytes, "'descr':", '\'', '\'', d),
        Edit::Fortran => {
            let Some((start, old_len, dict)) = dict_of(bytes) else {
                return;
            };
            let edited = if dict.contains("False") {
                dict.replace("False", "True")
            } else {
                dict.replace("True", "False")
            };
            replace_dict(bytes, start, old_len, &edited);
        }
        Edit::HeaderLen(v) if bytes.len() >= 12 => {
            if bytes[6] == 1 {
                bytes[8..10].copy_from_slice(&(*v as u16).to_le_bytes());
            } else {
                bytes[8..12].copy_from_slice(&v.to_le_bytes());
            }
        }
        Edit::HeaderLenDelta(d) => {
            let Some((_, len, _)) = dict_of(bytes) else {
                return;
            };
            let Ok(len) = u32::try_from(len as i64 + *d as i64) else {
                return;
            };
            apply(bytes, &Edit::HeaderLen(len));
        }
        Edit::Version(v) if bytes.len() > 6 => bytes[6] = *v,
        _ => {}
    }
}

/// Edits applied to the `.npy` members of an archive's bytes: locate each
/// embedded `\x93NUMPY` and apply header edits there, byte edits anywhere.
fn apply_in_archive(bytes: &mut Vec<u8>, edit: &Edit) {
    let header_edit = matches!(
        edit,
        Edit::Shape(_)
            | Edit::Descr(_)
            | Edit::Fortran
            | Edit::HeaderLen(_)
            | Edit::HeaderLenDelta(_)
            | Edit::Version(_)
    );
    if !header_edit {
        return apply(bytes, edit);
    }
    let Some(at) = bytes.windows(6).position(|w| w == b"\x93NUMPY") else {
        return;
    };
    // Edit the member in place when the edit keeps its length (a resized
    // member is a byte-level corruption of the archive, covered by flips).
    let mut member = bytes[at..].to_vec();
    let before = member.len();
    apply(&mut member, edit);
    if member.len() == before {
        bytes[at..].copy_from_slice(&member);
    }
}

// ---------------------------------------------------------------- base files

/// Valid `.npy` files: rank-4 image arrays of several dtypes and byte
/// orders (what the iterator takes), plus real numpy output.
fn base_npy(which: usize) -> Vec<u8> {
    let crafted = |dtype: Dtype, shape: &[usize]| {
        let n: usize = shape.iter().product::<usize>() * dtype.size();
        let mut v = header_bytes(dtype, shape);
        v.extend((0..n).map(|k| (k * 37 % 251) as u8));
        v
    };
    let native = |elem| Dtype::native(elem);
    let big = |elem| Dtype {
        elem,
        order: ByteOrder::Big,
    };
    match which {
        0 => crafted(native(ElemType::U8), &[5, 4, 3, 1]),
        1 => crafted(native(ElemType::F32), &[4, 3, 2, 3]),
        2 => crafted(big(ElemType::F32), &[3, 2, 5, 3]),
        3 => crafted(big(ElemType::U16), &[7, 2, 2, 1]),
        4 => crafted(native(ElemType::F16), &[2, 3, 3, 4]),
        5 => crafted(native(ElemType::F64), &[6, 1, 1, 2]),
        6 => crafted(native(ElemType::Bool), &[0, 4, 4, 3]),
        _ => {
            let names = [
                "float32_be.npy",
                "int64_le.npy",
                "float32_v3.npy",
                "bool_le.npy",
                "scalar.npy",
                "uint16_be.npy",
            ];
            std::fs::read(fixture(names[(which - 7) % names.len()])).unwrap()
        }
    }
}

const NPY_BASES: usize = 13;

/// A valid stored `.npz` as `np.savez` would write it (images, labels, a scalar).
fn base_npz(dir: &Path) -> Vec<u8> {
    let path = dir.join("base.npz");
    let mut z = NpzWriter::create(&path).unwrap();
    let x: Vec<u8> = (0..4 * 3 * 2).map(|k| k as u8).collect();
    z.add_raw("x", ElemType::U8, &[4, 3, 2, 1], &x).unwrap();
    z.add_f64("y", &[4], &[0.0, 1.0, 2.0, 1.0]).unwrap();
    z.add_f64("s", &[], &[2.5]).unwrap();
    z.finish().unwrap();
    std::fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_npy_files_open_cleanly_or_fail_with_a_file_error(
        which in 0..NPY_BASES,
        edits in prop::collection::vec(edit_strategy(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = base_npy(which);
        for e in &edits {
            apply(&mut bytes, e);
        }
        let path = dir.path().join("m.npy");
        std::fs::write(&path, &bytes).unwrap();
        exercise_npy(&path);
        // The pure parser must agree with open on whether the header parses.
        let _ = parse_header(&bytes, &path);
    }

    #[test]
    fn mutated_npz_archives_open_cleanly_or_fail_with_a_file_error(
        edits in prop::collection::vec(edit_strategy(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = base_npz(dir.path());
        for e in &edits {
            apply_in_archive(&mut bytes, e);
        }
        let path = dir.path().join("m.npz");
        std::fs::write(&path, &bytes).unwrap();
        exercise_npz(&path);
    }
}

#[test]
fn unmutated_bases_open_and_iterate() {
    // The properties above only mean something if the bases are valid.
    let dir = tempfile::tempdir().unwrap();
    for which in 0..NPY_BASES {
        let path = dir.path().join(format!("{which}.npy"));
        std::fs::write(&path, base_npy(which)).unwrap();
        let outcome = exercise_npy(&path);
        assert!(
            outcome == "iterated" || (which >= 7 && outcome == "opened"),
            "base {which}: {outcome}"
        );
    }
    let path = dir.path().join("base.npz");
    std::fs::write(&path, base_npz(dir.path())).unwrap();
    assert_eq!(exercise_npz(&path), 3);
}

/// The property is only as good as the states it reaches: a fixed-seed run
/// of the same mutations must produce files that open and iterate as well as
/// every kind of refusal.
#[test]
fn mutations_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.npy");
    let mut runner = TestRunner::deterministic();
    let strategy = (0..NPY_BASES, prop::collection::vec(edit_strategy(), 1..4));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let cases = 600;
    for _ in 0..cases {
        let (which, edits) = strategy.new_tree(&mut runner).unwrap().current();
        let mut bytes = base_npy(which);
        edits.iter().for_each(|e| apply(&mut bytes, e));
        std::fs::write(&path, &bytes).unwrap();
        *counts.entry(exercise_npy(&path)).or_default() += 1;
    }
    println!("{cases} mutated .npy files: {counts:?}");
    for kind in [
        "iterated",
        "opened",
        "BadMagic",
        "BadHeader",
        "UnsupportedDtype",
        "FortranOrder",
        "SizeOverflow",
        "Truncated",
        "Misaligned",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no case reached {kind}: {counts:?}"
        );
    }
    assert!(
        counts["iterated"] * 12 >= cases,
        "too few mutants iterate: {counts:?}"
    );
}

/// The same for archives: mutants that still open members, and refusals.
#[test]
fn npz_mutations_reach_members_and_refusals() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let dir = tempfile::tempdir().unwrap();
    let base = base_npz(dir.path());
    let path = dir.path().join("m.npz");
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(edit_strategy(), 1..3);
    let (mut members, mut refused, cases) = (0, 0, 300);
    for _ in 0..cases {
        let mut bytes = base.clone();
        strategy
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .iter()
            .for_each(|e| apply_in_archive(&mut bytes, e));
        std::fs::write(&path, &bytes).unwrap();
        let opened = exercise_npz(&path);
        members += opened;
        refused += usize::from(NpzArchive::open(&path).is_err());
    }
    println!("{cases} mutated .npz archives: {refused} refused, {members} members opened and read");
    assert!(
        refused > 0 && members > cases,
        "refused {refused}, members {members}"
    );
}

#[test]
fn edits_do_what_they_say() {
    let base = base_npy(0);
    let mut b = base.clone();
    apply(&mut b, &Edit::Shape("(5, 4, 99999999999, 1)".into()));
    let e = parse_header(&b, Path::new("e.npy")).unwrap();
    assert_eq!(e.shape, vec![5, 4, 99999999999, 1]);
    let mut b = base.clone();
    apply(&mut b, &Edit::Descr("<c8".into()));
    assert!(matches!(
        parse_header(&b, Path::new("e.npy")).unwrap_err().kind(),
        ErrorKind::UnsupportedDtype { .. }
    ));
    let mut b = base.clone();
    apply(&mut b, &Edit::Fortran);
    assert!(parse_header(&b, Path::new("e.npy")).unwrap().fortran_order);
    // An edit longer than the padding grows the header (and shifts the data).
    let mut b = base.clone();
    apply(&mut b, &Edit::Shape(format!("({})", ["1"; 40].join(", "))));
    let h = parse_header(&b, Path::new("e.npy")).unwrap();
    assert_eq!(h.shape.len(), 40);
    assert!(h.data_offset > header_bytes(Dtype::native(ElemType::U8), &[5, 4, 3, 1]).len());
}

// ------------------------------------------------- fuzz regressions, replayed

/// Every committed regression input of the `header` and `open_npy` targets
/// goes through the parser and through `exercise_npy`; those of `open_npz`
/// through `exercise_npz`; those of `config_json` through the generator.
#[test]
fn fuzz_regressions_replay_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let dir = tempfile::tempdir().unwrap();
    let mut replayed = 0;
    for target in ["header", "open_npy", "open_npz", "config_json"] {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries {
            let src = entry.unwrap().path();
            let bytes = std::fs::read(&src).unwrap();
            let path = dir.path().join(src.file_name().unwrap());
            std::fs::write(&path, &bytes).unwrap();
            match target {
                "header" | "open_npy" => {
                    let _ = parse_header(&bytes, &path)
                        .map_err(|e| assert!(is_file_error(&e), "{src:?}: {e}"));
                    let _ = exercise_npy(&path);
                }
                "open_npz" => {
                    exercise_npz(&path);
                }
                _ => {
                    if let Ok(text) = std::str::from_utf8(&bytes) {
                        if let Ok(g) = ImageDataGenerator::from_json(text) {
                            let shape = npyflow::ImageShape::hwc(5, 4, 3);
                            let mut img = vec![1.0f32; shape.len()];
                            let mut rng =
                                npyflow::SampleRng::new(0, npyflow::Stream::Augment, 0, 0);
                            let p = g.get_random_transform(shape, &mut rng);
                            g.apply_transform(
                                &mut img,
                                shape,
                                &p,
                                &mut npyflow::Scratch::default(),
                            )
                            .unwrap();
                        }
                    }
                }
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "no regression inputs found under {root:?}");
}

/// Fuzz finding (header target): a zero dimension made the data empty but
/// left the other dimensions unchecked, so `(0, 3, 1844674407370955166, 16)`
/// parsed and every row-size computation overflowed. numpy refuses it
/// ("array is too big"); so does npyflow, as a size overflow.
#[test]
fn zero_dimension_does_not_hide_an_overflowing_row() {
    let bytes = include_bytes!("../../fuzz/regressions/header/zero_dim_row_overflow.npy");
    let e = parse_header(bytes, Path::new("r.npy")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::SizeOverflow { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.npy");
    std::fs::write(&path, bytes).unwrap();
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let e = NpyArray::open_with(&path, with_source(source)).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::SizeOverflow { .. }), "{e}");
    }
    // Large but addressable rows of an empty array still open (numpy accepts them).
    let ok = header_bytes(Dtype::native(ElemType::U8), &[0, 1 << 20, 1 << 20, 3]);
    let h = parse_header(&ok, Path::new("ok.npy")).unwrap();
    assert_eq!(h.data_len, 0);
}

/// The pread source reads a bounded prefix to parse the header; that bound
/// must cover the largest header the parser accepts, or the two sources
/// disagree on a valid file (found by review, not by the fuzzer, whose
/// inputs are smaller).
#[test]
fn largest_accepted_header_opens_with_both_sources() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big_header.npy");
    let dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 1, 1), }";
    // Version 2, header length exactly 1 MiB (the parser's limit), data after it.
    let header_len = 1usize << 20;
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&(header_len as u32).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.resize(12 + header_len - 1, b' ');
    bytes.push(b'\n');
    bytes.extend_from_slice(&[7, 9]);
    std::fs::write(&path, &bytes).unwrap();
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let a = NpyArray::open_with(&path, with_source(source))
            .unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(a.to_vec_f64().unwrap(), vec![7.0, 9.0]);
    }
    // One byte longer is refused by both, with the same kind.
    let mut longer = bytes.clone();
    longer[8..12].copy_from_slice(&(header_len as u32 + 1).to_le_bytes());
    longer.insert(12 + header_len - 1, b' ');
    std::fs::write(&path, &longer).unwrap();
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let e = NpyArray::open_with(&path, with_source(source)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::BadHeader { .. }),
            "{source:?}: {e}"
        );
    }
}

/// An empty array (0 rows, so no data at all: a 128-byte file) may declare
/// rows of any addressable size. Building an iterator over it must be a
/// clean error or an empty iterator, not an attempt to allocate
/// `batch_size × row` (terabytes here) that aborts the process. Runs in a
/// child process so that an abort fails this test instead of the suite.
#[test]
fn empty_array_with_huge_rows_does_not_abort() {
    if std::env::var("NPYFLOW_HOSTILE_CHILD").is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty_huge_rows.npy");
        std::fs::write(
            &path,
            header_bytes(Dtype::native(ElemType::U8), &[0, 1 << 16, 1 << 16, 4]),
        )
        .unwrap();
        let x = NpyArray::open(&path).unwrap();
        match NumpyArrayIterator::builder(x).batch_size(32).build() {
            Ok(mut it) => assert!(it.next_in_epoch().unwrap().is_none()),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::MemoryLimit { .. } | ErrorKind::InvalidArgument { .. }
                ),
                "{e}"
            ),
        }
        println!("CHILD-OK");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile::empty_array_with_huge_rows_does_not_abort",
            "--nocapture",
        ])
        .env("NPYFLOW_HOSTILE_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("CHILD-OK"),
        "child failed ({}):\n{text}",
        out.status
    );
}
