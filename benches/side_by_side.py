#!/usr/bin/env python3
"""npyflow side by side with keras-preprocessing and numpy memmap, in one run.

    pip install numpy scipy pillow keras-preprocessing ./python   # ./python: the Python rows
    python3 benches/side_by_side.py                    # 1 GiB under a 256 MiB cap: ~3 minutes
    NPYFLOW_BENCH_GB=4 python3 benches/side_by_side.py # issue 4's 4 GiB under a 1 GiB cap

Generates the datasets once under target/npyflow-bench/side_by_side/, then
on those same files measures, in this one run:

  1. augment 32x32x3 u8 -> f32 with int64 labels (rotation 20, shifts 0.1,
     shear 10, zoom 0.1, horizontal flip, rescale 1/255, bilinear, nearest
     fill, batch 64), warm: keras-preprocessing `ImageDataGenerator.flow` vs
     `npyflow iterate` vs npyflow's Python package (`for x, y in it:`,
     reading one element of each batch, in a fresh process);
  2. the same at 224x224x3 (no labels, no Python row);
  3. shuffle + rescale only, 32x32x3 with labels, warm: Keras (in RAM) and
     numpy memmap fancy-index gather vs npyflow (tool and Python);
  4. (root, memory cgroup available) a file of NPYFLOW_BENCH_GB GiB (default 1), cold,
     under a memory cgroup of a quarter of the file: numpy memmap shuffled
     gather vs npyflow shuffled and block orders, against fio's random-read
     limit (if fio is installed) and a cold sequential read, all in this run;
     also npyflow's streaming fit (mean + std) against the sequential read,
     and the cold runs' time to first batch and peak anonymous memory.

npyflow runs through `cargo run --release -p npyflow-tool -- iterate ... --json`
(the tool is built first; build time is not measured); the Python rows
import `npyflow` (install it with `pip install ./python`) in a fresh
`python3` process each time, timing the loop only, as the tool times its
own. In the warm workloads Keras, the tool and Python take turns, --rounds
rounds (default 5), and each side's median is taken: a shared machine's
slow spells then fall on every side of the ratios. Whatever cannot run
(no tool yet, no Python package, not root, no fio) is reported, not fatal.

Options: --threads N (npyflow threads, default all cores), --seconds S
(cap on each capped measurement, default 20), --rounds N, --skip-cgroup,
--warm-only (workloads 1 and 3: the Python rows' figures in a minute).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
DATA = TARGET / "npyflow-bench" / "side_by_side"
BATCH = 64
SEED = 1
RESCALE = 1.0 / 255.0
# Warm workloads: Keras, the tool and Python take turns this many times
# (see side_by_side; --rounds).
ROUNDS = 5
AUGMENT = dict(
    rotation_range=20,
    width_shift_range=0.1,
    height_shift_range=0.1,
    shear_range=10,
    zoom_range=0.1,
    horizontal_flip=True,
    rescale=RESCALE,
    fill_mode="nearest",
    interpolation_order=1,
)
AUGMENT_FLAGS = [
    "--rotation-range", "20", "--width-shift-range", "0.1", "--height-shift-range", "0.1",
    "--shear-range", "10", "--zoom-range", "0.1", "--horizontal-flip", "--fill-mode", "nearest",
    "--interpolation-order", "1",
]
RESCALE_FLAGS = ["--rescale", repr(RESCALE)]

skipped = []  # (what, why)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data

def dataset(name, n, h, w, c=3):
    """A u8 .npy of n noise images, written once in chunks (any size fits)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"{name}-{h}x{w}x{c}-{n}.npy"
    try:
        if np.load(path, mmap_mode="r").shape == (n, h, w, c):
            return path
    except (OSError, ValueError):
        pass
    log(f"writing {path} ...")
    tmp = path.with_suffix(".partial")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, h, w, c))
    rng = np.random.default_rng(0)
    step = max(1, (64 << 20) // (h * w * c))
    for i in range(0, n, step):
        out[i:i + step] = rng.integers(0, 256, size=out[i:i + step].shape, dtype=np.uint8)
    out.flush()
    del out
    os.replace(tmp, path)
    return path


def labels(n):
    """int64 class labels 0..9 for n samples, written once."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"labels-{n}.npy"
    try:
        if np.load(path, mmap_mode="r").shape == (n,):
            return path
    except (OSError, ValueError):
        pass
    np.save(path, np.arange(n, dtype=np.int64) % 10)
    return path


def evict(path):
    """Writes back and drops the file's pages (vmtouch -e); False if not possible."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except (AttributeError, OSError):
        return False
    finally:
        os.close(fd)


def median(values):
    """The middle value (the upper middle of an even count), None if none."""
    return sorted(values)[len(values) // 2] if values else None


def warm(path):
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


# ---------------------------------------------------------------- reference side

def keras_flow(x, y, options, min_seconds=2.0):
    """img/s of keras-preprocessing flow over whole epochs (construction excluded)."""
    from keras_preprocessing.image import ImageDataGenerator

    it = ImageDataGenerator(**options).flow(x, y, batch_size=BATCH, shuffle=True, seed=SEED)
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(len(it)):
            n += len(next(it)[0])
        if time.perf_counter() - start >= min_seconds:
            return n / (time.perf_counter() - start)


def numpy_gather(path, seconds, min_seconds=2.0):
    """img/s of np.load(mmap_mode='r')[shuffled batch].astype(f32) * 1/255."""
    x = np.load(path, mmap_mode="r")
    scale = np.float32(RESCALE)
    n, start = 0, time.perf_counter()
    epoch = 0
    while True:
        perm = np.random.default_rng(SEED + epoch).permutation(len(x))
        for i in range(0, len(perm), BATCH):
            b = x[perm[i:i + BATCH]].astype(np.float32) * scale
            n += len(b)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return n / elapsed, n
        epoch += 1
        if time.perf_counter() - start >= min_seconds:
            return n / (time.perf_counter() - start), n


# ---------------------------------------------------------------- npyflow side

def tool_command():
    """The built tool's path, building it first; None (reason recorded) if it does not build."""
    if shutil.which("cargo") is None:
        skipped.append(("npyflow", "cargo is not on PATH"))
        return None
    log("building npyflow-tool (release) ...")
    r = subprocess.run(["cargo", "build", "--release", "-q", "-p", "npyflow-tool"], cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    exe = TARGET / "release" / "npyflow"
    if r.returncode != 0 or not exe.exists():
        why = (r.stderr.strip().splitlines() or ["no binary"])[-1]
        skipped.append(("npyflow", f"the tool does not build yet: {why}"))
        return None
    return exe


def npyflow_iterate(path, flags, threads, prefix=(), stdin=None):
    """Runs `iterate ... --json` via cargo run; returns the parsed JSON or None."""
    cmd = ["cargo", "run", "--release", "-q", "-p", "npyflow-tool", "--", "iterate", str(path),
           "--batch-size", str(BATCH), "--seed", str(SEED), "--threads", str(threads), "--json", *flags]
    return run_json(cmd, prefix=prefix, stdin=stdin)


def python_flow(path, y_path, options, epochs, threads):
    """Entry point of the Python rows' child process: `epochs` epochs of
    npyflow's flow over the memmap, as a training loop consumes them (a
    plain `for x, y in it:` reading one element of each batch); the loop's
    img/s as JSON on stdout."""
    from npyflow import ImageDataGenerator

    x = np.load(path, mmap_mode="r")
    y = np.load(y_path, mmap_mode="r")
    it = ImageDataGenerator(**options).flow(x, y, batch_size=BATCH, shuffle=True, seed=SEED, threads=threads)
    total = len(it) * epochs
    batches = samples = 0
    touched = 0.0
    start = time.perf_counter()
    for images, targets in it:
        touched += images[0, 0, 0, 0]
        samples += len(images)
        batches += 1
        if batches == total:
            break
    elapsed = time.perf_counter() - start
    print(json.dumps({"throughput": samples / elapsed, "samples": samples, "touched": float(touched)}))


def npyflow_python(path, y_path, options, epochs, threads):
    """Runs python_flow in a fresh process; its img/s, or None (reason recorded)."""
    spec = json.dumps({"x": str(path), "y": str(y_path), "options": options, "epochs": epochs, "threads": threads})
    r = subprocess.run([sys.executable, __file__, "--child-python", spec], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        skipped.append(("npyflow Python package", (r.stderr.strip().splitlines() or ["failed"])[-1]))
        return None
    return json.loads(r.stdout[r.stdout.index("{"):])["throughput"]


def run_json(cmd, prefix=(), stdin=None):
    r = subprocess.run([*prefix, *cmd], cwd=ROOT, capture_output=True, text=True, input=stdin)
    if r.returncode != 0:
        skipped.append((" ".join(cmd[:8]) + " ...", (r.stderr.strip().splitlines() or ["failed"])[-1]))
        return None
    text = r.stdout
    try:
        return json.loads(text[text.index("{"):])
    except ValueError:
        skipped.append((" ".join(cmd[:8]) + " ...", "printed no JSON"))
        return None


# ---------------------------------------------------------------- the memory cgroup

class Cgroup:
    """A memory cgroup (v1, else v2) removed on exit; processes join it before they start work."""

    def __init__(self, limit):
        name = f"npyflow-side-by-side-{os.getpid()}"
        v1 = Path("/sys/fs/cgroup/memory")
        v2 = Path("/sys/fs/cgroup")
        control = v2 / "cgroup.subtree_control"
        if (v1 / "memory.limit_in_bytes").exists():
            self.dir, knob = v1 / name, "memory.limit_in_bytes"
        elif control.exists() and "memory" in control.read_text(errors="ignore").split():
            self.dir, knob = v2 / name, "memory.max"
        else:
            raise OSError("no memory cgroup controller")
        self.dir.mkdir()
        (self.dir / knob).write_text(str(limit))
        self.limit = limit

    def run(self, cmd):
        """Runs cmd inside the cgroup: a shell that waits for 'go', joins, then execs."""
        p = subprocess.Popen(["sh", "-c", 'read go; exec "$@"', "sh", *cmd], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        (self.dir / "cgroup.procs").write_text(str(p.pid))
        out, err = p.communicate("go\n")
        return p.returncode, out, err

    def close(self):
        try:
            self.dir.rmdir()
        except OSError as e:
            log(f"could not remove {self.dir}: {e}")


def cold_sequential(path):
    evict(path)
    start, total = time.perf_counter(), 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(8 << 20)
            if not b:
                break
            total += len(b)
    return total / (time.perf_counter() - start)


def fio_read(path, seconds, what, args):
    """fio's `read` stats for a read-only job on path, or None (reason recorded)."""
    if shutil.which("fio") is None:
        skipped.append((what, "fio is not installed (apt-get install fio)"))
        return None
    r = subprocess.run(["fio", "--name=npyflow", "--readonly", "--direct=1", "--ioengine=libaio", *args,
                        f"--runtime={seconds}", "--time_based", "--output-format=json", f"--filename={path}"],
                       capture_output=True, text=True)
    try:
        return json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]["read"]
    except (ValueError, KeyError, IndexError):
        skipped.append((what, (r.stderr.strip().splitlines() or ["no output"])[-1]))
        return None


def fio_limit(path, seconds):
    """IOPS of fio's direct random 4 KiB reads at queue depth 32: the device's random-read limit."""
    read = fio_read(path, seconds, "fio random-read limit", ["--rw=randread", "--bs=4k", "--iodepth=32"])
    return read and read["iops"]


def fio_sequential(path, seconds):
    """Bytes/s of fio's direct sequential read (1 MiB, queue depth 16): the device's streaming limit."""
    read = fio_read(path, seconds, "fio sequential limit", ["--rw=read", "--bs=1m", "--iodepth=16"])
    return read and read["bw_bytes"]


def pages_per_sample(path):
    x = np.load(path, mmap_mode="r")
    offset, rb, page = x.offset, x[0].nbytes, os.sysconf("SC_PAGE_SIZE")
    spans = [((offset + i * rb + rb - 1) // page) - ((offset + i * rb) // page) + 1 for i in range(page)]
    return sum(spans) / len(spans)


def child_numpy(path, seconds):
    """Entry point inside the cgroup: the numpy gather, result as JSON on stdout."""
    rate, n = numpy_gather(path, seconds, min_seconds=seconds)
    print(json.dumps({"throughput": rate, "samples": n}))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--skip-cgroup", action="store_true")
    ap.add_argument("--warm-only", action="store_true")
    ap.add_argument("--child-numpy", nargs=2, metavar=("PATH", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--child-python", metavar="JSON", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_numpy:
        child_numpy(args.child_numpy[0], float(args.child_numpy[1]))
        return
    if args.child_python:
        spec = json.loads(args.child_python)
        python_flow(spec["x"], spec["y"], spec["options"], spec["epochs"], spec["threads"])
        return

    # (workload, npyflow via, reference name, reference img/s, npyflow img/s, target ratio)
    rows = []
    x32 = dataset("small", 20000, 32, 32, 3)
    y32 = labels(20000)
    x224 = dataset("large", 512, 224, 224, 3)
    exe = tool_command()
    try:
        import keras_preprocessing  # noqa: F401
        have_keras = True
    except ImportError:
        have_keras = False
        skipped.append(("keras-preprocessing", "not installed (pip install keras-preprocessing)"))
    have_python = subprocess.run([sys.executable, "-c", "import npyflow"], capture_output=True).returncode == 0
    if not have_python:
        skipped.append(("npyflow Python package", "not installed (pip install ./python)"))

    def npyflow_rate(path, flags, epochs):
        if exe is None:
            return None
        warm(path)
        out = npyflow_iterate(path, [*flags, "--epochs", str(epochs)], args.threads)
        return out and out.get("throughput")

    def side_by_side(path, keras_options, flags, epochs, y_path=None):
        """Keras, the tool and (with labels) the Python package in turn,
        --rounds times, on the same file: the median rate of each. Taking
        turns puts a slow spell of a shared machine on every side of the
        ratios; the median, not the best, keeps the figures no kinder than
        the runs."""
        x = np.load(path) if have_keras else None
        y = np.load(y_path) if have_keras and y_path else None
        if y_path:
            flags = [*flags, "--y", str(y_path)]
        refs, ours, pys = [], [], []
        for k in range(args.rounds):
            if have_keras:
                refs.append(keras_flow(x, y, keras_options))
            rate = npyflow_rate(path, flags, epochs)
            if rate is not None:
                ours.append(rate)
            if have_python and y_path:
                warm(path)
                rate = npyflow_python(path, y_path, keras_options, epochs, args.threads)
                if rate is not None:
                    pys.append(rate)
            last = lambda v: f"{v[-1]:.0f}" if len(v) > k else "n/a"  # noqa: E731
            log(f"  round {k + 1}: keras {last(refs)}, tool {last(ours)}, python {last(pys)} img/s")
        return median(refs), median(ours), median(pys)

    log(f"1/4 augment 32x32x3 ({args.rounds} rounds) ...")
    ref, ours, py = side_by_side(x32, AUGMENT, [*AUGMENT_FLAGS, *RESCALE_FLAGS, "--shuffle"], 20, y32)
    rows.append(("augment 32x32x3, warm", "tool", "keras flow", ref, ours, 100))
    rows.append(("augment 32x32x3, warm", "python", "keras flow", ref, py, 100))
    rows.append(("augment 32x32x3, warm", "python", "npyflow iterate", ours, py, 0.9))

    if not args.warm_only:
        log(f"2/4 augment 224x224x3 ({args.rounds} rounds) ...")
        ref, ours, _ = side_by_side(x224, AUGMENT, [*AUGMENT_FLAGS, *RESCALE_FLAGS, "--shuffle"], 20)
        rows.append(("augment 224x224x3, warm", "tool", "keras flow", ref, ours, 50))

    log(f"3/4 shuffle + rescale 32x32x3 ({args.rounds} rounds) ...")
    ref, ours, py = side_by_side(x32, dict(rescale=RESCALE), [*RESCALE_FLAGS, "--shuffle"], 50, y32)
    rows.append(("shuffle+rescale 32x32x3, warm", "tool", "keras flow (RAM)", ref, ours, 8))
    rows.append(("shuffle+rescale 32x32x3, warm", "python", "npyflow iterate", ours, py, 0.8))
    if not args.warm_only:
        warm(x32)
        gather, _ = numpy_gather(x32, args.seconds)
        rows.append(("shuffle+rescale 32x32x3, warm", "tool", "numpy memmap gather", gather, ours, None))

    device = []
    if args.skip_cgroup or args.warm_only:
        skipped.append(("cgroup workloads", "--skip-cgroup" if args.skip_cgroup else "--warm-only"))
    elif os.geteuid() != 0:
        skipped.append(("cgroup workloads", "not root: a memory cgroup cannot be created"))
    else:
        # Not smaller by default: the Python child's own ~30 MiB (numpy)
        # would take a visible share of a small cap.
        gb = float(os.environ.get("NPYFLOW_BENCH_GB", "1"))
        n = int(gb * (1 << 30)) // 3072
        big = dataset("cold", n, 32, 32, 3)
        size = big.stat().st_size
        limit = size // 4
        log(f"4/4 cold, {size / 2**30:.2f} GiB under a {limit >> 20} MiB memory cgroup ...")
        seq = cold_sequential(big)
        device.append(f"cold sequential read: {seq / 1e6:.0f} MB/s = {seq / 3072:.0f} img/s")
        iops = fio_limit(big, 5)
        pps = pages_per_sample(big)
        rand_limit = iops / pps if iops else None
        if iops:
            device.append(f"fio randread 4 KiB qd32: {iops:.0f} IOPS = {rand_limit:.0f} img/s ({pps:.2f} pages/sample)")
        try:
            cg = Cgroup(limit)
        except OSError as e:
            cg = None
            skipped.append(("cgroup workloads", str(e)))
        if cg is not None:
            try:
                evict(big)
                code, out, err = cg.run([sys.executable, __file__, "--child-numpy", str(big), str(args.seconds)])
                ref = json.loads(out)["throughput"] if code == 0 else None
                if ref is None:
                    skipped.append(("numpy gather in the cgroup", (err.strip().splitlines() or ["failed"])[-1]))
                ours = blocks = fit_rate = None
                if exe is not None:
                    base = [str(exe), "iterate", str(big), "--batch-size", str(BATCH), "--seed", str(SEED),
                            "--threads", str(args.threads), "--json", *RESCALE_FLAGS, "--epochs", "1"]
                    for order in ("shuffle", "blocks"):
                        evict(big)
                        extra = ["--order", order]
                        if order == "blocks":
                            extra += ["--cache-budget", str(limit // 4)]
                        code, out, err = cg.run([*base, *extra])
                        rate = None
                        if code == 0:
                            tel = json.loads(out[out.index("{"):])
                            rate = tel.get("throughput")
                            epoch = (tel.get("epochs") or [{}])[0]
                            device.append(
                                f"npyflow {order}, cold in the cgroup: first batch after "
                                f"{epoch.get('time_to_first_batch_seconds', float('nan')) * 1e3:.1f} ms, "
                                f"peak anonymous memory {epoch.get('peak_anon_bytes', 0) / 2**20:.1f} MiB, "
                                f"{epoch.get('major_faults', 0)} major faults")
                        else:
                            skipped.append((f"npyflow {order} in the cgroup", (err.strip().splitlines() or ["failed"])[-1]))
                        if order == "shuffle":
                            ours = rate
                        else:
                            blocks = rate
                    evict(big)
                    stats = DATA / "fit-stats.npz"
                    code, out, err = cg.run([str(exe), "fit", str(big), "--featurewise-center",
                                             "--featurewise-std-normalization", "--out", str(stats), "--json"])
                    if code == 0:
                        fit_rate = json.loads(out[out.index("{"):]).get("bytes_per_second")
                    else:
                        skipped.append(("npyflow fit in the cgroup", (err.strip().splitlines() or ["failed"])[-1]))
                # The device is shared and its speed drifts, and a plain
                # read() loop does not reach what the device streams: the
                # sequential reference is the fastest of a read before, one
                # after and fio's direct sequential read (the strictest bar).
                seq = max(seq, cold_sequential(big))
                device.append(f"cold sequential read, best of two: {seq / 1e6:.0f} MB/s = {seq / 3072:.0f} img/s")
                fio_seq = fio_sequential(big, 5)
                if fio_seq:
                    device.append(f"fio sequential read 1 MiB qd16 direct: {fio_seq / 1e6:.0f} MB/s")
                    seq = max(seq, fio_seq)
                rows.append((f"cold shuffle, {limit >> 20} MiB cgroup", "tool", "numpy memmap gather", ref, ours, 100))
                if rand_limit:
                    rows.append((f"cold shuffle, {limit >> 20} MiB cgroup", "tool", "fio qd32 limit", rand_limit, ours,
                                 0.5))
                rows.append((f"cold blocks, {limit >> 20} MiB cgroup", "tool", "sequential read (best)", seq / 3072,
                             blocks, 0.7))
                rows.append((f"cold fit mean+std, {limit >> 20} MiB cgroup", "tool", "sequential read (best)",
                             seq / 3072, fit_rate and fit_rate / 3072, 0.6))
            finally:
                cg.close()

    print()
    for line in device:
        print(line)
    print(f"\n{'workload':<34} {'npyflow':<7} {'reference':<22} {'ref img/s':>11} {'npyflow img/s':>14} "
          f"{'ratio':>9} {'target':>8}")
    for workload, via, name, ref, ours, target in rows:
        if ref and ours:
            ratio = f"{ours / ref:.1f}x" if ours >= ref else f"{ours / ref:.0%}"
        else:
            ratio = "n/a"
        tgt = "" if target is None else (f">= {target:g}x" if target >= 1 else f">= {target:.0%}")
        fmt = lambda v: f"{v:.0f}" if v else "n/a"  # noqa: E731
        print(f"{workload:<34} {via:<7} {name:<22} {fmt(ref):>11} {fmt(ours):>14} {ratio:>9} {tgt:>8}")
    if skipped:
        print("\nnot measured:")
        for what, why in skipped:
            print(f"  {what}: {why}")


if __name__ == "__main__":
    main()
