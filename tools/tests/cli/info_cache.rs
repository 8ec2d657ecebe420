//! `info` and `cache`.

use std::fs;

use crate::{dataset, fails, fixture, npyflow, ok, ok_json, stdout};

#[test]
fn info_reports_headers_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (x, _) = dataset(dir.path(), 10);
    let text = ok(npyflow(dir.path(), &["info", x.to_str().unwrap()]));
    assert!(text.contains("(10, 8, 8, 3), C order"), "{text}");
    assert!(text.contains("uint8"), "{text}");
    let v = ok_json(npyflow(dir.path(), &["info", "x.npy", "y.npy", "--json"]));
    assert_eq!(v[0]["shape"], serde_json::json!([10, 8, 8, 3]));
    assert_eq!(v[0]["data_offset"], 128);
    assert_eq!(v[0]["alignment"], 128);
    assert_eq!(v[1]["dtype"], "int32");
    assert!(v[0]["residency"]["fraction"].as_f64().is_some());

    // Each member of an archive, stored or compressed.
    for archive in ["stored.npz", "compressed.npz"] {
        let v = ok_json(npyflow(
            dir.path(),
            &["info", fixture(archive).to_str().unwrap(), "--json"],
        ));
        let members: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["member"].as_str().unwrap())
            .collect();
        assert_eq!(members, ["images", "labels", "weights", "fortran"]);
        assert_eq!(v[1]["byte_order"], "big");
        assert_eq!(v[3]["order"], "F");
        assert_eq!(v[0]["compressed"], archive == "compressed.npz");
    }

    fails(
        npyflow(dir.path(), &["info", "missing.npy"]),
        &["missing.npy", "No such file"],
    );
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    fails(
        npyflow(dir.path(), &["info", "notes.txt"]),
        &["notes.txt", "not a .npy file"],
    );
    // A bad file among good ones: the good ones are still reported.
    let o = npyflow(dir.path(), &["info", "x.npy", "notes.txt"]);
    assert!(stdout(&o).contains("x.npy"));
    fails(o, &["notes.txt"]);
}

#[test]
fn cache_status_evict_warm() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 50);
    for action in ["--status", "--evict", "--warm"] {
        let v = ok_json(npyflow(
            dir.path(),
            &["cache", "x.npy", "y.npy", action, "--json"],
        ));
        assert_eq!(v.as_array().unwrap().len(), 2);
        let f = v[0]["fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f));
        assert!(v[0]["chart"].as_str().unwrap().starts_with('['));
    }
    let text = ok(npyflow(dir.path(), &["cache", "x.npy"]));
    assert!(text.contains("pages") && text.contains("x.npy"), "{text}");
    fails(
        npyflow(dir.path(), &["cache", "missing.npy"]),
        &["missing.npy"],
    );
    fails(
        npyflow(dir.path(), &["cache", "x.npy", "--evict", "--warm"]),
        &["--warm"],
    );
}
