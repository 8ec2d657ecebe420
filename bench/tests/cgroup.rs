//! A real memory cgroup on this machine (root only): created in the
//! hierarchy that holds the memory controller (v1 or v2), its limit read
//! back from the kernel, a process moved in by `command`, killed by the OOM
//! killer when it allocates past the cap (and counted so), and the cgroup
//! removed on drop. Without root it checks the error says so and stops.

use std::io::Write;
use std::process::Stdio;

use npyflow_bench::cgroup::{Hierarchy, MemoryCgroup};

fn is_root() -> bool {
    // The effective uid is the second field of `Uid:` in /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap()
}

#[test]
fn a_memory_cgroup_caps_a_process_and_is_removed() {
    let cap: u64 = 32 << 20;
    if !is_root() {
        let e = MemoryCgroup::create(cap).unwrap_err();
        assert!(e.is_unsupported_here(), "{e}");
        println!("not root: {e}");
        return;
    }
    let h = Hierarchy::detect().expect("root, but no memory controller mounted");
    let cg = h.create("npyflow-bench-test", cap).unwrap();
    assert!(cg.path().starts_with(&h.root));
    assert_eq!(cg.version(), h.version);
    assert_eq!(cg.read_limit().unwrap(), Some(cap));
    assert_eq!(cg.procs().unwrap(), Vec::<u32>::new());
    assert_eq!(cg.oom_kills(), Some(0));

    // A shell that waits for a line, then holds 256 MiB of zeros in
    // memory: `tail` keeps the last "line" of /dev/zero, which has none.
    let mut child = cg
        .command("/bin/sh")
        .args([
            "-c",
            "read go; head -c 268435456 /dev/zero | tail -n 1 > /dev/null",
        ])
        .stdin(Stdio::piped())
        // sh reports the kill of `tail` ("Killed"); the test checks the counters instead.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `sh` moved itself in before running anything.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cg.procs().unwrap().contains(&child.id()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never joined"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = child.wait().unwrap();
    // The pipeline fails: tail was killed (sh reports the last command's status).
    assert!(!status.success(), "{status:?}");
    assert!(
        cg.oom_kills().unwrap() >= 1,
        "no OOM kill counted; status {status:?}"
    );
    let peak = cg.peak_bytes().unwrap();
    assert!(
        peak <= cap && peak > cap / 2,
        "peak {peak} bytes under a {cap}-byte cap"
    );
    let dir = cg.path().to_path_buf();
    drop(cg);
    assert!(!dir.exists(), "{} is still there", dir.display());
}
