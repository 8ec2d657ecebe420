//! What a newcomer types: sizes beyond the machine, folders for files,
//! negative counts, boolean flags in every form, default sizes, the demo's
//! next steps, config echoes, and the small print (reasons, legends, help).

use std::fs;
use std::path::Path;
use std::process::Command;

use npyflow::NpyArray;

use crate::{dataset, fails, image_folder, npyflow, ok, ok_json, stderr, stdout};

/// Whether the kernel refuses allocations beyond memory (overcommit
/// heuristic or strict): then an impossible size fails to allocate instead
/// of being granted and killed when touched.
fn overcommit_refuses_huge() -> bool {
    fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|s| s.trim() != "1")
}

#[test]
fn sizes_beyond_the_machine_are_errors_not_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("photos"), &["a"], 2, 4);
    dataset(d, 20);
    if !overcommit_refuses_huge() {
        println!("vm.overcommit_memory = 1 grants any allocation: nothing to check here");
        return;
    }
    let o = npyflow(
        d,
        &[
            "convert",
            "images",
            "photos",
            "--out",
            "big",
            "--size",
            "100000x100000",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    fails(
        o,
        &[
            "cannot allocate",
            "images of 100000x100000x3",
            "(size 100000x100000)",
            "not enough memory",
        ],
    );
    assert!(!d.join("big").exists(), "nothing is created");
    fails(
        npyflow(
            d,
            &[
                "preview",
                "x.npy",
                "--grid",
                "100000x100000",
                "--out",
                "p.png",
            ],
        ),
        &[
            "cannot allocate",
            "preview sheet (grid 100000x100000, cell 96)",
        ],
    );
    fails(
        npyflow(
            d,
            &["preview", "x.npy", "--cell", "4000000000", "--out", "p.png"],
        ),
        &["grid", "beyond what a picture can hold"],
    );
    assert!(!d.join("p.png").exists());
    fails(
        npyflow(d, &["iterate", "x.npy", "--prefetch", "1000000000"]),
        &["cannot allocate", "(prefetch 1000000000)"],
    );
    fails(
        npyflow(
            d,
            &[
                "demo",
                "--samples",
                "2",
                "--size",
                "1000000x1000000",
                "--dir",
                "huge",
                "--json",
            ],
        ),
        &["cannot allocate", "synthetic images of 1000000x1000000x3"],
    );
    assert!(!d.join("huge").exists(), "nothing is created");
    // Threads are not memory, but 100000 of them take minutes to start.
    fails(
        npyflow(d, &["iterate", "x.npy", "--threads", "100000"]),
        &["--threads", "at most 1024"],
    );
}

#[test]
fn messages_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("data")).unwrap();
    dataset(&d.join("data"), 20);
    for sub in [
        &["iterate"][..],
        &["fit", "--featurewise-center", "--out", "s.npz"],
        &["info"],
    ] {
        let mut args = sub.to_vec();
        args.push("data");
        fails(
            npyflow(d, &args),
            &["data: is a folder, not a .npy file; did you mean data/x.npy? (it also holds y.npy)"],
        );
    }
    fails(
        npyflow(d, &["cache", "data"]),
        &["data: is a folder; give the files in it (e.g. data/*.npy)"],
    );
    fails(
        npyflow(d, &["convert", "npz", "data", "--out", "o"]),
        &["data: is a folder, not an .npz archive"],
    );
    fs::create_dir(d.join("empty")).unwrap();
    fails(
        npyflow(d, &["iterate", "empty"]),
        &["empty: is a folder, not a .npy file"],
    );
    // A negative count is told what is wrong with it, not to write `-- -5`.
    let o = npyflow(d, &["iterate", "data/x.npy", "--batch-size", "-5"]);
    assert!(!stderr(&o).contains("-- -5"), "{}", stderr(&o));
    fails(
        o,
        &["invalid value '-5' for '--batch-size <N>'", "not negative"],
    );
    fails(
        npyflow(d, &["iterate", "data/x.npy", "--epochs", "-1"]),
        &["--epochs", "not negative"],
    );
    // Negative values where they make sense still parse.
    ok(npyflow(
        d,
        &[
            "iterate",
            "data/x.npy",
            "--rotation-range",
            "-10",
            "--cval",
            "-1",
            "--max-batches",
            "1",
        ],
    ));
    // Statistics of another channel count: the message names the file.
    fs::create_dir(d.join("gray")).unwrap();
    let o = npyflow(
        d,
        &[
            "demo",
            "--samples",
            "20",
            "--size",
            "8x8",
            "--dir",
            "rgb",
            "--json",
        ],
    );
    ok(o);
    let gray: Vec<u8> = (0..20 * 8 * 8).map(|i| (i % 256) as u8).collect();
    npyflow::npy::write_npy(
        d.join("gray/x.npy"),
        npyflow::npy::ElemType::U8,
        &[20, 8, 8, 1],
        &gray,
    )
    .unwrap();
    fails(
        npyflow(
            d,
            &[
                "iterate",
                "gray/x.npy",
                "--featurewise-center",
                "--stats",
                "rgb/stats.npz",
                "--max-batches",
                "1",
            ],
        ),
        &["rgb/stats.npz: ", "image channels", "gray/x.npy"],
    );
}

#[test]
fn boolean_options_take_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, 20);
    let order = |args: &[&str]| -> String {
        let mut all = vec!["iterate", "x.npy", "--max-batches", "1", "--json"];
        all.extend(args);
        let v = ok_json(npyflow(d, &all));
        v["order"].to_string()
    };
    let shuffled = order(&[]);
    assert_eq!(order(&["--shuffle"]), shuffled);
    for off in [
        &["--shuffle", "false"][..],
        &["--shuffle=false"],
        &["--shuffle", "no"],
        &["--shuffle", "0"],
    ] {
        assert_eq!(order(off), "\"sequential\"", "{off:?}");
    }
    assert_eq!(order(&["--shuffle", "true"]), shuffled);
    // A flag followed by the file is the flag alone.
    let v = ok_json(npyflow(
        d,
        &[
            "iterate",
            "--horizontal-flip",
            "x.npy",
            "--max-batches",
            "1",
            "--json",
        ],
    ));
    assert_eq!(v["batches"], 1);
    // Every boolean, --json included: `--json false` prints text.
    let text = ok(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--max-batches",
            "1",
            "--json",
            "false",
            "--drop-last",
            "no",
        ],
    ));
    assert!(text.contains("samples per epoch"), "{text}");
    ok(npyflow(d, &["info", "-q", "false", "x.npy", "--json=true"]));
    fails(
        npyflow(d, &["iterate", "x.npy", "--shuffle=maybe"]),
        &[
            "invalid value 'maybe' for '--shuffle [<BOOL>]'",
            "expected true or false",
        ],
    );
    // Every BOOL option in --help reads [<BOOL>] (no required `=`).
    let help = ok(npyflow(d, &["iterate", "--help"]));
    assert!(help.contains("--shuffle [<BOOL>]"), "{help}");
    assert!(!help.contains("[=<BOOL>]"), "{help}");
}

#[test]
fn convert_images_says_which_size_it_chose_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("same"), &["a", "b"], 2, 8);
    let text = ok(npyflow(d, &["convert", "images", "same", "--out", "o1"]));
    assert!(
        text.contains("size       8x8, every image's own size (--size HxW resizes)"),
        "{text}"
    );
    assert_eq!(
        NpyArray::open(d.join("o1/x.npy")).unwrap().shape(),
        &[4, 8, 8, 3]
    );
    // N is NxN, and X is x.
    for size in ["6", "6X6", "6x6"] {
        let v = ok_json(npyflow(
            d,
            &[
                "convert", "images", "same", "--out", "o2", "--size", size, "--json",
            ],
        ));
        assert_eq!(v["shape"], serde_json::json!([4, 6, 6, 3]), "{size}");
        assert_eq!(v["size_chosen"], "6x6 (--size)");
    }
    // Mixed sizes: Keras' default, said so.
    image_folder(&d.join("mixed"), &["a"], 1, 8);
    image_folder(&d.join("mixed"), &["b"], 1, 12);
    let text = ok(npyflow(d, &["convert", "images", "mixed", "--out", "o3"]));
    assert!(
        text.contains("size       256x256, Keras' default target_size: the images range from 8x8 to 12x12 (choose with --size HxW)"),
        "{text}"
    );
    let help = ok(npyflow(d, &["convert", "images", "--help"]));
    assert!(help.contains("HxW (or N for NxN)"), "{help}");
    let help = ok(npyflow(d, &["preview", "--help"]));
    assert!(help.contains("ROWSxCOLS (N for NxN)"), "{help}");
}

#[test]
fn skipped_images_are_reported_on_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("photos"), &["a", "b"], 2, 6);
    fs::write(d.join("photos/b/zz_broken.png"), b"not a png at all").unwrap();
    let o = npyflow(
        d,
        &["convert", "images", "photos", "--out", "o", "--skip-bad"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err:?}");
    assert!(
        lines[0].starts_with("npyflow: skipped photos/b/zz_broken.png: "),
        "{err}"
    );
    assert!(err.ends_with('\n') && !err.ends_with("\n\n"), "{err:?}");
    let v = ok_json(npyflow(
        d,
        &[
            "convert",
            "images",
            "photos",
            "--out",
            "o",
            "--skip-bad",
            "--json",
        ],
    ));
    let reason = v["skipped"][0]["reason"].as_str().unwrap();
    assert!(
        !reason.ends_with(char::is_whitespace) && !reason.is_empty(),
        "{reason:?}"
    );
}

#[test]
fn iterate_echoes_its_config_and_which_flag_won() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, 20);
    fs::write(
        d.join("gen.json"),
        r#"{"rotation_range": 20, "zoom_range": [0.9, 1.1], "horizontal_flip": true}"#,
    )
    .unwrap();
    let text = ok(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--config",
            "gen.json",
            "--rotation-range",
            "5",
            "--horizontal-flip",
            "--max-batches",
            "1",
        ],
    ));
    assert!(
        text.contains("\nconfig gen.json: horizontal_flip=true, zoom_range=[0.9,1.1]; --rotation-range 5.0 overrides its rotation_range=20\n"),
        "{text}"
    );
    let v = ok_json(npyflow(
        d,
        &[
            "iterate",
            "x.npy",
            "--config",
            "gen.json",
            "--rotation-range",
            "5",
            "--max-batches",
            "1",
            "--json",
        ],
    ));
    assert_eq!(
        v["config"]["applied"]["zoom_range"],
        serde_json::json!([0.9, 1.1])
    );
    assert_eq!(
        v["config"]["overridden_by_flags"],
        serde_json::json!([{"key": "rotation_range", "file": 20, "flag": 5.0}])
    );
}

#[test]
fn residency_charts_have_a_legend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, 20);
    let legend = "residency chart: [O o ] = 32 cells, each 1/32 of the data: O cached, o partly cached, blank not cached";
    for args in [
        &["info", "x.npy", "y.npy"][..],
        &["cache", "x.npy", "y.npy"],
    ] {
        let text = ok(npyflow(d, args));
        assert_eq!(text.matches(legend).count(), 1, "{args:?}: {text}");
        assert!(text.trim_end().ends_with(legend), "{text}");
    }
    let text = ok(npyflow(d, &["cache", "x.npy", "--chart-width", "8"]));
    assert!(text.contains("= 8 cells, each 1/8 of the data"), "{text}");
    assert!(!ok(npyflow(d, &["info", "x.npy", "--json"])).contains("residency chart:"));
}

/// The next steps run when pasted: plain `npyflow` when that is this binary
/// on PATH, else the way it was started, with the install command.
#[test]
fn demo_next_steps_use_a_command_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let exe = Path::new(env!("CARGO_BIN_EXE_npyflow"));
    let run = |path: &str, cargo: bool| -> String {
        let mut c = Command::new(exe);
        c.args(["demo", "--samples", "20", "--size", "8x8", "--dir", "demo"])
            .current_dir(d)
            .env("PATH", path)
            .env_remove("RUST_LOG");
        if cargo {
            c.env("CARGO", "cargo");
        } else {
            c.env_remove("CARGO");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let on_path = run(exe.parent().unwrap().to_str().unwrap(), false);
    assert!(
        on_path.contains("\n  npyflow info demo/x.npy\n"),
        "{on_path}"
    );
    assert!(!on_path.contains("not on your PATH"), "{on_path}");
    let direct = run("/usr/bin:/bin", false);
    assert!(
        direct.contains(&format!("\n  {} info demo/x.npy\n", exe.display())),
        "{direct}"
    );
    assert!(
        direct.contains("to put it there, from the repository: cargo install --path tools"),
        "{direct}"
    );
    let cargo = run("/usr/bin:/bin", true);
    assert!(
        cargo.contains("\n  cargo run -q -- info demo/x.npy\n"),
        "{cargo}"
    );
    // The suggested iterate line runs without Keras' override warning.
    let line: String = on_path
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("npyflow iterate"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', " ");
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert_eq!(args[0], "iterate", "{on_path}");
    let o = npyflow(d, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "{args:?}");
}

/// On a terminal (a pseudo-terminal from script(1)), a bar never shows an
/// empty `0/0`, and its rates are whole numbers.
#[test]
fn progress_bars_on_a_terminal_start_empty_and_count_whole_items() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("no script(1): no pseudo-terminal to draw on");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Enough samples that the run outlasts the bar's 200 ms steady tick
    // several times over at 2 million 8×8 samples a second (1.5–1.9 s
    // here): the bar is drawn mid-run.
    dataset(d, 100_000);
    let cmd = format!(
        "{} iterate x.npy --epochs 30 --rotation-range 20 --batch-size 16",
        env!("CARGO_BIN_EXE_npyflow")
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let screen = stdout(&o);
    let frames: Vec<&str> = screen
        .split(['\r', '\n'])
        .filter(|f| f.contains("batches"))
        .collect();
    assert!(
        frames.iter().any(|f| f.contains("/187,500 (")),
        "no bar drawn: {screen:?}"
    );
    for f in &frames {
        assert!(!f.contains(" 0/0"), "{f:?}");
        if let Some((rate, _)) = f.split(" (").nth(1).and_then(|r| r.split_once("/s")) {
            assert!(!rate.contains('.'), "{f:?}");
        }
    }
}
