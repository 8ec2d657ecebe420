//! Ctrl-C and SIGTERM: real signals sent to a running `npyflow`; the
//! temporary files of the writes in progress are removed, one line says
//! what was kept, and the exit status is 128 + the signal. A later run
//! removes the temporary files a killed run left.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use npyflow::npy::{write_npy, ElemType};
use npyflow::NpyArray;

use crate::{dataset, image_folder, npyflow, ok, stderr};

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_npyflow"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Sends `signal` (a name `kill` knows: INT, TERM, STOP, CONT) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// The hidden temporary files in `dir`.
fn partials(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with('.') && n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits until `dir` holds a temporary file of `name`, then freezes the
/// child (SIGSTOP) so that it is still mid-write when `sig` arrives, sends
/// `sig`, lets it go on (SIGCONT) and returns its exit code and stderr.
fn interrupt_while_writing(mut child: Child, dir: &Path, name: &str, sig: &str) -> (i32, String) {
    let prefix = format!(".{name}.");
    let started = Instant::now();
    loop {
        if partials(dir).iter().any(|p| p.starts_with(&prefix)) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "finished ({status}) before writing {name}: {}",
                stderr(&out)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no {prefix}*.partial in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, "STOP");
    // The temporary file is there while the process is frozen mid-write.
    assert!(partials(dir).iter().any(|p| p.starts_with(&prefix)));
    signal(&child, sig);
    signal(&child, "CONT");
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), stderr(&out))
}

#[test]
fn ctrl_c_during_convert_images_removes_the_partial_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("photos"), &["a", "b", "c"], 60, 64);
    let child = spawn(
        d,
        &[
            "convert", "images", "photos", "--out", "out", "--size", "256x256", "--filter",
            "lanczos3",
        ],
    );
    let (code, err) = interrupt_while_writing(child, &d.join("out"), "x.npy", "INT");
    assert_eq!(code, 130, "{err}");
    assert_eq!(
        err,
        "npyflow: interrupted: kept nothing new; not written: out/x.npy, its partial file removed\n"
    );
    assert_eq!(partials(&d.join("out")), Vec::<String>::new());
    assert!(!d.join("out/x.npy").exists());
}

#[test]
fn ctrl_c_during_an_in_place_conversion_keeps_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 2000 images of 64x64x3 (25 MB) rewritten in place as float32 (98 MB).
    let n = 2000 * 64 * 64 * 3;
    let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    write_npy(d.join("x.npy"), ElemType::U8, &[2000, 64, 64, 3], &bytes).unwrap();
    let child = spawn(
        d,
        &["convert", "array", "x.npy", "x.npy", "--dtype", "float32"],
    );
    let (code, err) = interrupt_while_writing(child, d, "x.npy", "INT");
    assert_eq!(code, 130, "{err}");
    assert_eq!(
        err,
        "npyflow: interrupted: kept nothing new; not written: x.npy (left as it was), its partial file removed\n"
    );
    assert_eq!(partials(d), Vec::<String>::new());
    let x = NpyArray::open(d.join("x.npy")).unwrap();
    assert_eq!(x.dtype().elem, ElemType::U8);
    assert_eq!(x.data_bytes().unwrap(), &bytes[..]);
}

#[test]
fn sigterm_during_iterate_says_what_was_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, 64);
    // Enough epochs to run for minutes; the images saved so far are kept.
    let child = spawn(
        d,
        &[
            "iterate",
            "x.npy",
            "--y",
            "y.npy",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
            "--out",
            "aug.npy",
            "--save-to-dir",
            "saved",
        ],
    );
    let (code, err) = interrupt_while_writing(child, d, "aug.npy", "TERM");
    assert_eq!(code, 143, "{err}");
    let saved = fs::read_dir(d.join("saved")).unwrap().count();
    let kept = if saved > 4 {
        format!("{saved} files in saved")
    } else {
        let mut names: Vec<String> = fs::read_dir(d.join("saved"))
            .unwrap()
            .map(|e| format!("saved/{}", e.unwrap().file_name().into_string().unwrap()))
            .collect();
        names.sort();
        names.join(", ")
    };
    let kept = if saved == 0 {
        "kept nothing new".to_string()
    } else {
        format!("kept {kept} (complete)")
    };
    let line = err.strip_suffix('\n').unwrap_or_else(|| panic!("{err}"));
    assert!(!line.contains('\n'), "one line: {err}");
    let rest = line
        .strip_prefix(&format!(
            "npyflow: terminated (SIGTERM): {kept}; not written: "
        ))
        .unwrap_or_else(|| panic!("{err}"))
        .strip_suffix(", their partial files removed")
        .unwrap_or_else(|| panic!("{err}"));
    // An image being saved at that moment is not written either.
    let unwritten: Vec<&str> = rest
        .split(", ")
        .filter(|p| !p.starts_with("saved/"))
        .collect();
    assert_eq!(unwritten, ["aug.npy", "aug_y.npy"], "{err}");
    assert_eq!(partials(d), Vec::<String>::new());
    assert_eq!(partials(&d.join("saved")), Vec::<String>::new());
    assert!(!d.join("aug.npy").exists() && !d.join("aug_y.npy").exists());
}

#[test]
fn a_later_run_removes_the_stale_partials_of_its_outputs_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("photos"), &["a", "b"], 2, 6);
    let out = d.join("out");
    fs::create_dir(&out).unwrap();
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    let make = |name: &str, modified: Option<SystemTime>| -> PathBuf {
        let p = out.join(name);
        fs::write(&p, vec![0u8; 4096]).unwrap();
        if let Some(t) = modified {
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        p
    };
    // Left by killed runs: removed.
    let stale = [
        make(".x.npy.Ab12Cd.partial", Some(day_ago)),
        make(".y.npy.zzzzzz.partial", Some(day_ago)),
        make(".classes.txt.000000.partial", Some(day_ago)),
    ];
    // Not ours, or not stale: kept.
    let kept = [
        make(".x.npy.Ab12Cd.partial.bak", Some(day_ago)),
        make(".x.npy.Ab12C.partial", Some(day_ago)),
        make(".other.npy.Ab12Cd.partial", Some(day_ago)),
        make("x.npy.Ab12Cd.partial", Some(day_ago)),
        // Written just now: a run still going elsewhere.
        make(".x.npy.fresh1.partial", None),
        // Locked by a live writer (flock(1) holds it while it sleeps).
        make(".x.npy.locked.partial", Some(day_ago)),
    ];
    let ready = d.join("locked");
    // -o: the lock stays with flock(1) itself, released when it is killed.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&kept[5])
        .arg("sh")
        .arg("-c")
        .arg(format!("touch {}; exec sleep 20", ready.display()))
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "flock(1) did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    ok(npyflow(d, &["convert", "images", "photos", "--out", "out"]));
    let _ = holder.kill();
    let _ = holder.wait();
    for p in &stale {
        assert!(!p.exists(), "{} was not removed", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} was removed", p.display());
    }
    assert_eq!(NpyArray::open(out.join("x.npy")).unwrap().len(), 4);
}
