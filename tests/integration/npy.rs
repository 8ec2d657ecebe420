//! Opening real numpy output: every dtype, both byte orders, versions,
//! Fortran order, npz members, and hostile files each with its error kind.

use std::path::PathBuf;

use npyflow::npy::{ElemType, NpyArray, NpzArchive, OpenOptions, SourceKind};
use npyflow::ErrorKind;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

/// The values gen_npy.py writes for each dtype, as f64.
fn expected(name: &str) -> Vec<f64> {
    (0..24)
        .map(|b| {
            let b = b as f64;
            match name {
                "bool" => (b as i64 % 2) as f64,
                "uint8" => b,
                "int8" => b - 5.0,
                "uint16" => b * 1000.0,
                "int16" => b * -1000.0,
                "uint32" => b * 100000.0,
                "int32" => b * -100000.0,
                "uint64" => b * 1e12,
                "int64" => b * -1e12,
                _ => b / 4.0,
            }
        })
        .collect()
}

#[test]
fn every_dtype_and_byte_order_reads_the_values_numpy_wrote() {
    let mut checked = 0;
    for elem in ElemType::ALL {
        for order in ["le", "be"] {
            let path = fixture(&format!("{}_{order}.npy", elem.name()));
            if !path.exists() {
                assert!(
                    elem.size() == 1 && order == "be",
                    "missing fixture {path:?}"
                );
                continue;
            }
            for source in [SourceKind::Mmap, SourceKind::Read] {
                let a = NpyArray::open_with(
                    &path,
                    OpenOptions {
                        source,
                        ..Default::default()
                    },
                )
                .unwrap();
                assert_eq!(a.dtype().elem, elem);
                assert_eq!(a.shape(), &[2, 3, 4]);
                assert_eq!(a.len(), 2);
                assert_eq!(a.row_len(), 12);
                let mut row = vec![0f64; 12];
                let want = expected(elem.name());
                for i in 0..2 {
                    a.read_sample_into(i, &mut row).unwrap();
                    assert_eq!(row, want[i * 12..(i + 1) * 12], "{path:?} row {i}");
                }
                let mut row32 = vec![0f32; 12];
                a.read_sample_into(1, &mut row32).unwrap();
                assert_eq!(row32[0], want[12] as f32);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * (12 + 9));
}

#[test]
fn native_arrays_are_viewed_zero_copy_inside_the_map() {
    let a = NpyArray::open(fixture("float32_le.npy")).unwrap();
    let v = a.view::<f32>().unwrap();
    assert_eq!(v.shape(), &[2, 3, 4]);
    assert_eq!(v[[1, 2, 3]], 23.0 / 4.0);
    let bytes = a.data_bytes().unwrap();
    assert_eq!(
        v.as_ptr() as *const u8,
        bytes.as_ptr(),
        "the view must point into the map"
    );
    let s = a.sample_view::<f32>(1).unwrap();
    assert_eq!(s.shape(), &[3, 4]);
    assert_eq!(s[[0, 0]], 3.0);
    // Wrong type, foreign byte order and the read source are refused, not copied.
    assert!(a.view::<f64>().is_err());
    let be = NpyArray::open(fixture("float32_be.npy")).unwrap();
    assert!(be.view::<f32>().is_err());
    let b = NpyArray::open(fixture("bool_le.npy")).unwrap();
    assert_eq!(b.view::<u8>().unwrap()[[0, 0, 1]], 1);
    assert!(matches!(
        a.sample_view::<f32>(2).unwrap_err().kind(),
        ErrorKind::IndexOutOfRange { .. }
    ));
}

#[test]
fn format_versions_2_and_3_scalars_and_empty_arrays_open() {
    for v in ["float32_v2.npy", "float32_v3.npy"] {
        let a = NpyArray::open(fixture(v)).unwrap();
        assert_eq!(a.header().version.0, if v.contains("v2") { 2 } else { 3 });
        assert_eq!(a.to_vec_f64().unwrap(), expected("float32"));
    }
    let s = NpyArray::open(fixture("scalar.npy")).unwrap();
    assert!(s.shape().is_empty());
    assert_eq!(s.to_vec_f64().unwrap(), vec![2.5]);
    let e = NpyArray::open(fixture("empty.npy")).unwrap();
    assert_eq!(e.len(), 0);
    assert!(e.is_empty());
}

#[test]
fn fortran_order_is_rejected_naming_the_fix() {
    let err = NpyArray::open(fixture("fortran.npy")).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::FortranOrder { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("fortran.npy") && msg.contains("npyflow convert array"),
        "{msg}"
    );
    let a = NpyArray::open_with(
        fixture("fortran.npy"),
        OpenOptions {
            allow_fortran: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(a.header().fortran_order);
}

#[test]
fn hostile_files_each_get_their_error_kind() {
    let kind = |name: &str| NpyArray::open(fixture(name)).unwrap_err();
    let e = kind("bad_magic.npy");
    assert!(matches!(e.kind(), ErrorKind::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("bad_magic.npy"));
    let e = kind("truncated.npy");
    assert!(
        matches!(e.kind(), ErrorKind::Truncated { expected, found, .. } if expected - found == 7),
        "{e}"
    );
    let e = kind("bad_header.npy");
    assert!(matches!(e.kind(), ErrorKind::BadHeader { .. }), "{e}");
    let e = kind("overflow.npy");
    assert!(matches!(e.kind(), ErrorKind::SizeOverflow { .. }), "{e}");
    let e = kind("misaligned.npy");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Misaligned {
                offset: 130,
                align: 4,
                ..
            }
        ),
        "{e}"
    );
    for name in ["complex.npy", "strings.npy", "structured.npy"] {
        let e = kind(name);
        assert!(
            matches!(e.kind(), ErrorKind::UnsupportedDtype { .. }),
            "{name}: {e}"
        );
        assert!(e.to_string().contains(name));
    }
    let e = kind("does-not-exist.npy");
    assert!(matches!(e.kind(), ErrorKind::Io { .. }));
    // Same checks through the pread source.
    let read = |name: &str| {
        NpyArray::open_with(
            fixture(name),
            OpenOptions {
                source: SourceKind::Read,
                ..Default::default()
            },
        )
        .unwrap_err()
    };
    assert!(matches!(
        read("truncated.npy").kind(),
        ErrorKind::Truncated { .. }
    ));
    assert!(matches!(
        read("bad_magic.npy").kind(),
        ErrorKind::BadMagic { .. }
    ));
}

#[test]
fn stored_npz_members_are_mapped_and_compressed_ones_refused() {
    let z = NpzArchive::open(fixture("stored.npz")).unwrap();
    let mut names = z.names();
    names.sort();
    assert_eq!(names, vec!["x", "y"]);
    let x = z.array("x").unwrap();
    assert_eq!(x.shape(), &[2, 3, 4]);
    assert_eq!(x.to_vec_f64().unwrap(), expected("float32"));
    let y = z.array("y.npy").unwrap();
    assert_eq!(y.to_vec_f64().unwrap(), vec![0.0, -12e12]);
    // The member's data lies inside the archive's single map.
    assert!(x.data_offset() > 0);
    assert!(matches!(
        z.array("nope").unwrap_err().kind(),
        ErrorKind::Npz { .. }
    ));

    let c = NpzArchive::open(fixture("compressed.npz")).unwrap();
    let e = c.array("x").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::CompressedMember { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("npyflow convert npz"), "{e}");
    assert!(matches!(
        NpzArchive::open(fixture("float32_le.npy"))
            .unwrap_err()
            .kind(),
        ErrorKind::Npz { .. }
    ));
}
