//! `convert images|npz|array`, and a conversion killed midway.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use npyflow::npy::{ByteOrder, Dtype, ElemType};
use npyflow::NpyArray;

use crate::{fails, fixture, image_folder, npyflow, ok, ok_json, stderr};

#[test]
fn convert_images_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photos");
    image_folder(&src, &["cats", "dogs"], 3, 6);
    let v = ok_json(npyflow(
        dir.path(),
        &[
            "convert", "images", "photos", "--out", "data", "--size", "4x5", "--json",
        ],
    ));
    assert_eq!(v["shape"], serde_json::json!([6, 4, 5, 3]));
    assert_eq!(v["classes"], serde_json::json!(["cats", "dogs"]));
    let x = NpyArray::open(dir.path().join("data/x.npy")).unwrap();
    assert_eq!(
        (x.shape(), x.dtype()),
        (&[6usize, 4, 5, 3][..], Dtype::native(ElemType::U8))
    );
    let y = NpyArray::open(dir.path().join("data/y.npy")).unwrap();
    assert_eq!(y.to_vec_f64().unwrap(), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(
        fs::read_to_string(dir.path().join("data/classes.txt")).unwrap(),
        "cats\ndogs\n"
    );
    let text = ok(npyflow(
        dir.path(),
        &[
            "convert",
            "images",
            "photos",
            "--out",
            "gray",
            "--color",
            "grayscale",
        ],
    ));
    assert!(text.contains("converted 6 images in 2 classes"), "{text}");
    // No --size: the images' own 6x6, which they all share.
    assert_eq!(
        NpyArray::open(dir.path().join("gray/x.npy"))
            .unwrap()
            .shape(),
        &[6, 6, 6, 1]
    );

    // An unreadable image: fatal by default, skipped and reported with --skip-bad.
    fs::write(src.join("dogs/zz_broken.png"), b"not a png at all").unwrap();
    fails(
        npyflow(
            dir.path(),
            &[
                "convert", "images", "photos", "--out", "bad", "--size", "4x5",
            ],
        ),
        &["zz_broken.png", "decode"],
    );
    assert!(!dir.path().join("bad/x.npy").exists());
    let o = npyflow(
        dir.path(),
        &[
            "convert",
            "images",
            "photos",
            "--out",
            "skip",
            "--size",
            "4x5",
            "--skip-bad",
        ],
    );
    assert!(
        stderr(&o).contains("skipped") && stderr(&o).contains("zz_broken.png"),
        "{}",
        stderr(&o)
    );
    ok(o);
    assert_eq!(
        NpyArray::open(dir.path().join("skip/x.npy"))
            .unwrap()
            .shape(),
        &[6, 4, 5, 3]
    );

    // Bad input.
    fails(
        npyflow(dir.path(), &["convert", "images", "nowhere", "--out", "o"]),
        &["nowhere"],
    );
    fs::write(dir.path().join("file.txt"), "x").unwrap();
    fails(
        npyflow(
            dir.path(),
            &["convert", "images", "photos", "--out", "file.txt/sub"],
        ),
        &["file.txt"],
    );
    fails(
        npyflow(
            dir.path(),
            &["convert", "images", "photos", "--out", "o", "--size", "0x3"],
        ),
        &["--size"],
    );
    fails(
        npyflow(
            dir.path(),
            &[
                "convert", "images", "photos", "--out", "o", "--color", "purple",
            ],
        ),
        &["purple"],
    );
    fails(
        npyflow(
            dir.path(),
            &[
                "convert", "images", "photos", "--out", "o", "--filter", "cubist",
            ],
        ),
        &["cubist"],
    );
    fails(
        npyflow(dir.path(), &["convert", "images", "photos"]),
        &["--out"],
    );
}

#[test]
fn convert_npz_and_array_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let v = ok_json(npyflow(
        dir.path(),
        &[
            "convert",
            "npz",
            fixture("compressed.npz").to_str().unwrap(),
            "--out",
            "m",
            "--json",
        ],
    ));
    assert_eq!(v["members"].as_array().unwrap().len(), 4);
    let images = NpyArray::open(dir.path().join("m/images.npy")).unwrap();
    assert_eq!(images.data_bytes().unwrap(), (0..72).collect::<Vec<u8>>());
    let labels = NpyArray::open(dir.path().join("m/labels.npy")).unwrap();
    assert_eq!(
        labels.dtype(),
        Dtype {
            elem: ElemType::I16,
            order: ByteOrder::Big
        }
    );

    // Rewrite the big-endian member natively as float32 scaled by 1/2.
    let text = ok(npyflow(
        dir.path(),
        &[
            "convert",
            "array",
            "m/labels.npy",
            "labels.npy",
            "--dtype",
            "float32",
            "--scale",
            "1/2",
        ],
    ));
    assert!(text.contains("labels.npy"), "{text}");
    let l = NpyArray::open(dir.path().join("labels.npy")).unwrap();
    assert_eq!(l.dtype(), Dtype::native(ElemType::F32));
    assert_eq!(l.to_vec_f64().unwrap(), [1.5, -0.5, 3.5]);
    // Fortran order → C order.
    let v = ok_json(npyflow(
        dir.path(),
        &[
            "convert",
            "array",
            fixture("fortran_u8.npy").to_str().unwrap(),
            "c.npy",
            "--json",
        ],
    ));
    assert_eq!(v["was_fortran"], true);
    let c = NpyArray::open(dir.path().join("c.npy")).unwrap();
    let want = NpyArray::open(fixture("expect_fortran_u8.npy")).unwrap();
    assert_eq!(c.data_bytes(), want.data_bytes());
    assert_eq!(c.shape(), &[5, 4, 3, 2]);
    // The Fortran file is refused elsewhere with the command that fixes it.
    fails(
        npyflow(
            dir.path(),
            &["iterate", fixture("fortran_u8.npy").to_str().unwrap()],
        ),
        &["npyflow convert array"],
    );

    fails(
        npyflow(
            dir.path(),
            &["convert", "npz", "missing.npz", "--out", "m2"],
        ),
        &["missing.npz"],
    );
    fails(
        npyflow(dir.path(), &["convert", "npz", "c.npy", "--out", "m2"]),
        &["c.npy", ".npz"],
    );
    fails(
        npyflow(
            dir.path(),
            &["convert", "array", "c.npy", "d.npy", "--dtype", "complex64"],
        ),
        &["complex64"],
    );
    fails(
        npyflow(dir.path(), &["convert", "array", "missing.npy", "d.npy"]),
        &["missing.npy"],
    );
    fails(
        npyflow(
            dir.path(),
            &["convert", "array", "c.npy", "no/such/dir/d.npy"],
        ),
        &["no/such/dir"],
    );
    let npz = fixture("stored.npz");
    fails(
        npyflow(
            dir.path(),
            &["convert", "array", npz.to_str().unwrap(), "d.npy"],
        ),
        &["npyflow convert npz"],
    );
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    fails(
        npyflow(dir.path(), &["convert", "array", "notes.txt", "d.npy"]),
        &["not a .npy file"],
    );
    assert!(!dir.path().join("d.npy").exists());
}

/// Issue 6, crash-safe output: the conversion is killed at 20 moments
/// spread over its own measured duration (pseudo-random, fixed seed); each
/// time the destination holds either nothing but hidden temporary files, or
/// complete, valid outputs.
#[test]
fn killed_conversion_leaves_nothing_or_a_complete_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    image_folder(&src, &["a", "b", "c"], 60, 64);
    let args = |out: &Path| {
        vec![
            "convert".to_string(),
            "images".into(),
            "big".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--size".into(),
            "256x256".into(),
            "--filter".into(),
            "lanczos3".into(),
        ]
    };
    // How long an uninterrupted conversion takes here.
    let started = std::time::Instant::now();
    let full = dir.path().join("full");
    ok(npyflow(
        dir.path(),
        &args(&full).iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let total = started.elapsed().as_millis().max(20) as u64;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (mut complete, mut partial) = (0, 0);
    for k in 0..20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay_ms = state % (total + total / 5);
        let out = dir.path().join(format!("out{k}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_npyflow"))
            .args(args(&out))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let x = out.join("x.npy");
        if x.exists() {
            // Finished before the kill: complete and valid.
            let a = NpyArray::open(&x).unwrap();
            assert_eq!(a.shape(), &[180, 256, 256, 3]);
            assert_eq!(NpyArray::open(out.join("y.npy")).unwrap().len(), 180);
            complete += 1;
        } else if out.exists() {
            // Killed: hidden temporary files, never a truncated x.npy; the
            // small outputs renamed just before x.npy are complete if present.
            for e in fs::read_dir(&out).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                match name.as_str() {
                    "y.npy" => assert_eq!(NpyArray::open(out.join("y.npy")).unwrap().len(), 180),
                    "classes.txt" => {
                        assert_eq!(fs::read_to_string(out.join(&name)).unwrap(), "a\nb\nc\n")
                    }
                    _ => assert!(
                        name.starts_with('.') && name.ends_with(".partial"),
                        "{name}"
                    ),
                }
            }
            partial += 1;
        } else {
            partial += 1;
        }
    }
    println!("20 kills over a {total} ms conversion: {complete} complete, {partial} interrupted");
}
