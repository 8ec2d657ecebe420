//! The conversion library: image folders → x/y/classes, `.npz` extraction,
//! dtype / byte-order / Fortran rewrites checked against numpy's own output
//! (fixtures from `tests/fixtures/gen_convert.py`).

use std::fs;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use npyflow::convert::{
    convert_array, convert_images, extract_npz, list_image_folder, ColorMode, ConvertArrayOptions,
    ImageConvertOptions, ResizeFilter,
};
use npyflow::npy::{ByteOrder, Dtype, ElemType, OpenOptions};
use npyflow::{ErrorKind, NpyArray};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/convert")
        .join(name)
}

/// A 2×3 image whose pixel (x, y) is `(base + x, base + 10 y, base + 100)`.
fn ramp(base: u8) -> RgbImage {
    RgbImage::from_fn(3, 2, |x, y| {
        Rgb([base + x as u8, base + 10 * y as u8, base + 100])
    })
}

/// Three classes (`cat`, `dog`, `zebra`) of tiny PNG / BMP / JPEG files, a
/// nested folder, an upper-case extension, and files that are not images.
fn image_folder(root: &Path) {
    for c in ["cat", "dog", "zebra/nested"] {
        fs::create_dir_all(root.join(c)).unwrap();
    }
    ramp(1).save(root.join("cat/b.png")).unwrap();
    ramp(2).save(root.join("cat/a.bmp")).unwrap();
    ramp(3).save(root.join("cat/C.PNG")).unwrap();
    fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
    ramp(4).save(root.join("dog/x.jpg")).unwrap();
    ramp(5).save(root.join("zebra/z.png")).unwrap();
    ramp(6).save(root.join("zebra/nested/a.png")).unwrap();
    fs::write(
        root.join("stray.png"),
        "files at the top level are not a class",
    )
    .unwrap();
}

fn names(files: &[(PathBuf, u32)], root: &Path) -> Vec<(String, u32)> {
    files
        .iter()
        .map(|(p, c)| (p.strip_prefix(root).unwrap().display().to_string(), *c))
        .collect()
}

fn labels(path: &Path) -> Vec<f64> {
    let y = NpyArray::open(path).unwrap();
    assert_eq!(y.dtype(), Dtype::native(ElemType::I32));
    y.to_vec_f64().unwrap()
}

#[test]
fn listing_follows_keras_order() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path());
    let folder = list_image_folder(dir.path()).unwrap();
    assert_eq!(folder.classes, ["cat", "dog", "zebra"]);
    // Sorted by file name within a folder (upper case first, as Python
    // sorts), folders before their sub-folders.
    assert_eq!(
        names(&folder.files, dir.path()),
        [
            ("cat/C.PNG".into(), 0),
            ("cat/a.bmp".into(), 0),
            ("cat/b.png".into(), 0),
            ("dog/x.jpg".into(), 1),
            ("zebra/z.png".into(), 2),
            ("zebra/nested/a.png".into(), 2),
        ]
    );
}

#[test]
fn image_folder_converts_with_exact_pixels_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path());
    let out = dir.path().join("out");
    let done = std::sync::atomic::AtomicU64::new(0);
    let progress = |d: u64, t: u64| {
        assert!(d <= t);
        done.store(d, std::sync::atomic::Ordering::Relaxed);
    };
    let opts = ImageConvertOptions {
        size: (2, 3),
        progress: Some(&progress),
        ..Default::default()
    };
    let report = convert_images(dir.path(), &out, &opts).unwrap();
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), 6);
    assert_eq!(report.samples, 6);
    assert_eq!(report.per_class, [3, 1, 2]);
    assert!(report.skipped.is_empty());

    let x = NpyArray::open(&report.x).unwrap();
    assert_eq!(x.shape(), &[6, 2, 3, 3]);
    assert_eq!(x.dtype(), Dtype::native(ElemType::U8));
    // Lossless files at the target size are copied pixel for pixel.
    let order = [3u8, 2, 1, 4, 5, 6];
    for (row, base) in order.iter().enumerate() {
        if *base == 4 {
            continue; // JPEG: lossy
        }
        let want: Vec<u8> = ramp(*base).into_raw();
        assert_eq!(x.row_bytes_mapped(row).unwrap(), &want[..], "row {row}");
    }
    assert_eq!(labels(&report.y), [0.0, 0.0, 0.0, 1.0, 2.0, 2.0]);
    assert_eq!(
        fs::read_to_string(out.join("classes.txt")).unwrap(),
        "cat\ndog\nzebra\n"
    );
    // Nothing else is left in the output folder (no temporary files).
    let mut left: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["classes.txt", "x.npy", "y.npy"]);
}

#[test]
fn resize_and_colour_modes() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("only")).unwrap();
    RgbImage::from_pixel(8, 6, Rgb([10, 200, 30]))
        .save(dir.path().join("only/a.png"))
        .unwrap();
    for (color, filter, channels) in [
        (ColorMode::Grayscale, ResizeFilter::Lanczos3, 1),
        (ColorMode::Rgba, ResizeFilter::Triangle, 4),
    ] {
        let out = dir.path().join(format!("out{channels}"));
        let opts = ImageConvertOptions {
            size: (3, 4),
            color,
            filter,
            ..Default::default()
        };
        let report = convert_images(dir.path(), &out, &opts).unwrap();
        let x = NpyArray::open(&report.x).unwrap();
        assert_eq!(x.shape(), &[1, 3, 4, channels]);
        let px = &x.row_bytes_mapped(0).unwrap()[..channels];
        if channels == 1 {
            // PIL's convert('L'): 0.299·10 + 0.587·200 + 0.114·30 = 123.81.
            assert_eq!(px, [124]);
        } else {
            assert_eq!(px, [10, 200, 30, 255]);
        }
    }
}

#[test]
fn unreadable_image_is_fatal_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path());
    fs::write(
        dir.path().join("dog/broken.png"),
        b"\x89PNG\r\n\x1a\n truncated",
    )
    .unwrap();
    let out = dir.path().join("out");
    let opts = ImageConvertOptions {
        size: (2, 3),
        ..Default::default()
    };
    let err = convert_images(dir.path(), &out, &opts).unwrap_err();
    match err.kind() {
        ErrorKind::Image { path, .. } => assert!(path.ends_with("dog/broken.png"), "{path:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("broken.png"), "{err}");
    // A failed conversion leaves nothing behind.
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);

    let opts = ImageConvertOptions {
        skip_bad: true,
        ..opts
    };
    let report = convert_images(dir.path(), &out, &opts).unwrap();
    assert_eq!(report.samples, 6);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].path.ends_with("dog/broken.png"));
    // The header was rewritten for the 6 images actually written (7 were listed).
    let x = NpyArray::open(&report.x).unwrap();
    assert_eq!(x.shape(), &[6, 2, 3, 3]);
    assert_eq!(labels(&report.y).len(), 6);
}

#[test]
fn folder_errors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ImageConvertOptions::default();
    let err = convert_images(dir.path(), dir.path().join("o"), &opts).unwrap_err();
    assert!(err.to_string().contains("no class sub-folders"), "{err}");
    fs::create_dir(dir.path().join("empty_class")).unwrap();
    let err = convert_images(dir.path(), dir.path().join("o"), &opts).unwrap_err();
    assert!(err.to_string().contains("no images found"), "{err}");
    let err = convert_images(dir.path().join("missing"), dir.path().join("o"), &opts).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err}");
}

#[test]
fn npz_members_extract_stored_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    for archive in ["stored.npz", "compressed.npz"] {
        let out = dir.path().join(archive);
        let members = extract_npz(fixture(archive), &out, None).unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["images", "labels", "weights", "fortran"]);
        assert_eq!(members[0].compressed, archive == "compressed.npz");

        let images = NpyArray::open(out.join("images.npy")).unwrap();
        assert_eq!(images.shape(), &[2, 3, 4, 3]);
        assert_eq!(images.data_bytes().unwrap(), (0..72).collect::<Vec<u8>>());
        // Extraction keeps the stored byte order...
        let labels = NpyArray::open(out.join("labels.npy")).unwrap();
        assert_eq!(
            labels.dtype(),
            Dtype {
                elem: ElemType::I16,
                order: ByteOrder::Big
            }
        );
        assert_eq!(labels.to_vec_f64().unwrap(), [3.0, -1.0, 7.0]);
        let weights = NpyArray::open(out.join("weights.npy")).unwrap();
        assert_eq!(weights.to_vec_f64().unwrap(), [-1.0, -0.5, 0.0, 0.5, 1.0]);
        // ...and memory order.
        let err = NpyArray::open(out.join("fortran.npy")).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::FortranOrder { .. }));
        let f = NpyArray::open_with(
            out.join("fortran.npy"),
            OpenOptions {
                allow_fortran: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(f.shape(), &[3, 4]);
    }
    // Both archives hold the same arrays: the extracted files are identical.
    for m in ["images", "labels", "weights", "fortran"] {
        let a = fs::read(dir.path().join("stored.npz").join(format!("{m}.npy"))).unwrap();
        let b = fs::read(dir.path().join("compressed.npz").join(format!("{m}.npy"))).unwrap();
        assert_eq!(a, b, "{m}");
    }
}

#[test]
fn npz_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = extract_npz(fixture("be_i16.npy"), dir.path(), None).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Npz { .. }), "{err}");
    // A corrupted compressed member fails (inflate or CRC) and writes nothing.
    let mut bytes = fs::read(fixture("compressed.npz")).unwrap();
    bytes[120] ^= 0xff;
    let bad = dir.path().join("bad.npz");
    fs::write(&bad, bytes).unwrap();
    let out = dir.path().join("out");
    assert!(extract_npz(&bad, &out, None).is_err());
    assert_eq!(fs::read_dir(&out).map(|d| d.count()).unwrap_or(0), 0);
}

/// Converts `input` and checks dtype, shape and every byte against numpy's `expected`.
fn check_against_numpy(input: &str, dtype: Option<ElemType>, scale: Option<f64>, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    let opts = ConvertArrayOptions {
        dtype,
        scale,
        ..Default::default()
    };
    convert_array(fixture(input), &out, &opts).unwrap();
    let got = NpyArray::open(&out).unwrap();
    let want = NpyArray::open(fixture(expected)).unwrap();
    assert_eq!(got.dtype(), want.dtype(), "{input} → {expected}");
    assert_eq!(got.shape(), want.shape(), "{input} → {expected}");
    assert!(!got.header().fortran_order);
    let (g, w) = (got.data_bytes().unwrap(), want.data_bytes().unwrap());
    let size = got.dtype().size();
    for (k, (a, b)) in g.chunks(size).zip(w.chunks(size)).enumerate() {
        assert_eq!(a, b, "{input} → {expected}: element {k}");
    }
}

#[test]
fn array_rewrites_match_numpy() {
    if cfg!(target_endian = "big") {
        return; // the expected files are little-endian
    }
    check_against_numpy("be_i16.npy", None, None, "expect_be_i16_native.npy");
    check_against_numpy(
        "be_i16.npy",
        Some(ElemType::F32),
        Some(0.5),
        "expect_be_i16_f32_half.npy",
    );
    check_against_numpy("f64.npy", Some(ElemType::U8), None, "expect_f64_u8.npy");
    check_against_numpy(
        "f64_neg.npy",
        Some(ElemType::I16),
        None,
        "expect_f64_neg_i16.npy",
    );
    check_against_numpy("i32.npy", Some(ElemType::U8), None, "expect_i32_u8.npy");
    check_against_numpy("i32.npy", Some(ElemType::I8), None, "expect_i32_i8.npy");
    check_against_numpy("fortran_u8.npy", None, None, "expect_fortran_u8.npy");
    check_against_numpy(
        "fortran_f32_be.npy",
        None,
        None,
        "expect_fortran_f32_be.npy",
    );
    check_against_numpy(
        "fortran_f32_be.npy",
        Some(ElemType::F16),
        None,
        "expect_fortran_f32_be_f16.npy",
    );
}

#[test]
fn array_rewrite_in_place_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    fs::copy(fixture("fortran_u8.npy"), &path).unwrap();
    convert_array(&path, &path, &ConvertArrayOptions::default()).unwrap();
    let a = NpyArray::open(&path).unwrap();
    let want = NpyArray::open(fixture("expect_fortran_u8.npy")).unwrap();
    assert_eq!(a.data_bytes(), want.data_bytes());

    let err = convert_array(
        fixture("stored.npz"),
        dir.path().join("b.npy"),
        &ConvertArrayOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::BadMagic { .. }), "{err}");
    let opts = ConvertArrayOptions {
        scale: Some(f64::NAN),
        ..Default::default()
    };
    assert!(convert_array(&path, dir.path().join("c.npy"), &opts).is_err());
    let err = convert_array(
        &path,
        dir.path().join("no/such/dir/d.npy"),
        &ConvertArrayOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err}");
    assert!(!dir.path().join("b.npy").exists() && !dir.path().join("c.npy").exists());
}
