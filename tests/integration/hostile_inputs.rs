//! Limits a hostile input can reach, each refused by name in bounded time
//! and memory: a header length at the format-3 4 GiB limit, shapes whose
//! byte count overflows, a 100 KB dtype string, an archive of a million
//! members, a symlink loop, a FIFO, a device, a file without read
//! permission. Every open path of the library is tried: `NpyArray` with
//! both sources, `NpzArchive`, the extractor and the page-cache helpers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use npyflow::cache::{evict_file, file_residency, warm_file};
use npyflow::convert::{extract_npz, npz_member_header};
use npyflow::npy::{parse_header, OpenOptions, SourceKind, MAGIC};
use npyflow::{Error, ErrorKind, NpyArray, NpzArchive};

const BOTH: [SourceKind; 2] = [SourceKind::Mmap, SourceKind::Read];

fn open(path: &Path, source: SourceKind) -> Result<NpyArray, Error> {
    NpyArray::open_with(
        path,
        OpenOptions {
            source,
            ..OpenOptions::default()
        },
    )
}

/// Runs `f` on another thread and fails (instead of hanging the suite)
/// when it does not return within `secs` seconds.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not return within {secs} s (it blocks)"),
    }
}

/// A `.npy` file of version `major` whose header (`dict`, unpadded) declares
/// `header_len` bytes, followed by `extra` zero bytes (sparse).
fn npy_with(dir: &Path, name: &str, major: u8, header_len: u32, dict: &str, extra: u64) -> PathBuf {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&[major, 0]);
    match major {
        1 => bytes.extend_from_slice(&(header_len as u16).to_le_bytes()),
        _ => bytes.extend_from_slice(&header_len.to_le_bytes()),
    }
    bytes.extend_from_slice(dict.as_bytes());
    let path = dir.join(name);
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(&bytes).unwrap();
    f.set_len(bytes.len() as u64 + extra).unwrap();
    path
}

/// Every library entry point that opens `path`, with its outcome.
fn every_open(path: &Path) -> Vec<(&'static str, Result<(), Error>)> {
    let dir = tempfile::tempdir().unwrap();
    vec![
        ("NpyArray mmap", open(path, SourceKind::Mmap).map(drop)),
        ("NpyArray read", open(path, SourceKind::Read).map(drop)),
        ("NpzArchive", NpzArchive::open(path).map(drop)),
        (
            "extract_npz",
            extract_npz(path, dir.path().join("out"), None).map(drop),
        ),
        ("npz_member_header", npz_member_header(path, "x").map(drop)),
        ("file_residency", file_residency(path).map(drop)),
        ("warm_file", warm_file(path)),
        ("evict_file", evict_file(path)),
    ]
}

#[test]
fn a_header_length_at_the_format_3_limit_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    // 4 GiB - 1 of header announced, and (sparsely) present: a reader that
    // believed the length would allocate and read 4 GiB.
    let path = npy_with(
        dir.path(),
        "huge_header.npy",
        3,
        u32::MAX,
        "{'descr': '|u1'",
        u32::MAX as u64,
    );
    for source in BOTH {
        let started = Instant::now();
        let err = open(&path, source).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::BadHeader { path: p, reason }
                if p == &path && reason == "header length 4294967295 exceeds 1048576 bytes"),
            "{source:?}: {err}"
        );
        // Reading 4 GiB, even of holes, takes far longer than this.
        assert!(started.elapsed() < Duration::from_secs(2), "{source:?}");
    }
    // The pure parser stops at the length field too.
    let head = fs::read(&path).map(|b| b[..64].to_vec()).unwrap();
    let err = parse_header(&head, &path).unwrap_err();
    assert!(
        err.to_string().contains("header length 4294967295 exceeds"),
        "{err}"
    );
}

#[test]
fn shapes_whose_byte_count_overflows_are_size_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u64>); 4] = [
        // Element count overflows u64.
        (
            "(4294967296, 4294967296, 16)",
            vec![4294967296, 4294967296, 16],
        ),
        // Element count fits, bytes (x 8) do not.
        ("(2305843009213693952,)", vec![2305843009213693952]),
        // Bytes fit in u64 but not in isize (the largest view).
        ("(1152921504606846976,)", vec![1152921504606846976]),
        // A zero dimension does not hide an overflowing row.
        (
            "(0, 4294967296, 4294967296)",
            vec![0, 4294967296, 4294967296],
        ),
    ];
    for (i, (text, shape)) in cases.iter().enumerate() {
        let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {text}, }}");
        let path = npy_with(
            dir.path(),
            &format!("o{i}.npy"),
            1,
            dict.len() as u32,
            &dict,
            0,
        );
        for source in BOTH {
            let err = open(&path, source).unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::SizeOverflow { path: p, shape: s } if p == &path && s == shape),
                "{text} {source:?}: {err}"
            );
            assert!(err.to_string().contains(&format!("{shape:?}")), "{err}");
        }
    }
    // A shape of 200 000 dimensions of 2 overflows; its message stays short.
    let dims = vec!["2"; 200_000].join(",");
    let dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({dims}), }}");
    let path = npy_with(dir.path(), "rank.npy", 3, dict.len() as u32, &dict, 0);
    let err = open(&path, SourceKind::Read).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::SizeOverflow { shape, .. } if shape.len() == 200_000),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("and 199984 more dimensions, 200000 in all"),
        "{text}"
    );
    assert!(text.len() < 300, "{} bytes", text.len());
}

#[test]
fn a_dtype_string_of_100_kb_is_refused_with_a_short_message() {
    let dir = tempfile::tempdir().unwrap();
    let descr = "<".to_string() + &"f".repeat(100_000);
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (3,), }}");
    let path = npy_with(dir.path(), "dtype.npy", 3, dict.len() as u32, &dict, 0);
    for source in BOTH {
        let started = Instant::now();
        let err = open(&path, source).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{source:?}");
        match err.kind() {
            ErrorKind::UnsupportedDtype { path: p, descr } => {
                assert_eq!(p, &path);
                assert!(descr.starts_with("'<fff"), "{descr}");
                assert!(descr.ends_with("... (100003 bytes in all)"), "{descr}");
            }
            other => panic!("{source:?}: expected UnsupportedDtype, got {other:?}"),
        }
        assert!(err.to_string().len() < 400, "{err}");
    }
    // A 100 KB unknown key: BadHeader, as short.
    let dict = format!("{{'{}': True}}", "k".repeat(100_000));
    let path = npy_with(dir.path(), "key.npy", 3, dict.len() as u32, &dict, 0);
    let err = open(&path, SourceKind::Read).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::BadHeader { reason, .. }
            if reason.starts_with("unexpected key 'kkk") && reason.ends_with("... (100017 bytes in all)")),
        "{err}"
    );
    assert!(err.to_string().len() < 400, "{err}");
}

/// An archive of `n` stored, empty members `0.npy`, `1.npy`, ...
fn many_members(path: &Path, n: usize) {
    use zip::write::SimpleFileOptions;
    let file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for i in 0..n {
        zip.start_file(format!("{i}.npy"), options).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_million_member_archive_is_refused_by_count_before_listing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.npz");
    let started = Instant::now();
    many_members(&path, 1_000_000);
    let made = started.elapsed();
    let started = Instant::now();
    let err = NpzArchive::open(&path).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err.kind(), ErrorKind::Npz { path: p, reason } if p == &path
            && reason.starts_with("holds 1000000 members, more than the 65536")),
        "{err}"
    );
    let err = extract_npz(&path, dir.path().join("out"), None).unwrap_err();
    assert!(err.to_string().contains("holds 1000000 members"), "{err}");
    // Refused from the directory's end record, before any entry is parsed.
    assert!(
        took < Duration::from_secs(1),
        "{took:?} (writing took {made:?})"
    );
    // At the limit the archive lists, in time linear in its size.
    let path = dir.path().join("limit.npz");
    many_members(&path, 65_536);
    let started = Instant::now();
    let archive = NpzArchive::open(&path).unwrap();
    assert_eq!(archive.members().len(), 65_536);
    assert_eq!(archive.members()[65_535].name, "65535.npy");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(archive.verify(|_, _| {}).unwrap(), 0);
}

#[test]
fn a_symlink_loop_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    let b = dir.path().join("b.npy");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    for (what, r) in every_open(&a) {
        let err = r.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Io { path, source } if path == &a
                && source.raw_os_error() == Some(libc::ELOOP)),
            "{what}: {err}"
        );
        assert!(
            err.to_string().starts_with(&format!("{}: ", a.display())),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_fifo_is_refused_at_once_on_every_open_path() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("x.npy");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // No writer ever opens the FIFO: a blocking open would wait forever.
    let outcomes = within(20, "opening a FIFO", {
        let fifo = fifo.clone();
        move || every_open(&fifo)
    });
    for (what, r) in outcomes {
        let err = r.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::NotAFile { path, file_type } if path == &fifo
                && *file_type == "a FIFO (named pipe)"),
            "{what}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: is a FIFO (named pipe), not a regular file; npyflow reads .npy and .npz files",
                fifo.display()
            ),
            "{what}"
        );
    }
}

#[test]
fn devices_are_refused_as_not_files() {
    for dev in ["/dev/null", "/dev/zero"] {
        let dev = Path::new(dev);
        let outcomes = within(20, "opening a device", move || every_open(dev));
        for (what, r) in outcomes {
            let err = r.unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::NotAFile { path, file_type } if path == dev
                    && *file_type == "a character device"),
                "{what} {}: {err}",
                dev.display()
            );
        }
    }
}

/// Set by [`a_file_without_read_permission_is_permission_denied`] when it
/// runs itself again as an unprivileged user: the path to check.
const UNREADABLE_ENV: &str = "NPYFLOW_TEST_UNREADABLE_FILE";

#[test]
fn a_file_without_read_permission_is_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    if let Some(path) = std::env::var_os(UNREADABLE_ENV) {
        // The unprivileged run of this same test.
        return check_unreadable(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("x.npy");
    npyflow::npy::write_npy(&path, npyflow::npy::ElemType::U8, &[2, 2], &[1, 2, 3, 4]).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    // /proc/self belongs to the process's effective user.
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if root.unwrap_or(false) {
        // Root reads anything: this test runs itself again as `nobody`.
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "hostile_inputs::a_file_without_read_permission_is_permission_denied",
                "--test-threads=1",
            ])
            .env(UNREADABLE_ENV, &path)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        check_unreadable(&path);
    }
}

fn check_unreadable(path: &Path) {
    for (what, r) in every_open(path) {
        let err = r.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Io { path: p, source } if p == path
                && source.kind() == std::io::ErrorKind::PermissionDenied),
            "{what}: {err}"
        );
        assert!(
            err.to_string() == format!("{}: Permission denied (os error 13)", path.display()),
            "{what}: {err}"
        );
    }
}
