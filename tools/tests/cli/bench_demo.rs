//! `bench` and `demo`.

use std::fs;

use npyflow::NpyArray;

use crate::{dataset, fails, npyflow, ok, ok_json};

#[test]
fn bench_runs_a_small_matrix() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 64);
    let v = ok_json(npyflow(
        dir.path(),
        &[
            "bench",
            "x.npy",
            "--orders",
            "sequential,shuffle",
            "--caches",
            "warm",
            "--advice",
            "kernel",
            "--memory-limit",
            "none",
            "--seconds",
            "0.5",
            "--batch-size",
            "16",
            "--csv",
            "b.csv",
            "--json",
        ],
    ));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r["images_per_s"].as_f64().unwrap() > 0.0));
    assert!(fs::read_to_string(dir.path().join("b.csv"))
        .unwrap()
        .starts_with("order,"));
    fails(
        npyflow(dir.path(), &["bench", "x.npy", "--orders", "zigzag"]),
        &["zigzag"],
    );
    fails(npyflow(dir.path(), &["bench", "y.npy"]), &["rank-4"]);
}

#[test]
fn demo_builds_fits_iterates_and_previews() {
    let dir = tempfile::tempdir().unwrap();
    let v = ok_json(npyflow(
        dir.path(),
        &[
            "demo",
            "--samples",
            "300",
            "--size",
            "16x16",
            "--dir",
            "demo",
            "--json",
        ],
    ));
    assert!(v["throughput"].as_f64().unwrap() > 0.0);
    assert_eq!(v["epoch"]["samples"], 300);
    for f in ["x.npy", "y.npy", "classes.txt", "stats.npz", "preview.png"] {
        assert!(dir.path().join("demo").join(f).exists(), "{f}");
    }
    assert_eq!(
        NpyArray::open(dir.path().join("demo/x.npy"))
            .unwrap()
            .shape(),
        &[300, 16, 16, 3]
    );
    let text = ok(npyflow(
        dir.path(),
        &["demo", "--samples", "40", "--size", "8x8", "--dir", "demo2"],
    ));
    assert!(
        text.contains("preview") && text.contains("samples/s"),
        "{text}"
    );
    fails(
        npyflow(
            dir.path(),
            &["demo", "--samples", "10", "--classes", "9", "--dir", "d3"],
        ),
        &["classes"],
    );
}
