//! `iterate`, `fit` and `preview`.

use std::fs;

use npyflow::npy::{Dtype, ElemType};
use npyflow::NpyArray;

use crate::{dataset, fails, npyflow, ok, ok_json};

#[test]
fn iterate_fit_preview_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, 20);
    // Epoch of 20 in batches of 8: 8 + 8 + 4; two epochs = 6 batches, 40 rows.
    let v = ok_json(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--y",
            "y.npy",
            "--batch-size",
            "8",
            "--epochs",
            "2",
            "--seed",
            "1",
            "--rotation-range",
            "10",
            "--horizontal-flip",
            "--rescale",
            "1/255",
            "--order",
            "blocks",
            "--out",
            "aug.npy",
            "--json",
        ],
    ));
    assert!(v["throughput"].as_f64().unwrap() > 0.0);
    assert_eq!(v["batches"], 6);
    assert_eq!(v["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(v["epochs"][0]["samples"], 20);
    let aug = NpyArray::open(d.join("aug.npy")).unwrap();
    assert_eq!(
        (aug.shape(), aug.dtype()),
        (&[40usize, 8, 8, 3][..], Dtype::native(ElemType::F32))
    );
    assert!(aug
        .to_vec_f64()
        .unwrap()
        .iter()
        .all(|v| (0.0..=1.0).contains(v)));
    // --max-batches cuts the run (and the output) short, across the partial batch.
    ok(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--batch-size",
            "8",
            "--epochs",
            "3",
            "--max-batches",
            "4",
            "--out",
            "four.npy",
        ],
    ));
    assert_eq!(
        NpyArray::open(d.join("four.npy")).unwrap().shape(),
        &[28, 8, 8, 3]
    );
    // --prefetch 0: prefetched batches beyond the last one yielded are
    // assembled (and so saved) speculatively by the pipeline.
    let text = ok(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--batch-size",
            "8",
            "--prefetch",
            "0",
            "--save-to-dir",
            "saved",
            "--save-prefix",
            "s",
        ],
    ));
    assert!(text.contains("samples/s"), "{text}");
    assert_eq!(fs::read_dir(d.join("saved")).unwrap().count(), 20);

    // fit → stats.npz → iterate --stats; a config file with Keras names.
    let v = ok_json(npyflow(
        d,
        &[
            "fit",
            "x.npy",
            "--featurewise-std-normalization",
            "--rescale",
            "1/255",
            "--out",
            "stats.npz",
            "--json",
        ],
    ));
    assert_eq!(v["mean"].as_array().unwrap().len(), 3);
    // Keras' augment/rounds: two augmented passes over the 20 samples.
    let v = ok_json(npyflow(
        d,
        &[
            "fit",
            "x.npy",
            "--featurewise-center",
            "--augment",
            "--rounds",
            "2",
            "--rotation-range",
            "10",
            "--out",
            "s2.npz",
            "--json",
        ],
    ));
    assert_eq!(v["rows"], 40);
    fs::write(d.join("gen.json"), r#"{"featurewise_center": true, "featurewise_std_normalization": true, "rescale": 0.00392156862745098, "zoom_range": [0.9, 1.1]}"#).unwrap();
    ok(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--config",
            "gen.json",
            "--stats",
            "stats.npz",
            "--max-batches",
            "1",
        ],
    ));
    fails(
        npyflow(d, &["iterate", "x.npy", "--config", "gen.json"]),
        &["statistics"],
    );
    fails(
        npyflow(d, &["fit", "x.npy", "--out", "s.npz"]),
        &["nothing to fit"],
    );
    fails(
        npyflow(d, &["fit", "x.npy", "--featurewise-center"]),
        &["--out"],
    );

    // preview: a decodable picture of the requested grid.
    let v = ok_json(npyflow(
        d,
        &[
            "preview",
            "x.npy",
            "--rotation-range",
            "30",
            "--grid",
            "2x3",
            "--out",
            "p.png",
            "--json",
        ],
    ));
    assert_eq!(v["indices"].as_array().unwrap().len(), 2);
    let img = image::open(d.join("p.png")).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (
            v["width"].as_u64().unwrap() as u32,
            v["height"].as_u64().unwrap() as u32
        )
    );
    fails(
        npyflow(d, &["preview", "x.npy", "--out", "p.gif"]),
        &["p.gif"],
    );
    fails(
        npyflow(
            d,
            &["preview", "x.npy", "--out", "p.png", "--indices", "99"],
        ),
        &["99"],
    );

    // Wrong option values and inputs.
    fails(
        npyflow(d, &["iterate", "x.npy", "--fill-mode", "edge"]),
        &["fill_mode", "edge"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--rotation-range", "abc"]),
        &["--rotation-range"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--interpolation-order", "7"]),
        &["interpolation_order"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--batch-size", "0"]),
        &["batch_size"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--order", "random"]),
        &["random"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--cache-budget", "12 parsecs"]),
        &["parsecs"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--config", "missing.json"]),
        &["missing.json"],
    );
    fails(npyflow(d, &["iterate", "missing.npy"]), &["missing.npy"]);
    fails(npyflow(d, &["iterate", "y.npy"]), &["rank 4"]);
    dataset(&d.join("other"), 7);
    fails(
        npyflow(d, &["iterate", "x.npy", "--y", "other/y.npy"]),
        &["same length"],
    );
    fails(
        npyflow(d, &["iterate", "x.npy", "--out", "no/such/dir/o.npy"]),
        &["no/such/dir"],
    );
}

/// `iterate --out` writes, beside the images, the rows of every array passed
/// with them, in the same order: each output row's aux row names the input
/// row it came from, and its images, label and weight all match that row.
#[test]
fn iterate_out_writes_the_matching_rows_of_every_array() {
    use npyflow::npy::write_npy;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 21;
    dataset(d, n);
    // Sample weights i / 10 (float64), aux rows [i, -i] (int64), a bool aux.
    let w: Vec<f64> = (0..n).map(|i| i as f64 / 10.0).collect();
    write_npy(
        d.join("w.npy"),
        ElemType::F64,
        &[n],
        bytemuck::cast_slice(&w),
    )
    .unwrap();
    let idx: Vec<i64> = (0..n as i64).flat_map(|i| [i, -i]).collect();
    write_npy(
        d.join("idx.npy"),
        ElemType::I64,
        &[n, 2],
        bytemuck::cast_slice(&idx),
    )
    .unwrap();
    let even: Vec<u8> = (0..n).map(|i| (i % 2 == 0) as u8).collect();
    write_npy(d.join("even.npy"), ElemType::Bool, &[n], &even).unwrap();
    fs::create_dir(d.join("out")).unwrap();
    let text = ok(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--y",
            "y.npy",
            "--sample-weight",
            "w.npy",
            "--aux",
            "idx.npy",
            "--aux",
            "even.npy",
            "--rescale",
            "1/255",
            "--seed",
            "1",
            "--batch-size",
            "4",
            "--epochs",
            "2",
            "--max-batches",
            "9",
            "--out",
            "out/aug.npy",
        ],
    ));
    // 9 batches of 6 per epoch (4 4 4 4 4 1): one full epoch (21) + 3 batches (12).
    let rows = 33;
    for (file, what) in [
        ("out/aug.npy", "the images"),
        ("out/aug_y.npy", "their rows of y.npy"),
        ("out/aug_sample_weight.npy", "their rows of w.npy"),
        ("out/aug_aux0.npy", "their rows of idx.npy"),
        ("out/aug_aux1.npy", "their rows of even.npy"),
    ] {
        assert!(
            text.contains(&format!("wrote {file} ({what}, in the order yielded)")),
            "{file}: {text}"
        );
    }
    let x = NpyArray::open(d.join("x.npy")).unwrap();
    let y = NpyArray::open(d.join("y.npy"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let aug = NpyArray::open(d.join("out/aug.npy")).unwrap();
    assert_eq!(aug.shape(), &[rows, 8, 8, 3]);
    let aug_y = NpyArray::open(d.join("out/aug_y.npy")).unwrap();
    assert_eq!(
        (aug_y.shape(), aug_y.dtype()),
        (&[rows][..], Dtype::native(ElemType::I32))
    );
    let aug_w = NpyArray::open(d.join("out/aug_sample_weight.npy")).unwrap();
    assert_eq!(
        (aug_w.shape(), aug_w.dtype()),
        (&[rows][..], Dtype::native(ElemType::F64))
    );
    let aug_i = NpyArray::open(d.join("out/aug_aux0.npy")).unwrap();
    assert_eq!(
        (aug_i.shape(), aug_i.dtype()),
        (&[rows, 2][..], Dtype::native(ElemType::I64))
    );
    let aug_e = NpyArray::open(d.join("out/aug_aux1.npy")).unwrap();
    assert_eq!(
        (aug_e.shape(), aug_e.dtype()),
        (&[rows][..], Dtype::native(ElemType::Bool))
    );
    let (aug_y, aug_w) = (aug_y.to_vec_f64().unwrap(), aug_w.to_vec_f64().unwrap());
    let (aug_i, aug_e) = (aug_i.to_vec_f64().unwrap(), aug_e.to_vec_f64().unwrap());
    let images = aug.to_vec_f64().unwrap();
    let row_len = 8 * 8 * 3;
    let mut seen = vec![0; n];
    for r in 0..rows {
        let i = aug_i[2 * r] as usize;
        assert_eq!(aug_i[2 * r + 1], -(i as f64), "row {r}");
        seen[i] += 1;
        assert_eq!(aug_y[r], y[i], "row {r}");
        assert_eq!(aug_w[r], i as f64 / 10.0, "row {r}");
        assert_eq!(aug_e[r], i.is_multiple_of(2) as u8 as f64, "row {r}");
        let src = x.row_bytes_mapped(i).unwrap();
        let got = &images[r * row_len..(r + 1) * row_len];
        for (k, (&s, &g)) in src.iter().zip(got).enumerate() {
            assert_eq!(
                (g * 255.0).round(),
                s as f64,
                "row {r} (input {i}) value {k}"
            );
        }
    }
    // The first epoch holds every sample once, shuffled (not file order).
    let first: Vec<usize> = (0..n).map(|r| aug_i[2 * r] as usize).collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
    assert_ne!(first, sorted);
    assert_eq!(seen.iter().sum::<usize>(), rows);
    // Nothing else beside them: no temporary files left.
    let mut names: Vec<String> = fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aug.npy",
            "aug_aux0.npy",
            "aug_aux1.npy",
            "aug_sample_weight.npy",
            "aug_y.npy"
        ]
    );
    // The JSON names every file too.
    let v = ok_json(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--y",
            "y.npy",
            "--max-batches",
            "1",
            "--out",
            "j.npy",
            "--json",
        ],
    ));
    assert_eq!(
        v["out_files"],
        serde_json::json!([
            {"array": "images", "path": "j.npy"},
            {"array": "y", "path": "j_y.npy"},
        ])
    );
    assert_eq!(NpyArray::open(d.join("j_y.npy")).unwrap().len(), 32.min(n));
}

/// `--dtype float16`: `--out` writes `<f2`, the float32 run rounded once
/// (to nearest even: `half`'s software conversion is the reference);
/// bfloat16 iterates but has no `.npy` type to be written as.
#[test]
fn iterate_dtype_float16_writes_the_float32_run_rounded_once() {
    use half::f16;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, 21);
    let run = |out: &str, dtype: Option<&str>| {
        let mut args = vec![
            "iterate",
            "x.npy",
            "--batch-size",
            "4",
            "--epochs",
            "2",
            "--seed",
            "5",
            "--order",
            "shuffle",
            "--rotation-range",
            "30",
            "--zoom-range",
            "0.2",
            "--horizontal-flip",
            "--rescale",
            "1/255",
            "--out",
            out,
        ];
        if let Some(t) = dtype {
            args.extend(["--dtype", t]);
        }
        ok(npyflow(d, &args));
        NpyArray::open(d.join(out)).unwrap()
    };
    let full = run("f32.npy", None);
    let half = run("f16.npy", Some("float16"));
    assert_eq!(half.dtype(), Dtype::native(ElemType::F16));
    assert_eq!(half.shape(), &[42, 8, 8, 3]);
    assert_eq!(half.header().dtype.descr(), "<f2");
    let want: Vec<u16> = full
        .view::<f32>()
        .unwrap()
        .iter()
        .map(|&v| f16::from_f32_const(v).to_bits())
        .collect();
    let got: Vec<u16> = half
        .view::<f16>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, want);
    let f32_values = full.view::<f32>().unwrap();
    assert!(
        f32_values.iter().any(|&v| f16::from_f32(v).to_f32() != v),
        "every value was exact in float16"
    );

    ok(npyflow(
        d,
        &["iterate", "x.npy", "--dtype", "bfloat16", "--epochs", "1"],
    ));
    fails(
        npyflow(
            d,
            &["iterate", "x.npy", "--dtype", "bfloat16", "--out", "b.npy"],
        ),
        &["b.npy", "bfloat16", "<V2", "--dtype"],
    );
    assert!(!d.join("b.npy").exists());
    fails(
        npyflow(d, &["iterate", "x.npy", "--dtype", "float8"]),
        &["float8", "bfloat16"],
    );
}
