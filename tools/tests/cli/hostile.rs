//! `info --verify`, and hostile inputs given to every command that opens a
//! file (`info`, `iterate`, `convert array`, `convert npz`, `cache`): each
//! exits with status 2 and one line naming the file, in bounded time.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{dataset, fails, fixture, npyflow, ok, ok_json};

/// Every command that opens `input` (a path relative to `dir`).
fn commands(input: &str) -> Vec<Vec<String>> {
    let cmds: [&[&str]; 6] = [
        &["info", input],
        &["info", input, "--verify"],
        &["iterate", input],
        &["convert", "array", input, "out.npy"],
        &["convert", "npz", input, "--out", "out"],
        &["cache", input],
    ];
    cmds.iter()
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// Runs the tool and kills it (failing the test) if it has not exited
/// within `secs` seconds: a command that blocks on its input must fail the
/// suite, not hang it.
fn npyflow_within(dir: &Path, args: &[String], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_npyflow"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`npyflow {}` still running after {secs} s: it blocks",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `fixture` copied into `dir` as `name` with the central directory's
/// CRC-32 of member `n` replaced by `crc`.
fn with_recorded_crc(fixture_path: &Path, dir: &Path, name: &str, n: usize, crc: u32) {
    let mut bytes = fs::read(fixture_path).unwrap();
    let at = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .nth(n)
        .map(|(i, _)| i + 16)
        .unwrap();
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn info_verify_checks_crcs_and_names_the_damaged_member() {
    let dir = tempfile::tempdir().unwrap();
    for archive in ["stored.npz", "compressed.npz"] {
        let path = fixture(archive);
        let v = ok_json(npyflow(
            dir.path(),
            &["info", path.to_str().unwrap(), "--verify", "--json"],
        ));
        assert_eq!(v.as_array().unwrap().len(), 4, "{archive}");
        for m in v.as_array().unwrap() {
            assert_eq!(m["verified"]["check"], "crc32", "{archive}: {m}");
            assert_eq!(m["verified"]["crc32"].as_str().unwrap().len(), 8);
        }
        let text = ok(npyflow(
            dir.path(),
            &["info", path.to_str().unwrap(), "--verify"],
        ));
        assert_eq!(text.matches("matches the archive").count(), 4, "{text}");
        // Without --verify, nothing is claimed.
        let text = ok(npyflow(dir.path(), &["info", path.to_str().unwrap()]));
        assert!(!text.contains("verified"), "{text}");

        // The labels member (index 1) recorded with a wrong CRC.
        let bad = format!("bad_{archive}");
        with_recorded_crc(&path, dir.path(), &bad, 1, 0xdead_beef);
        // Opening and describing do not read the data: no complaint.
        ok(npyflow(dir.path(), &["info", &bad]));
        let o = npyflow(dir.path(), &["info", &bad, "--verify"]);
        fails(
            o,
            &[&bad, "member `labels.npy`", "expected deadbeef, found "],
        );
        // The extractor checks as it copies.
        fails(
            npyflow(dir.path(), &["convert", "npz", &bad, "--out", "x"]),
            &[&bad, "member `labels.npy`", "expected deadbeef"],
        );
        assert!(!dir.path().join("x").join("labels.npy").exists());
    }
}

#[test]
fn info_verify_reads_a_npy_through() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 10);
    let v = ok_json(npyflow(
        dir.path(),
        &["info", "x.npy", "--verify", "--json"],
    ));
    assert_eq!(v[0]["verified"]["check"], "read");
    assert_eq!(v[0]["verified"]["bytes"], 10 * 8 * 8 * 3);
    let text = ok(npyflow(dir.path(), &["info", "x.npy", "--verify"]));
    assert!(
        text.contains("verified    all 1.88 KiB of data read (a .npy has no checksum)"),
        "{text}"
    );
}

fn assert_all_refuse(dir: &Path, input: &str, needles: &[&str]) {
    assert_refuse(dir, commands(input), needles);
}

fn assert_refuse(dir: &Path, commands: Vec<Vec<String>>, needles: &[&str]) {
    for args in commands {
        let o = npyflow_within(dir, &args, 30);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let line = err.lines().last().unwrap_or("");
        assert!(line.starts_with("npyflow: "), "{args:?}: {err}");
        for n in needles {
            assert!(line.contains(n), "{args:?}: {n:?} missing from {err}");
        }
    }
}

#[test]
fn a_fifo_given_as_input_is_refused_at_once_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("mkfifo")
        .arg(dir.path().join("x.npy"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_all_refuse(
        dir.path(),
        "x.npy",
        &["x.npy: is a FIFO (named pipe), not a regular file"],
    );
}

#[test]
fn a_device_given_as_input_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for dev in ["/dev/null", "/dev/zero"] {
        assert_all_refuse(
            dir.path(),
            dev,
            &[&format!("{dev}: is a character device, not a regular file")],
        );
    }
}

#[test]
fn a_symlink_loop_given_as_input_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("b.npy", dir.path().join("a.npy")).unwrap();
    std::os::unix::fs::symlink("a.npy", dir.path().join("b.npy")).unwrap();
    assert_all_refuse(
        dir.path(),
        "a.npy",
        &["a.npy", "Too many levels of symbolic links"],
    );
}

#[test]
fn a_hostile_header_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    // Format 3 with a header length of 4 GiB - 1.
    let mut bytes = b"\x93NUMPY\x03\x00".to_vec();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(b"{'descr': '|u1'");
    fs::write(dir.path().join("h.npy"), bytes).unwrap();
    // The commands that read a header (`convert npz` wants an archive,
    // `cache` reads no header).
    let readers = commands("h.npy")
        .into_iter()
        .filter(|c| c[1] != "npz" && c[0] != "cache")
        .collect();
    assert_refuse(
        dir.path(),
        readers,
        &["h.npy", "header length 4294967295 exceeds 1048576 bytes"],
    );
}

/// Whether the tests run as root (the owner of /proc/self is the process's
/// effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn a_file_without_read_permission_is_refused_by_every_command() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dataset(dir.path(), 4);
    fs::set_permissions(dir.path().join("x.npy"), fs::Permissions::from_mode(0o000)).unwrap();
    for args in commands("x.npy") {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_npyflow"));
        cmd.args(&args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG");
        if is_root() {
            // Root reads anything: run the tool as `nobody`.
            cmd.uid(65534).gid(65534);
        }
        fails(cmd.output().unwrap(), &["x.npy", "Permission denied"]);
    }
}
