//! Integrity of archives: `NpzArchive::verify` checks every member's CRC-32
//! (stored and compressed), names the damaged member with the CRCs
//! expected and found, and the extractor refuses the same damage alike;
//! `NpyArray::verify` reads a `.npy` file's whole data region.

use std::fs;
use std::path::{Path, PathBuf};

use npyflow::convert::extract_npz;
use npyflow::npy::{write_npy, ElemType};
use npyflow::{ErrorKind, NpyArray, NpzArchive};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

/// Offset of the `n`th central-directory record (`PK\1\2`) in `bytes`.
fn central_record(bytes: &[u8], n: usize) -> usize {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .nth(n)
        .map(|(i, _)| i)
        .expect("central directory record")
}

/// `fixture` copied into `dir` with the CRC-32 of member `n` in the central
/// directory (the one readers trust) replaced by `crc`.
fn with_recorded_crc(dir: &Path, fixture_name: &str, n: usize, crc: u32) -> PathBuf {
    let mut bytes = fs::read(fixture(fixture_name)).unwrap();
    let at = central_record(&bytes, n) + 16;
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    let out = dir.join(format!("crc_{fixture_name}"));
    fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn intact_archives_verify_with_progress_to_the_end() {
    for (name, sizes) in [("stored.npz", 224 + 144), ("compressed.npz", 224)] {
        let archive = NpzArchive::open(fixture(name)).unwrap();
        let recorded: Vec<u32> = archive.members().iter().map(|m| m.crc32).collect();
        assert_eq!(recorded[0], 0x2fa2_b316, "{name}: x.npy's recorded CRC");
        let mut calls = Vec::new();
        let checked = archive
            .verify(|done, total| calls.push((done, total)))
            .unwrap();
        assert_eq!(checked, sizes, "{name}");
        assert_eq!(calls.last(), Some(&(sizes, sizes)), "{name}");
        assert!(
            calls.windows(2).all(|w| w[0].0 <= w[1].0),
            "{name}: {calls:?}"
        );
        assert_eq!(archive.verify_member("x", |_, _| {}).unwrap(), 224);
    }
}

#[test]
fn a_wrong_crc_names_the_archive_the_member_and_both_crcs() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["stored.npz", "compressed.npz"] {
        let bad = with_recorded_crc(dir.path(), name, 0, 0x1234_5678);
        let archive = NpzArchive::open(&bad).unwrap();
        let err = archive.verify(|_, _| {}).unwrap_err();
        match err.kind() {
            ErrorKind::ChecksumMismatch {
                path,
                member,
                expected,
                found,
            } => {
                assert_eq!(path, &bad);
                assert_eq!(member, "x.npy");
                assert_eq!(*expected, 0x1234_5678);
                assert_eq!(*found, 0x2fa2_b316);
            }
            other => panic!("{name}: expected ChecksumMismatch, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}: member `x.npy`", bad.display()))
                && text.contains("expected 12345678, found 2fa2b316"),
            "{text}"
        );
        let err = archive.verify_member("x.npy", |_, _| {}).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::ChecksumMismatch { .. }),
            "{err}"
        );
        // The extractor checks the same CRC as it copies, and writes nothing.
        let out = dir.path().join(format!("out_{name}"));
        let err = extract_npz(&bad, &out, None).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::ChecksumMismatch {
                    expected: 0x1234_5678,
                    found: 0x2fa2_b316,
                    ..
                }
            ),
            "{name}: {err}"
        );
        assert_eq!(fs::read_dir(&out).map(|d| d.count()).unwrap_or(0), 0);
    }
}

#[test]
fn a_flipped_data_byte_in_a_stored_member_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fs::read(fixture("stored.npz")).unwrap();
    let y = NpzArchive::open(fixture("stored.npz")).unwrap().members()[1].clone();
    assert_eq!(y.name, "y.npy");
    // The last data byte of y: mapping y never reads it, verify does.
    let at = (y.data_start + y.size - 1) as usize;
    bytes[at] ^= 0x01;
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[y.data_start as usize..at + 1]);
    let bad = dir.path().join("flipped.npz");
    fs::write(&bad, &bytes).unwrap();
    let archive = NpzArchive::open(&bad).unwrap();
    assert!(archive.array("y").is_ok(), "mapping does not check CRCs");
    let err = archive.verify(|_, _| {}).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ChecksumMismatch { member, expected, found, .. }
            if member == "y.npy" && *expected == y.crc32 && *found == crc.sum()),
        "{err}"
    );
    // x is intact and verifies alone.
    assert_eq!(archive.verify_member("x", |_, _| {}).unwrap(), 224);
}

#[test]
fn a_corrupt_compressed_stream_is_a_named_npz_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fs::read(fixture("compressed.npz")).unwrap();
    let x = NpzArchive::open(fixture("compressed.npz"))
        .unwrap()
        .members()[0]
        .clone();
    for b in &mut bytes[x.data_start as usize..(x.data_start + x.compressed_size) as usize] {
        *b = 0xff;
    }
    let bad = dir.path().join("inflate.npz");
    fs::write(&bad, &bytes).unwrap();
    let err = NpzArchive::open(&bad)
        .unwrap()
        .verify(|_, _| {})
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Npz { reason, .. } if reason.starts_with("member `x.npy`: cannot inflate")),
        "{err}"
    );
    assert!(extract_npz(&bad, dir.path().join("out"), None).is_err());
}

#[test]
fn an_archive_cut_inside_a_member_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let archive = NpzArchive::open(fixture("stored.npz")).unwrap();
    let cut = dir.path().join("cut.npz");
    fs::copy(fixture("stored.npz"), &cut).unwrap();
    let opened = NpzArchive::open(&cut).unwrap();
    // Shrink the file under the opened archive: the directory's promise fails.
    let y = &archive.members()[1];
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(y.data_start + 10)
        .unwrap();
    let err = opened.verify(|_, _| {}).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Truncated { expected, .. } if *expected == y.data_start + y.size)
            || matches!(err.kind(), ErrorKind::Npz { reason, .. } if reason.contains("y.npy")),
        "{err}"
    );
}

#[test]
fn a_npy_verifies_by_reading_its_data_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    write_npy(&path, ElemType::U8, &[3, 1 << 20], &data).unwrap();
    let a = NpyArray::open(&path).unwrap();
    let mut calls = Vec::new();
    assert_eq!(a.verify(|d, t| calls.push((d, t))).unwrap(), 3 << 20);
    let t = 3u64 << 20;
    assert_eq!(calls, [(1 << 20, t), (2 << 20, t), (t, t)]);
    // Cut under the open array: the read through finds it.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let err = a.verify(|_, _| {}).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::FileChanged { found, .. } if *found == 1 << 20),
        "{err}"
    );
}
