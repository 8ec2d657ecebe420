#!/usr/bin/env python3
"""Cold passes over one file under a memory cgroup: `dd`, every order of
`npyflow iterate` and `npyflow fit`, in interleaved rounds, medians.

    sudo python3 benches/cold_orders.py FILE.npy                    # 3 rounds
    sudo python3 benches/cold_orders.py FILE.npy --rounds 5 --bin B --bin OTHER
    bench/loopdev.sh -s 5G -c x.npy -- python3 benches/cold_orders.py @DIR@/x.npy

The figures of docs/PERFORMANCE.md, "Fast devices with a small
read-ahead". Root only (drop_caches, a memory cgroup). Each measurement
drops the page cache, starts the command inside a memory cgroup (v1 at
/sys/fs/cgroup/memory or v2; --limit-mib, default 1024) and times the whole
process. Each round runs every workload with every binary (--bin, default
the release build of npyflow-tool; give two to compare builds in the same
run), so a shared machine's slow spells fall on all of them, in an order
that turns from round to round (what runs before a measurement changes
what its memory costs). Workloads
(--workloads): dd (cold sequential read, 8 MiB reads: the reference),
blocks, sequential, shuffle (--shuffle-batches batches of 32, default
15000) with `--rescale 1/255`, and fit (featurewise centre and std).
Reports each median in GB/s of the file and as a fraction of dd's median
(the shuffle: GB/s of the rows it read, and images per second, to set
against fio's random-read limit); for the block and sequential orders also
their epochs as the tool times them, the first apart from the others
(--epochs N: a run's first epoch pays its one-time set-up, later ones are
as cold but do not).
"""

import argparse
import ast
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
CG_V1 = Path("/sys/fs/cgroup/memory")
CG_V2 = Path("/sys/fs/cgroup")


def npy_row_bytes(path: str) -> int:
    """Bytes of one row of a .npy file, from its header (no numpy needed)."""
    with open(path, "rb") as f:
        head = f.read(12)
        major = head[6]
        size = int.from_bytes(head[8:10] if major == 1 else head[8:12], "little")
        f.seek(10 if major == 1 else 12)
        header = ast.literal_eval(f.read(size).decode("latin1"))
    itemsize = int("".join(c for c in header["descr"] if c.isdigit()))
    return math.prod(header["shape"][1:]) * itemsize


def make_cgroup(limit: int) -> Path:
    name = f"npyflow-cold-{os.getpid()}"
    if (CG_V1 / "memory.limit_in_bytes").exists():
        cg = CG_V1 / name
        cg.mkdir()
        (cg / "memory.limit_in_bytes").write_text(str(limit))
    else:
        cg = CG_V2 / name
        cg.mkdir()
        (cg / "memory.max").write_text(str(limit))
    return cg


def command(
    workload: str, binary: str, path: str, batches: int, out: str, epochs: int
) -> list:
    if workload == "dd":
        return ["dd", f"if={path}", "of=/dev/null", "bs=8M", "status=none"]
    if workload == "fit":
        return [
            binary,
            "fit",
            path,
            "--featurewise-center",
            "--featurewise-std-normalization",
            "--out",
            out,
            "-q",
        ]
    cmd = [
        binary,
        "iterate",
        path,
        "--order",
        workload,
        "--rescale",
        str(1 / 255),
        "--epochs",
        "1" if workload == "shuffle" else str(epochs),
        "--json",
    ]
    if workload == "shuffle":
        cmd += ["--batch-size", "32", "--max-batches", str(batches)]
    return cmd


def turned(items: list, r: int) -> list:
    """`items` rotated by `r` places."""
    k = r % len(items)
    return items[k:] + items[:k]


def timed(cg: Path, cmd: list) -> tuple:
    """The process's time to the end of its first epoch, and each epoch's
    (from `--json`; none for `dd` and `fit`)."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3")
    start = time.perf_counter()
    done = subprocess.run(
        ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh", *cmd],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    epochs = []
    if "--json" in cmd:
        epochs = [e["wall_seconds"] for e in json.loads(done.stdout)["epochs"]]
    # The process up to the end of its first epoch (start-up included).
    return seconds - sum(epochs[1:]), epochs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "file", help="a rank-4 uint8 .npy (32x32x3 images in the documented runs)"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--bin", action="append", help="npyflow binaries to compare (repeatable)"
    )
    ap.add_argument("--workloads", default="dd,blocks,sequential,fit,shuffle")
    ap.add_argument("--limit-mib", type=int, default=1024)
    ap.add_argument("--shuffle-batches", type=int, default=15000)
    ap.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="epochs of the block and sequential orders per run; with more "
        "than one, their later epochs (each as cold: the file outgrows the "
        "cgroup) are also reported on their own",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print(
            "cold_orders.py: needs root (drop_caches, a memory cgroup)", file=sys.stderr
        )
        return 2
    binaries = args.bin or [str(TARGET / "release" / "npyflow")]
    if not args.bin:
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "npyflow-tool"],
            cwd=ROOT,
            check=True,
        )
    workloads = args.workloads.split(",")
    path = os.path.abspath(args.file)
    size = os.path.getsize(path)
    times: dict = {}
    # Each run's epochs as the tool times them (its first, and the others).
    first: dict = {}
    later: dict = {}
    cg = make_cgroup(args.limit_mib << 20)
    out = os.path.join(tempfile.mkdtemp(), "stats.npz")
    try:
        for r in range(args.rounds):
            # Both orders turn each round: a process inherits the memory the
            # one before it freed, and on a virtual machine that hands free
            # memory back to its host, memory freed long ago costs 15 times
            # more to touch than memory just freed (a huge page: 2 ms per
            # MiB against 0.13). Run in one fixed order, whatever ran second
            # after a large free had it cheap.
            for w in turned(workloads, r):
                for b in ["dd"] if w == "dd" else turned(binaries, r):
                    cmd = command(w, b, path, args.shuffle_batches, out, args.epochs)
                    t, epochs = timed(cg, cmd)
                    times.setdefault((w, b), []).append(t)
                    if epochs and w != "shuffle":
                        first.setdefault((w, b), []).append(epochs[0])
                    if len(epochs) > 1:
                        later.setdefault((w, b), []).extend(epochs[1:])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        cg.rmdir()
    dd = statistics.median(times[("dd", "dd")]) if ("dd", "dd") in times else None
    row_bytes = None
    print(
        f"{path}: {size / 2**30:.2f} GiB, {args.limit_mib} MiB cgroup, "
        f"medians of {args.rounds} interleaved rounds"
    )
    for (w, b), ts in times.items():
        m = statistics.median(ts)
        if w == "shuffle":
            row_bytes = row_bytes or npy_row_bytes(path)
            nbytes = args.shuffle_batches * 32 * row_bytes
        else:
            nbytes = size
        if w == "shuffle":
            share = f"{args.shuffle_batches * 32 / m:,.0f} img/s"
        elif dd and w != "dd":
            share = f"{(nbytes / m) / (size / dd):5.0%} of dd"
        else:
            share = ""
        runs = " ".join(f"{t:.2f}" for t in ts)
        print(
            f"  {w:10s} {b if w != 'dd' else '':40s} {m:6.2f} s {nbytes / m / 1e9:5.2f} GB/s "
            f"{share}  ({runs})"
        )
    # The rows above time whole processes (start, set-up and exit
    # included, as `dd`'s); these, the epochs as the tool reports them. A
    # run's first epoch pays its one-time set-up (the stash's buffers: on a
    # virtual machine whose host takes freed memory back, a fresh huge page
    # costs up to 2 ms per MiB), later ones do not.
    rest = "epoch 2" if args.epochs == 2 else f"epochs 2-{args.epochs}"
    for label, epochs in [("epoch 1", first), (rest, later)]:
        for (w, b), ts in epochs.items():
            m = statistics.median(ts)
            share = f"{dd / m:5.0%} of dd" if dd else ""
            print(
                f"  {w:10s} {b + ', ' + label:40s} {m:6.2f} s "
                f"{size / m / 1e9:5.2f} GB/s {share}  ({len(ts)} epochs)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
