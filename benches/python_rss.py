#!/usr/bin/env python3
"""Memory of a Python process iterating a memmap larger than its memory cap:
npyflow's ``flow`` against keras-preprocessing's, under one memory cgroup.

    pip install ./python numpy "keras-preprocessing==1.1.2"   # scipy, pillow not needed
    sudo python3 benches/python_rss.py              # 4 GiB under a 1 GiB cap: ~4 minutes
    sudo python3 benches/python_rss.py --gib 1 --limit-mib 256   # a quicker, smaller run

Needs root (it creates a memory cgroup, v1 at /sys/fs/cgroup/memory or v2)
and --gib GiB free on the disk of --dir (default
$CARGO_TARGET_DIR/npyflow-bench/python_rss, else target/...). It:

  1. writes a uint8 .npy of 64x64x3 images totalling --gib GiB (default 4)
     on that disk and drops it from the page cache (so the children's reads
     are charged to their cgroup, as a file that never fitted would be);
  2. creates a memory cgroup limited to --limit-mib MiB (default 1024) and
     runs, each in turn inside it, a fresh Python process that does

         x = np.load(path, mmap_mode="r")
         it = ImageDataGenerator(rescale=1 / 255).flow(x, batch_size=64, shuffle=True, seed=1)
         for _ in range(len(it)):   # one epoch, touching each batch
             batch = next(it)

     with ImageDataGenerator from npyflow (as is, then with
     ``cache_budget=`` --budget-mib MiB, default 128), then from
     keras_preprocessing;
  3. reports for each: how it ended (exit status; SIGKILL with the cgroup's
     oom_kill count rising is the OOM killer), its peak RSS (VmHWM: anonymous
     plus resident file pages mapped into the process), its peak anonymous
     RSS (RssAnon) and peak resident file pages (RssFile), both polled by
     the parent every 10 ms, the cgroup's peak charge (page cache included)
     and, with a swap device, the swap used at the peak (memsw - mem, v1;
     swap.peak, v2);
  4. deletes the file (unless --keep) and the cgroup.

The npyflow children also print the epoch telemetry's own peak anonymous
memory. Target (issue 15): npyflow's peak RSS < 256 MiB for 4 GiB under
1 GiB. Mapped file pages count in RSS: without a budget they fill what the
cap leaves (the kernel reclaims them, they are page cache); ``cache_budget``
drops them behind the reader.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SHAPE = (64, 64, 3)
ROW = SHAPE[0] * SHAPE[1] * SHAPE[2]
BATCH = 64
MIB = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def write_dataset(path, n):
    """A uint8 .npy of n images, written in 64 MiB chunks (contents: noise)."""
    if path.exists():
        try:
            if np.load(path, mmap_mode="r").shape == (n, *SHAPE):
                return
        except (OSError, ValueError):
            pass
    log(f"writing {path} ({n * ROW / 2**30:.2f} GiB) ...")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *SHAPE))
    step = (64 * MIB) // ROW
    block = np.random.default_rng(0).integers(0, 256, size=(step, *SHAPE), dtype=np.uint8)
    for i in range(0, n, step):
        rows = min(step, n - i)
        # Cheap variety between chunks: the noise block shifted by the chunk index.
        out[i : i + rows] = block[:rows] + np.uint8(i // step)
    out.flush()
    del out
    os.replace(tmp, path)


def evict(path):
    """Writes back and drops the file's pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def status(pid):
    """VmHWM, VmRSS, RssAnon, RssFile of pid in bytes (empty when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) * 1024
    return out


class Cgroup:
    """A memory cgroup (v1, else v2) with a limit; removed by close()."""

    def __init__(self, limit):
        name = f"npyflow-python-rss-{os.getpid()}"
        v1 = Path("/sys/fs/cgroup/memory")
        v2 = Path("/sys/fs/cgroup")
        control = v2 / "cgroup.subtree_control"
        if (v1 / "memory.limit_in_bytes").exists():
            self.v1, self.dir = True, v1 / name
            self.dir.mkdir()
            (self.dir / "memory.limit_in_bytes").write_text(str(limit))
        elif control.exists() and "memory" in control.read_text().split():
            self.v1, self.dir = False, v2 / name
            self.dir.mkdir()
            (self.dir / "memory.max").write_text(str(limit))
        else:
            raise OSError("no memory cgroup controller (v1 or v2) to use")

    def read(self, name):
        try:
            return (self.dir / name).read_text()
        except OSError:
            return ""

    def counters(self):
        """Peak charge, swap used at peak and OOM kills so far."""
        if self.v1:
            peak = int(self.read("memory.max_usage_in_bytes") or 0)
            memsw = int(self.read("memory.memsw.max_usage_in_bytes") or 0)
            kills = self.read("memory.oom_control")
            swap = max(0, memsw - peak) if memsw else None
        else:
            peak = int(self.read("memory.peak") or 0)
            swap_text = self.read("memory.swap.peak")
            swap = int(swap_text) if swap_text else None
            kills = self.read("memory.events")
        oom = next((int(line.split()[1]) for line in kills.splitlines() if line.startswith("oom_kill ")), 0)
        return {"cgroup_peak": peak, "swap_peak": swap, "oom_kills": oom}

    def reset_peak(self):
        if self.v1:
            for name in ("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes"):
                try:
                    (self.dir / name).write_text("0")
                except OSError:
                    pass

    def run(self, cmd):
        """Runs cmd in the cgroup (it joins before exec), polling its memory every 10 ms."""
        p = subprocess.Popen(["sh", "-c", 'read go; exec "$@"', "sh", *cmd], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        (self.dir / "cgroup.procs").write_text(str(p.pid))
        p.stdin.write("go\n")
        p.stdin.close()
        peaks = {}
        start = time.perf_counter()
        while p.poll() is None:
            for key, value in status(p.pid).items():
                peaks[key] = max(peaks.get(key, 0), value)
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        return p.returncode, p.stdout.read(), p.stderr.read(), peaks, seconds

    def close(self):
        try:
            self.dir.rmdir()
        except OSError as e:
            log(f"could not remove {self.dir}: {e}")


def child(which, path, budget):
    """Inside the cgroup: one epoch of flow over the memmap, summary as JSON on stdout."""
    extra = {}
    if which == "npyflow":
        from npyflow import ImageDataGenerator

        if budget:
            extra["cache_budget"] = budget
    else:
        from keras_preprocessing.image import ImageDataGenerator
    x = np.load(path, mmap_mode="r")
    start = time.perf_counter()
    it = ImageDataGenerator(rescale=1 / 255).flow(x, batch_size=BATCH, shuffle=True, seed=1, **extra)
    samples, checksum = 0, 0.0
    for _ in range(len(it)):
        batch = next(it)
        samples += len(batch)
        checksum += float(batch[-1, 0, 0, 0])
    out = {
        "samples": samples,
        "seconds": time.perf_counter() - start,
        "checksum": checksum,
    }
    telemetry = getattr(it, "last_epoch_telemetry", lambda: None)()
    if telemetry:
        out["telemetry_peak_anon"] = telemetry["peak_anon_bytes"]
        out["major_faults"] = telemetry["major_faults"]
    print(json.dumps(out))


def mib(v):
    return "n/a" if v is None else f"{v / MIB:.0f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=4.0, help="dataset size in GiB (default 4)")
    ap.add_argument("--limit-mib", type=int, default=1024, help="memory cgroup limit in MiB (default 1024)")
    ap.add_argument("--budget-mib", type=int, default=128,
                    help="npyflow's cache_budget in the second npyflow run, MiB (default 128)")
    ap.add_argument("--dir", type=Path, default=TARGET / "npyflow-bench" / "python_rss",
                    help="where to write the dataset (a real disk, not tmpfs)")
    ap.add_argument("--keep", action="store_true", help="keep the dataset file for another run")
    ap.add_argument("--only", choices=("npyflow", "keras"), help="run one side only")
    ap.add_argument("--child", nargs=3, metavar=("WHICH", "PATH", "BUDGET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if os.geteuid() != 0:
        sys.exit("python_rss.py needs root: it creates a memory cgroup")
    n = int(args.gib * 2**30) // ROW
    path = args.dir / f"rss-{SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}-{n}.npy"
    write_dataset(path, n)
    size = path.stat().st_size
    swaps = Path("/proc/swaps").read_text().strip().splitlines()[1:]
    results = []
    cg = Cgroup(args.limit_mib * MIB)
    try:
        budget = args.budget_mib * MIB
        for which, name, child_budget in (("npyflow", "npyflow", 0),
                                          ("npyflow", f"npyflow, cache_budget={args.budget_mib} MiB", budget),
                                          ("keras", "keras", 0)):
            if args.only and which != args.only:
                continue
            evict(path)
            cg.reset_peak()
            before = cg.counters()["oom_kills"]
            log(f"{name}: one epoch over {size / 2**30:.2f} GiB under a {args.limit_mib} MiB cgroup ...")
            code, out, err, peaks, seconds = cg.run(
                [sys.executable, __file__, "--child", which, str(path), str(child_budget)])
            counters = cg.counters()
            if not swaps:
                # Without a swap device nothing can swap (memsw - mem then
                # differs only by when each peak was sampled).
                counters["swap_peak"] = None
            killed = code < 0 and -code == signal.SIGKILL
            if code == 0:
                ended = "completed the epoch"
            elif killed and counters["oom_kills"] > before:
                ended = "killed by the OOM killer (SIGKILL)"
            elif code < 0:
                ended = f"killed by signal {-code}"
            else:
                ended = f"failed (exit {code}): {(err.strip().splitlines() or ['?'])[-1]}"
            summary = json.loads(out[out.index("{"):]) if code == 0 else {}
            results.append((name, ended, seconds, peaks, counters, summary))
    finally:
        cg.close()
        if not args.keep:
            path.unlink()
            log(f"deleted {path}")

    print(f"\n{size / 2**30:.2f} GiB uint8 memmap ({n} images of {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}), "
          f"flow(batch_size={BATCH}, shuffle=True, rescale=1/255), one epoch, "
          f"memory cgroup of {args.limit_mib} MiB; swap devices: {len(swaps) or 'none'}")
    print(f"\n{'':<32} {'peak RSS':>9} {'RssAnon':>9} {'RssFile':>9} {'cgroup':>9} {'swap':>6} {'seconds':>8}  ended")
    for name, ended, seconds, peaks, counters, summary in results:
        print(f"{name:<32} {mib(peaks.get('VmHWM')):>9} {mib(peaks.get('RssAnon')):>9} "
              f"{mib(peaks.get('RssFile')):>9} {mib(counters['cgroup_peak']):>9} "
              f"{mib(counters['swap_peak']):>6} {seconds:>8.1f}  {ended}")
        if summary:
            extra = f"  {summary['samples']} samples in {summary['seconds']:.1f} s"
            if "telemetry_peak_anon" in summary:
                extra += (f", telemetry peak anonymous {mib(summary['telemetry_peak_anon'])}, "
                          f"{summary['major_faults']} major faults")
            print(extra)
    print("\npeak RSS = VmHWM (anonymous + mapped file pages), RssAnon/RssFile = peaks polled every 10 ms,\n"
          "cgroup = the cgroup's peak charge (page cache included), swap = n/a without a swap device;\n"
          "a killed process's figures are those polled until it died.")


if __name__ == "__main__":
    main()
