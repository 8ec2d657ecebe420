//! Every file and folder the tool creates takes the mode the umask gives
//! (0644 and 0755 under umask 022, as `np.save` and `mkdir` give), not a
//! temporary file's 0600.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::{dataset, fixture, image_folder, ok, stderr};

/// Runs `npyflow ARGS` in `dir` under `umask`.
fn npyflow_umask(dir: &Path, umask: &str, args: &[&str]) -> std::process::Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_npyflow"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every entry under `root` (recursively) with its mode, hidden files included.
fn modes_under(root: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.push((rel, mode(&p)));
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every output of every subcommand, written under `umask`, has
/// `file_mode` (files) or `dir_mode` (folders).
fn outputs_take_the_umask(umask: &str, file_mode: u32, dir_mode: u32) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("photos"), &["a", "b"], 2, 6);
    fs::create_dir(d.join("data")).unwrap();
    dataset(&d.join("data"), 20);
    let fx = fixture("compressed.npz");
    let runs: Vec<Vec<&str>> = vec![
        vec!["convert", "images", "photos", "--out", "out/images"],
        vec!["convert", "npz", fx.to_str().unwrap(), "--out", "out/npz"],
        vec![
            "convert",
            "array",
            "data/x.npy",
            "out/x_f32.npy",
            "--dtype",
            "float32",
        ],
        vec![
            "iterate",
            "data/x.npy",
            "--y",
            "data/y.npy",
            "--max-batches",
            "1",
            "--out",
            "out/aug.npy",
            "--save-to-dir",
            "out/saved",
            "--prefetch",
            "0",
        ],
        vec![
            "fit",
            "data/x.npy",
            "--featurewise-center",
            "--out",
            "out/stats.npz",
        ],
        vec![
            "preview",
            "data/x.npy",
            "--grid",
            "2x2",
            "--out",
            "out/preview.png",
        ],
        vec![
            "demo",
            "--samples",
            "40",
            "--size",
            "8x8",
            "--dir",
            "out/demo",
        ],
    ];
    fs::create_dir(d.join("out")).unwrap();
    fs::set_permissions(d.join("out"), fs::Permissions::from_mode(dir_mode)).unwrap();
    for args in &runs {
        let o = npyflow_umask(d, umask, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let found = modes_under(&d.join("out"));
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "images/x.npy",
        "images/y.npy",
        "images/classes.txt",
        "npz/images.npy",
        "x_f32.npy",
        "aug.npy",
        "aug_y.npy",
        "stats.npz",
        "preview.png",
        "demo/x.npy",
        "demo/stats.npz",
        "demo/preview.png",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(
        found
            .iter()
            .filter(|(n, _)| n.starts_with("saved/"))
            .count(),
        20
    );
    for (name, m) in &found {
        assert!(
            !name.contains("/.") && !name.starts_with('.'),
            "left behind: {name}"
        );
        let is_dir = d.join("out").join(name).is_dir();
        let want = if is_dir { dir_mode } else { file_mode };
        assert_eq!(*m, want, "{name}: {m:o} under umask {umask}");
    }
}

#[test]
fn outputs_take_the_umask_s_mode() {
    outputs_take_the_umask("022", 0o644, 0o755);
    outputs_take_the_umask("027", 0o640, 0o750);
}

#[test]
fn the_demo_folder_takes_the_umask_s_mode() {
    // Without --dir the demo makes a new folder under $TMPDIR.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" demo --samples 20 --size 8x8 --json")
        .arg(env!("CARGO_BIN_EXE_npyflow"))
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
    let demo = Path::new(v["dir"].as_str().unwrap());
    assert!(demo.starts_with(dir.path()), "{}", demo.display());
    assert_eq!(mode(demo), 0o755);
    assert_eq!(mode(&demo.join("x.npy")), 0o644);
}
