//! Every order, `fit`, the page budget and `convert array` on a RAM-backed
//! block device with Linux's default 128 KiB read-ahead (what a laptop's
//! NVMe drive gets): an ext4 file system on a loop device over a file in
//! `/dev/shm`, as `bench/loopdev.sh` makes for the benchmarks. The reads
//! there go through device-sized hints and a reader thread's `pread`s
//! instead of the virtio disk's 8 MiB read-ahead; the results must be the
//! same bytes as from an ordinary file. Needs root (`losetup`, `mount`);
//! elsewhere each test prints why it did not run.

use std::path::{Path, PathBuf};
use std::process::Command;

use npyflow::convert::{convert_array, ConvertArrayOptions};
use npyflow::fit::fit;
use npyflow::npy::ElemType;
use npyflow::{FitConfig, GeneratorOptions, ImageDataGenerator, NpyArray, Order};
use npyflow_bench::cgroup::MemoryCgroup;
use sha2::{Digest, Sha256};

use crate::util::{epoch_bytes, image_bytes, images_u8, worst_residency};

/// A mounted ext4 file system on a loop device, removed on drop. One at a
/// time, and not beside the memory-cap test ([`crate::util::HEAVY_IO`]).
struct LoopFs {
    image: PathBuf,
    dev: String,
    mnt: tempfile::TempDir,
    _alone: std::sync::MutexGuard<'static, ()>,
}

impl LoopFs {
    /// A `size_mib` MiB file system with `read_ahead_kb` 128, or why not.
    fn new(size_mib: u64) -> Result<LoopFs, String> {
        let run = |cmd: &mut Command| -> Result<String, String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        if run(Command::new("id").arg("-u"))? != "0" {
            return Err("not root".into());
        }
        let guard = crate::util::HEAVY_IO
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let image = tempfile::Builder::new()
            .prefix("npyflow-loop-test.")
            .tempfile_in("/dev/shm")
            .map_err(|e| format!("/dev/shm: {e}"))?
            .into_temp_path()
            .keep()
            .map_err(|e| e.to_string())?;
        let file = std::fs::OpenOptions::new().write(true).open(&image);
        file.and_then(|f| f.set_len(size_mib << 20))
            .map_err(|e| e.to_string())?;
        let mnt = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut fs = LoopFs {
            image,
            dev: String::new(),
            mnt,
            _alone: guard,
        };
        fs.dev = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&fs.image))?;
        run(Command::new("mkfs.ext4").args(["-q", "-F", &fs.dev]))?;
        run(Command::new("mount").arg(&fs.dev).arg(fs.mnt.path()))?;
        let name = Path::new(&fs.dev).file_name().unwrap().to_owned();
        let ra = Path::new("/sys/block")
            .join(name)
            .join("queue/read_ahead_kb");
        std::fs::write(&ra, "128").map_err(|e| format!("{}: {e}", ra.display()))?;
        Ok(fs)
    }

    fn dir(&self) -> &Path {
        self.mnt.path()
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
        if !self.dev.is_empty() {
            let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// The loop device, or `None` after printing why the test does not run.
fn loop_fs(test: &str) -> Option<LoopFs> {
    loop_fs_of(test, 64)
}

/// [`loop_fs`] of `size_mib` MiB.
fn loop_fs_of(test: &str, size_mib: u64) -> Option<LoopFs> {
    match LoopFs::new(size_mib) {
        Ok(fs) => Some(fs),
        Err(why) => {
            println!("{test}: not run, no loop device ({why})");
            None
        }
    }
}

/// The same images in an ordinary temporary folder and on the loop device
/// (dropped from the page cache there, so every read goes to the device).
fn both(fs: &LoopFs, n: usize) -> (tempfile::TempDir, NpyArray, NpyArray) {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let here = images_u8(dir.path(), n, 32, 32, 3);
    let there = fs.dir().join("x.npy");
    std::fs::copy(here.path(), &there).unwrap();
    let there = NpyArray::open(&there).unwrap();
    npyflow::cache::evict_array(&there).unwrap();
    (dir, here, there)
}

fn epoch(x: &NpyArray, order: Order, budget: Option<u64>) -> Vec<(Vec<usize>, Vec<u8>)> {
    epoch_bytes(&mut iterator(x, order, budget))
}

/// The tests' iterator: rescaled, seed 3, batches of 50, two threads.
fn iterator(x: &NpyArray, order: Order, budget: Option<u64>) -> npyflow::NumpyArrayIterator {
    let mut b = ImageDataGenerator::new(GeneratorOptions {
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    })
    .unwrap()
    .flow(x.clone())
    .order(order)
    .seed(3)
    .batch_size(50)
    .threads(2);
    if let Some(budget) = budget {
        b = b.cache_budget(budget);
    }
    b.build().unwrap()
}

const ORDERS: [Order; 3] = [
    Order::Sequential,
    Order::Shuffle,
    Order::Blocks {
        block_rows: 300,
        window: 3,
    },
];

#[test]
fn every_order_reads_the_same_batches_from_a_loop_device() {
    let Some(fs) = loop_fs("every_order_reads_the_same_batches_from_a_loop_device") else {
        return;
    };
    // 7.7 MiB: many 1.25 MiB hints and 2 MiB sequential reads ahead.
    let (_dir, here, there) = both(&fs, 2_621);
    for order in ORDERS {
        npyflow::cache::evict_array(&there).unwrap();
        let (want, got) = (epoch(&here, order, None), epoch(&there, order, None));
        assert_eq!(got.len(), want.len(), "{order:?}");
        assert!(got == want, "{order:?}: batches differ on the loop device");
    }
}

#[test]
fn the_budget_holds_on_a_loop_device() {
    let Some(fs) = loop_fs("the_budget_holds_on_a_loop_device") else {
        return;
    };
    let (_dir, _here, there) = both(&fs, 2_621);
    let budget = 1u64 << 20;
    // Block windows of a quarter of the budget, as the tool sizes them: the
    // window being read and the next one asked for fit in it.
    let blocks = Order::Blocks {
        block_rows: 40,
        window: 2,
    };
    for order in [Order::Sequential, Order::Shuffle, blocks] {
        npyflow::cache::evict_array(&there).unwrap();
        let worst = worst_residency(&there, order, 50, budget);
        // One batch, the read-ahead (a quarter of the budget) and the
        // device's 128 KiB read-ahead on top of the budget.
        let slack = 50 * 3072 + budget / 4 + (128 << 10);
        assert!(
            worst <= budget + slack,
            "{order:?}: {worst} resident bytes over a {budget}-byte budget"
        );
    }
}

#[test]
fn fit_and_convert_read_the_same_bytes_from_a_loop_device() {
    let Some(fs) = loop_fs("fit_and_convert_read_the_same_bytes_from_a_loop_device") else {
        return;
    };
    let (dir, here, there) = both(&fs, 5_000);
    let options = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        ..Default::default()
    };
    let config = FitConfig::default();
    let want = fit(&options, &here, &config, None).unwrap();
    let got = fit(&options, &there, &config, None).unwrap();
    assert_eq!(got, want);

    let convert = ConvertArrayOptions {
        dtype: Some(ElemType::F32),
        scale: Some(1.0 / 255.0),
        progress: None,
    };
    npyflow::cache::evict_array(&there).unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    convert_array(here.path(), &a, &convert).unwrap();
    convert_array(there.path(), &b, &convert).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

const PAST_CACHE_CHILD: &str = "NPYFLOW_LOOPDEV_PAST_CACHE_CHILD";
const PAST_CACHE_OUT: &str = "NPYFLOW_LOOPDEV_PAST_CACHE_OUT";

/// What the past-the-cache test compares: a digest of every batch of one
/// epoch in the sequential and a block order, `fit`'s statistics, and a
/// digest of `convert array`'s output (written to `out`).
fn past_cache_results(x: &NpyArray, out: &Path) -> Vec<String> {
    // Windows of 1.2 MiB: the stash holds two and a half (3 MiB), within a
    // quarter of the child's 56 MiB cap.
    let blocks = Order::Blocks {
        block_rows: 100,
        window: 4,
    };
    let mut lines = Vec::new();
    for order in [Order::Sequential, blocks] {
        npyflow::cache::evict_array(x).unwrap();
        // Digested batch by batch: the epoch's images (288 MiB as f32)
        // would not fit in the child's cgroup.
        let mut digest = Sha256::new();
        iterator(x, order, None)
            .for_each_in_epoch(|b| {
                for &i in b.indices() {
                    digest.update((i as u64).to_le_bytes());
                }
                digest.update(image_bytes(b));
                Ok(())
            })
            .unwrap();
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        lines.push(format!("{order:?} {hex}"));
    }
    let options = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        ..Default::default()
    };
    npyflow::cache::evict_array(x).unwrap();
    let stats = fit(&options, x, &FitConfig::default(), None).unwrap();
    lines.push(format!("fit {:?} {:?}", stats.mean(), stats.std()));
    npyflow::cache::evict_array(x).unwrap();
    // u8 to u8: the output no larger than the input, for the child's cap.
    let convert = ConvertArrayOptions {
        dtype: Some(ElemType::U8),
        scale: None,
        progress: None,
    };
    convert_array(x.path(), out, &convert).unwrap();
    // Digested piece by piece: the child's cap is smaller than the file.
    let mut digest = Sha256::new();
    let mut file = std::fs::File::open(out).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::remove_file(out).unwrap();
    lines.push(format!("convert {hex}"));
    lines
}

/// A file larger than its process's memory cgroup is read past the page
/// cache (the sequential and block orders' stash, `fit`'s and `convert
/// array`'s direct reads): the same batches, statistics and converted file
/// as from an ordinary file read through the map.
#[test]
fn past_the_page_cache_the_batches_and_statistics_are_the_same() {
    let name = "past_the_page_cache_the_batches_and_statistics_are_the_same";
    if let Ok(path) = std::env::var(PAST_CACHE_CHILD) {
        let x = NpyArray::open(&path).unwrap();
        let out = std::env::var(PAST_CACHE_OUT).unwrap();
        for line in past_cache_results(&x, Path::new(&out)) {
            println!("result {line}");
        }
        return;
    }
    let Some(fs) = loop_fs_of(name, 112) else {
        return;
    };
    // The debug test binary alone keeps up to 28 MiB resident (its code
    // and libtest's); a 40 MiB cap left the child too little room, and it
    // was OOM-killed once on a busy machine.
    let cap = 56u64 << 20;
    let cg = match MemoryCgroup::create(cap) {
        Ok(cg) => cg,
        Err(e) if e.is_unsupported_here() => {
            println!("{name}: not run, no memory cgroup ({e})");
            return;
        }
        Err(e) => panic!("cannot create the memory cgroup: {e}"),
    };
    // 72 MiB of 32×32×3 images: larger than the cap.
    let (dir, here, there) = both(&fs, 24_576);
    let want = past_cache_results(&here, &dir.path().join("want.npy"));
    npyflow::cache::evict_array(&there).unwrap();
    let out = cg
        .command(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("loopdev::{name}"),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(PAST_CACHE_CHILD, there.path())
        .env(PAST_CACHE_OUT, dir.path().join("got.npy"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed ({:?}); OOM kills {:?}\n{stdout}\nstderr: {}",
        out.status,
        cg.oom_kills(),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = stdout
        .lines()
        // The first line follows libtest's "test NAME ... " on the same line.
        .filter_map(|l| l.split_once("result ").map(|(_, r)| r.to_string()))
        .collect();
    assert_eq!(got, want);
}
