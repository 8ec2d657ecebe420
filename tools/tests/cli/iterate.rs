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
