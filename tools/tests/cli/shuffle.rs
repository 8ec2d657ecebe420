//! `--shuffle [--seed N]` on `convert images` and `convert array`: data
//! written in a shuffled order, labels with their images, so that Keras'
//! validation split holds every class.

use std::fs;

use npyflow::npy::{write_npy, ElemType};
use npyflow::{NpyArray, Order};

use crate::{dataset, fails, image_folder, npyflow, ok, ok_json};

#[test]
fn convert_images_shuffle_keeps_labels_with_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The blue channel of every pixel is 60 x the class.
    image_folder(&d.join("photos"), &["a", "b", "c"], 20, 4);
    // In directory order, the validation quarter holds only class a.
    ok(npyflow(
        d,
        &["convert", "images", "photos", "--out", "sorted"],
    ));
    fails(
        npyflow(
            d,
            &[
                "iterate",
                "sorted/x.npy",
                "--y",
                "sorted/y.npy",
                "--validation-split",
                "0.25",
                "--subset",
                "validation",
            ],
        ),
        &[
            "different number of classes",
            "npyflow convert images DIR --out OUT --shuffle",
            "--ignore-class-split",
        ],
    );
    let v = ok_json(npyflow(
        d,
        &[
            "convert",
            "images",
            "photos",
            "--out",
            "mixed",
            "--shuffle",
            "--seed",
            "5",
            "--json",
        ],
    ));
    assert_eq!(v["shuffle_seed"], 5);
    let x = NpyArray::open(d.join("mixed/x.npy")).unwrap();
    let y = NpyArray::open(d.join("mixed/y.npy"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    assert_eq!(x.shape(), &[60, 4, 4, 3]);
    // The order is the seed's permutation of the directory order.
    let sorted_y = NpyArray::open(d.join("sorted/y.npy"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let plan = Order::Shuffle.plan(60, 5, 0);
    let want: Vec<f64> = plan.iter().map(|&i| sorted_y[i]).collect();
    assert_eq!(y, want);
    let sorted_x = NpyArray::open(d.join("sorted/x.npy")).unwrap();
    for (k, &i) in plan.iter().enumerate() {
        let row = x.row_bytes_mapped(k).unwrap();
        assert_eq!(row, sorted_x.row_bytes_mapped(i).unwrap(), "row {k}");
        assert_eq!(
            row[2] as f64,
            y[k] * 60.0,
            "row {k}: blue is 60 x its label"
        );
    }
    assert_eq!(
        fs::read_to_string(d.join("mixed/classes.txt")).unwrap(),
        "a\nb\nc\n"
    );
    // Now the split has every class on both sides.
    ok(npyflow(
        d,
        &[
            "iterate",
            "mixed/x.npy",
            "--y",
            "mixed/y.npy",
            "--validation-split",
            "0.25",
            "--subset",
            "validation",
        ],
    ));
    // Without a seed one is drawn and printed; the text says the order.
    let text = ok(npyflow(
        d,
        &["convert", "images", "photos", "--out", "drawn", "--shuffle"],
    ));
    let seed: u64 = text
        .split("shuffled with seed ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let again = ok(npyflow(
        d,
        &[
            "convert",
            "images",
            "photos",
            "--out",
            "again",
            "--shuffle",
            "--seed",
            &seed.to_string(),
        ],
    ));
    assert!(
        again.contains(&format!("shuffled with seed {seed}")),
        "{again}"
    );
    assert_eq!(
        fs::read(d.join("drawn/x.npy")).unwrap(),
        fs::read(d.join("again/x.npy")).unwrap()
    );
    let text = ok(npyflow(
        d,
        &["convert", "images", "photos", "--out", "plain"],
    ));
    assert!(
        text.contains("class by class (add --shuffle before using --validation-split)"),
        "{text}"
    );
    fails(
        npyflow(
            d,
            &["convert", "images", "photos", "--out", "o", "--seed", "1"],
        ),
        &["--seed", "--shuffle"],
    );
}

#[test]
fn convert_array_shuffles_several_arrays_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 50;
    dataset(d, n);
    let idx: Vec<i64> = (0..n as i64).collect();
    write_npy(
        d.join("idx.npy"),
        ElemType::I64,
        &[n],
        bytemuck::cast_slice(&idx),
    )
    .unwrap();
    let x0 = fs::read(d.join("x.npy")).unwrap();
    let y0 = NpyArray::open(d.join("y.npy"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    // In place, three arrays, the first also cast.
    let v = ok_json(npyflow(
        d,
        &[
            "convert",
            "array",
            "x.npy",
            "xs.npy",
            "--dtype",
            "float32",
            "--with",
            "y.npy",
            "y.npy",
            "--with",
            "idx.npy",
            "idx.npy",
            "--shuffle",
            "--seed",
            "9",
            "--json",
        ],
    ));
    assert_eq!(v["shuffle_seed"], 9);
    assert_eq!(v["arrays"].as_array().unwrap().len(), 3);
    assert_eq!(v["arrays"][1]["to"], "<i4");
    let plan = Order::Shuffle.plan(n, 9, 0);
    let idx = NpyArray::open(d.join("idx.npy"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let want: Vec<f64> = plan.iter().map(|&i| i as f64).collect();
    assert_eq!(idx, want);
    let y = NpyArray::open(d.join("y.npy"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let want: Vec<f64> = plan.iter().map(|&i| y0[i]).collect();
    assert_eq!(y, want);
    let xs = NpyArray::open(d.join("xs.npy")).unwrap();
    assert_eq!(xs.dtype().elem, ElemType::F32);
    let xs = xs.to_vec_f64().unwrap();
    let x = NpyArray::open(d.join("x.npy")).unwrap();
    assert_eq!(
        fs::read(d.join("x.npy")).unwrap(),
        x0,
        "x.npy itself was not an output"
    );
    let row = 8 * 8 * 3;
    for (k, &i) in plan.iter().enumerate() {
        let src: Vec<f64> = x
            .row_bytes_mapped(i)
            .unwrap()
            .iter()
            .map(|&b| b as f64)
            .collect();
        assert_eq!(&xs[k * row..(k + 1) * row], &src[..], "row {k}");
    }
    let text = ok(npyflow(
        d,
        &[
            "convert",
            "array",
            "x.npy",
            "x2.npy",
            "--with",
            "y.npy",
            "y2.npy",
            "--shuffle",
            "--seed",
            "9",
        ],
    ));
    assert!(
        text.contains("rows shuffled with seed 9, in one order for every array"),
        "{text}"
    );
    assert!(text.contains("wrote y2.npy"), "{text}");

    // Arrays of different lengths, a shared output: nothing is written.
    dataset(&d.join("small"), 7);
    fails(
        npyflow(
            d,
            &[
                "convert",
                "array",
                "x.npy",
                "a.npy",
                "--with",
                "small/y.npy",
                "b.npy",
                "--shuffle",
            ],
        ),
        &["small/y.npy", "expected [50], found [7]"],
    );
    fails(
        npyflow(
            d,
            &[
                "convert", "array", "x.npy", "a.npy", "--with", "y.npy", "a.npy",
            ],
        ),
        &["a.npy is the output of two arrays"],
    );
    assert!(!d.join("a.npy").exists() && !d.join("b.npy").exists());
    fails(
        npyflow(
            d,
            &["convert", "array", "x.npy", "a.npy", "--with", "y.npy"],
        ),
        &["--with"],
    );
}
