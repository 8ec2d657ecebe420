//! `bench` and `demo`.

use std::fs;

use npyflow::NpyArray;

use serde_json::Value;

use crate::{dataset, fails, npyflow, ok, ok_json, stderr, stdout};

/// Whether the tests run as root (the effective uid in /proc/self/status).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap()
}

/// Bounds every measured row of a file of `samples` samples and
/// `file_bytes` bytes must meet when the time limit is far off.
fn assert_full_epoch(row: &Value, samples: u64, row_bytes: u64, file_bytes: u64) {
    let label = format!(
        "{}/{}/{}/{}",
        row["cell"]["order"], row["cell"]["cache"], row["cell"]["advice"], row["cell"]["memory"]
    );
    assert_eq!(row["status"], "measured", "{label}: {row}");
    assert_eq!(row["samples"].as_u64(), Some(samples), "{label}");
    assert_eq!(row["epoch_fraction"].as_f64(), Some(1.0), "{label}");
    let secs = row["seconds"].as_f64().unwrap();
    let ips = row["images_per_s"].as_f64().unwrap();
    assert!(secs > 0.0 && secs < 60.0, "{label}: {secs} s");
    // The rates are the sample count over the wall time, in images and MB.
    assert!(
        (ips * secs / samples as f64 - 1.0).abs() < 1e-6,
        "{label}: {ips} img/s over {secs} s"
    );
    let mb = row["mb_per_s"].as_f64().unwrap();
    assert!(
        (mb * 1e6 / (ips * row_bytes as f64) - 1.0).abs() < 1e-6,
        "{label}: {mb} MB/s"
    );
    let read = row["bytes_read"].as_u64().unwrap();
    match row["cell"]["cache"].as_str().unwrap() {
        // A cold epoch reads the file once, give or take read-ahead past its end.
        "cold" => assert!(
            read <= 2 * file_bytes,
            "{label}: read {read} of {file_bytes}"
        ),
        // A warm unlimited epoch finds every page cached.
        _ if row["cell"]["memory"] == "unlimited" => {
            assert!(
                read < file_bytes / 2,
                "{label}: read {read} of {file_bytes}"
            )
        }
        _ => {}
    }
    let residency = row["residency_after"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&residency), "{label}: {residency}");
    assert!(row["skipped"].is_null(), "{label}");
}

#[test]
fn bench_runs_a_small_matrix() {
    let dir = tempfile::tempdir().unwrap();
    // 384 KiB: large enough that a stray page or two read from storage by
    // the process during a warm epoch (its own code, paged back in on a
    // busy machine) stays well under the warm bound.
    let n: u64 = 2048;
    dataset(dir.path(), n as usize);
    let file_bytes = fs::metadata(dir.path().join("x.npy")).unwrap().len();
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
            "--no-references",
            "--seconds",
            "30",
            "--batch-size",
            "16",
            "--csv",
            "b.csv",
            "--json",
        ],
    ));
    assert_eq!(v["file_bytes"].as_u64(), Some(file_bytes));
    assert_eq!(v["row_bytes"], 8 * 8 * 3);
    assert!(v["cap"].is_null());
    let rows = v["rows"].as_array().unwrap();
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["cell"]["order"].as_str().unwrap(),
                r["cell"]["cache"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(labels, ["sequential/warm", "shuffle/warm"]);
    for r in rows {
        assert_full_epoch(r, n, 192, file_bytes);
        // No references were measured, so no fraction of one.
        assert!(r["of_reference"].is_null(), "{r}");
    }
    let csv = fs::read_to_string(dir.path().join("b.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with(
            "order,cache,advice,memory,limit_bytes,samples,epoch_fraction,seconds,images_per_s,\
         mb_per_s,bytes_read,major_faults,first_batch_ms,peak_anon_bytes,residency_after,skipped,\
         status,reference,of_reference,device,read_ahead_kb"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("sequential,warm,kernel,unlimited,,{n},1.0,")),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!("shuffle,warm,kernel,unlimited,,{n},1.0,")),
        "{}",
        lines[2]
    );
    fails(
        npyflow(dir.path(), &["bench", "x.npy", "--orders", "zigzag"]),
        &["zigzag"],
    );
    fails(npyflow(dir.path(), &["bench", "y.npy"]), &["rank-4"]);
    fails(
        npyflow(dir.path(), &["bench", "x.npy", "--memory-limit", "0"]),
        &["--memory-limit", "positive"],
    );
}

#[test]
fn bench_files_take_the_umask_s_mode() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 64);
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 027 && exec \"$0\" bench x.npy --orders sequential --caches warm --advice kernel --memory-limit none --no-references --csv b.csv --plot b.png")
        .arg(env!("CARGO_BIN_EXE_npyflow"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = ok(out);
    assert!(
        text.contains("wrote b.csv") && text.contains("wrote b.png"),
        "{text}"
    );
    for f in ["b.csv", "b.png"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "{f}: {mode:o}");
    }
    // Nothing but the dataset and the two outputs: no temporary left behind.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b.csv", "b.png", "classes.txt", "x.npy", "y.npy"]);
}

#[test]
fn bench_with_defaults_runs_every_row_on_a_small_file() {
    let dir = tempfile::tempdir().unwrap();
    // 9,600 samples of 8x8x3: the 1.8 MB file whose default cap used to be "0 MiB".
    dataset(dir.path(), 9600);
    let file_bytes = fs::metadata(dir.path().join("x.npy")).unwrap().len();
    assert_eq!(file_bytes, 1_843_328);
    let out = npyflow(dir.path(), &["bench", "x.npy", "--json"]);
    let v = ok_json(out);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 24);
    let cap = &v["cap"];
    let limit = cap["limit"].as_u64().unwrap();
    let refs = &v["references"];
    // Any disk or page cache this runs on: between 100 kB/s and 100 GB/s,
    // between 10 and 100 million reads a second.
    let seq = refs["sequential_bytes_per_s"].as_f64().unwrap();
    assert!((1e5..1e11).contains(&seq), "{refs}");
    let iops = refs["random_iops"].as_f64().unwrap();
    assert!((10.0..1e8).contains(&iops), "{refs}");
    // 192-byte rows from offset 128: 2 of every 64 rows straddle a page boundary.
    assert_eq!(refs["pages_per_sample"].as_f64(), Some(66.0 / 64.0));
    assert!(
        v["device"]["dev"].as_str().unwrap().contains(':'),
        "{}",
        v["device"]
    );
    if !is_root() {
        for r in &rows[12..] {
            assert_eq!(r["status"], "skipped", "{r}");
            assert!(r["skipped"].as_str().unwrap().contains("needs root"), "{r}");
        }
    }
    let measured = if is_root() { &rows[..] } else { &rows[..12] };
    for r in measured {
        assert_full_epoch(r, 9600, 192, file_bytes);
        // The fraction is the row's rate over its reference: the cold
        // sequential read in rows of 192 bytes, or random IOPS over pages
        // per sample.
        let reference = if r["cell"]["order"] == "shuffle" {
            iops / (66.0 / 64.0)
        } else {
            seq / 192.0
        };
        let want = r["images_per_s"].as_f64().unwrap() / reference;
        let got = r["of_reference"].as_f64().unwrap();
        assert!(
            got > 0.0 && (got - want).abs() <= 1e-9 * want,
            "{r}: {want}"
        );
        let want = if r["cell"]["order"] == "shuffle" {
            "random"
        } else {
            "sequential"
        };
        assert_eq!(r["reference"], want, "{r}");
    }
    // The cap rule: the matched rows' peak + the batches in flight + 16 MiB
    // + a quarter of the file, rounded up to a MiB; never below what the
    // matched rows used.
    let peak = rows[..12]
        .iter()
        .filter(|r| r["cell"]["advice"] == "matched")
        .map(|r| r["peak_anon_bytes"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(cap["peak_anon_bytes"].as_u64(), Some(peak));
    assert_eq!(cap["file_share_bytes"].as_u64(), Some(file_bytes / 4));
    assert_eq!(cap["runtime_bytes"].as_u64(), Some(16 << 20));
    // 4 batches of 64 rows, each row within one page (2 counted), capped by the file.
    assert_eq!(
        cap["in_flight_bytes"].as_u64(),
        Some((4 * 64 * 2 * 4096u64).min(file_bytes))
    );
    let sum = peak + (4 * 64 * 2 * 4096u64).min(file_bytes) + (16 << 20) + file_bytes / 4;
    assert_eq!(limit, sum.div_ceil(1 << 20) << 20);
    for r in &rows[12..] {
        assert_eq!(r["limit"].as_u64(), Some(limit), "{r}");
    }
    // The table says the same in words.
    let text = ok(npyflow(
        dir.path(),
        &[
            "bench",
            "x.npy",
            "--orders",
            "blocks",
            "--caches",
            "cold",
            "--reference-seconds",
            "0.5",
        ],
    ));
    assert!(text.contains("device: "), "{text}");
    assert!(text.contains("sequential reference: "), "{text}");
    assert!(text.contains("% seq"), "{text}");
    let cap_mib: u64 = text
        .split("memory cap: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no memory cap line: {text}"));
    assert!(cap_mib > 16, "{text}");
    assert!(!text.contains("not run") || !is_root(), "{text}");
}

#[test]
fn a_row_that_did_not_run_fails_the_run_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 600);
    // 1 MiB cannot hold the measuring child itself.
    let out = npyflow(
        dir.path(),
        &[
            "bench",
            "x.npy",
            "--orders",
            "shuffle",
            "--caches",
            "cold",
            "--advice",
            "matched",
            "--memory-limit",
            "1M",
            "--no-references",
            "--seconds",
            "5",
            "--plot",
            "b.png",
        ],
    );
    let table = stdout(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{table}\n{err}");
    // The chart is still drawn, the missing row hatched (not a bar of 0).
    let chart = image::open(dir.path().join("b.png")).unwrap().to_rgb8();
    let hatched = chart.pixels().filter(|p| p.0 == [205, 205, 205]).count();
    assert!(hatched > 100, "no hatched row in the chart");
    assert!(table.contains("wrote b.png"), "{table}");
    let line = err.lines().last().unwrap();
    let reason = line
        .strip_prefix("npyflow: 1 of 2 rows did not run: shuffle/cold/matched/cgroup: ")
        .unwrap_or_else(|| panic!("{err}"));
    if is_root() {
        assert_eq!(reason, "killed by the OOM killer at 1 MiB, peak 1 MiB");
    } else {
        assert!(reason.starts_with("needs root"), "{reason}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("shuffle     cold  matched cgroup 1 MiB "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.ends_with(&format!(" not run: {reason}")), "{row}");
    assert!(
        table.contains("1 row(s) that should have run did not"),
        "{table}"
    );
    // The unlimited row still ran, in full.
    let unlimited = table
        .lines()
        .find(|l| l.starts_with("shuffle     cold  matched unlimited"))
        .unwrap();
    assert!(unlimited.contains("100%"), "{unlimited}");
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
    // 300 images of 16×16 in well under a minute.
    assert!(v["throughput"].as_f64().unwrap() > 5.0, "{v}");
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

/// Ctrl-C while a row runs in its memory cgroup: the measuring child is
/// killed and the cgroup removed before the tool exits with 130.
#[test]
fn ctrl_c_during_bench_leaves_no_cgroup_behind() {
    let root = std::path::Path::new("/sys/fs/cgroup/memory");
    let root = if root.is_dir() {
        root.to_path_buf()
    } else {
        std::path::PathBuf::from("/sys/fs/cgroup")
    };
    if !is_root() {
        println!("not root: the benchmark makes no cgroups, nothing to check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Large enough that each row runs for its whole time cap (3 s), so the
    // stop below lands while the cgroup row works, however loaded the machine.
    dataset(dir.path(), 400_000);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_npyflow"))
        .args([
            "bench",
            "x.npy",
            "--orders",
            "shuffle",
            "--caches",
            "cold",
            "--advice",
            "kernel",
            "--memory-limit",
            "256M",
            "--no-references",
            "--seconds",
            "3",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("npyflow-bench-{}-", child.id());
    let kill = |sig: &str, pid: &str| {
        std::process::Command::new("kill")
            .args([sig, pid])
            .status()
            .unwrap();
    };
    let started = std::time::Instant::now();
    let (cgroup, procs) = loop {
        let found = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            });
        if let Some(cg) = found {
            let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                // Frozen, so it is still in there when the signal arrives.
                for p in procs.split_whitespace() {
                    kill("-STOP", p);
                }
                // A process caught as it exited cannot be frozen: look again.
                let stopped = |p: &str| {
                    fs::read_to_string(format!("/proc/{p}/stat"))
                        .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('T')))
                };
                if procs.split_whitespace().all(stopped) {
                    break (cg, procs);
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("bench ended ({status}) before a cgroup row ran");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    kill("-INT", &child.id().to_string());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("npyflow: interrupted: kept nothing new"),
        "{}",
        stderr(&out)
    );
    assert!(!cgroup.exists(), "{} is left", cgroup.display());
    for p in procs.split_whitespace() {
        // Killed (and reaped by init once orphaned).
        let gone = (0..200).any(|_| {
            let alive = std::path::Path::new(&format!("/proc/{p}")).exists();
            std::thread::sleep(std::time::Duration::from_millis(10));
            !alive
        });
        assert!(gone, "process {p} of the cgroup still runs");
    }
}

/// The default cap measures on a file of tens of MB too (a tenth of the
/// 337 MB where 11 of 12 capped rows used to be killed): every row runs.
#[test]
fn bench_defaults_measure_every_row_of_a_larger_file() {
    let dir = tempfile::tempdir().unwrap();
    let opts = crate::synth::SynthOptions {
        samples: 11_000,
        height: 32,
        width: 32,
        channels: 3,
        classes: 4,
        seed: 5,
    };
    crate::synth::write_synthetic(dir.path(), &opts, None).unwrap();
    // Short rows: a cold shuffle of this file takes longer than that here,
    // and a row stopped by the time limit is still a measured row.
    let out = npyflow(
        dir.path(),
        &[
            "bench",
            "x.npy",
            "--seconds",
            "3",
            "--reference-seconds",
            "0.5",
            "--json",
        ],
    );
    let err = stderr(&out);
    let v = ok_json(out);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 24, "{err}");
    let file_bytes = v["file_bytes"].as_u64().unwrap();
    assert!(file_bytes > 33_000_000, "{file_bytes}");
    let measured = if is_root() { &rows[..] } else { &rows[..12] };
    for r in measured {
        assert_eq!(r["status"], "measured", "{r}");
        assert!(r["skipped"].is_null(), "{r}");
        assert!(r["samples"].as_u64().unwrap() > 0, "{r}");
        assert!(r["images_per_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    if is_root() {
        let cap = v["cap"]["limit"].as_u64().unwrap();
        // At least the file's quarter above what the matched rows used.
        assert!(cap > file_bytes / 4 + (16 << 20), "cap {cap}");
    }
}
