//! End-to-end tests of the `npyflow` binary: every subcommand's success
//! path, its bad-input paths (exit status 2, one `npyflow: ...` line on
//! stderr), JSON output, and interrupted conversions.

// One module per subcommand family; helpers shared through `crate::`.
mod bench_demo;
mod convert;
mod hostile;
mod info_cache;
mod iterate;
mod modes;
mod shuffle;
mod signals;
mod usage;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use image::{Rgb, RgbImage};
use serde_json::Value;

// The tool's own dataset writer (a binary's modules cannot be imported);
// these tests use only part of it.
#[allow(dead_code)]
#[path = "../../src/synth.rs"]
mod synth;

use synth::{write_synthetic, SynthOptions};

pub fn npyflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_npyflow"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts success and parses stdout as JSON.
pub fn ok_json(o: Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts exit status 2 with exactly one stderr line `npyflow: ...` holding every needle.
pub fn fails(o: Output, needles: &[&str]) {
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {}\nstderr: {err}",
        stdout(&o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("npyflow: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing from: {err}");
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/convert")
        .join(name)
}

/// A small synthetic dataset: `x.npy` (n, 8, 8, 3) u8, `y.npy` (n,) int32.
pub fn dataset(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let o = SynthOptions {
        samples: n,
        height: 8,
        width: 8,
        channels: 3,
        classes: 4,
        seed: 3,
    };
    let p = write_synthetic(dir, &o, None).unwrap();
    (p.x, p.y)
}

/// An image folder of `per_class` PNGs per class, `side`×`side` pixels.
pub fn image_folder(root: &Path, classes: &[&str], per_class: usize, side: u32) {
    for (c, name) in classes.iter().enumerate() {
        fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..per_class {
            let img = RgbImage::from_fn(side, side, |x, y| {
                Rgb([(x * 7 + i as u32) as u8, (y * 5) as u8, (c * 60) as u8])
            });
            img.save(root.join(name).join(format!("{i:04}.png")))
                .unwrap();
        }
    }
}

#[test]
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let subcommands: &[&[&str]] = &[
        &[],
        &["info"],
        &["convert"],
        &["convert", "images"],
        &["convert", "npz"],
        &["convert", "array"],
        &["cache"],
        &["iterate"],
        &["fit"],
        &["preview"],
        &["bench"],
        &["demo"],
    ];
    for sub in subcommands {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = ok(npyflow(dir.path(), &args));
        assert!(out.contains("Usage: npyflow"), "{sub:?}: {out}");
    }
    assert!(ok(npyflow(dir.path(), &["iterate", "--help"])).contains("--rotation-range"));
    assert_eq!(npyflow(dir.path(), &[]).status.code(), Some(2));
    fails(npyflow(dir.path(), &["frobnicate"]), &["frobnicate"]);
}

#[test]
fn broken_pipe_is_success() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 10);
    let mut args = vec!["x.npy"; 2000];
    args.insert(0, "info");
    let mut child = Command::new(env!("CARGO_BIN_EXE_npyflow"))
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once: `npyflow info ... | head -0`.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("npyflow:"), "{}", stderr(&out));
}
