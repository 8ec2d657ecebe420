#!/usr/bin/env python3
"""Runs `npyflow iterate` many times and changes its input file at a random
moment of each run, counting how each run ended: killed by a signal, the
`FileChanged` error (exit 2, "file changed while ..."), or anything else.

    python3 benches/file_changes.py --npyflow target/release/npyflow [--runs 90]

Each run iterates a 40,000-image 32x32x3 uint8 file with the default
settings (memory-mapped, prefetch on) in one of the orders shuffle, blocks
and sequential, with 1, 2 or 4 threads, and 0.05-0.6 s in either truncates
the file to a random length or rewrites it shorter in place (the same
inode). docs/RELIABILITY.md reports the figures. Only the standard library.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

N, H, W, C = 40_000, 32, 32, 3


def write_npy(path: str, n: int = N) -> int:
    """A uint8 (n, 32, 32, 3) .npy as numpy writes it; returns the data offset."""
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d, %d, %d), }" % (n, H, W, C)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    row = bytes(range(256)) * (H * W * C // 256)
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        for _ in range(n):
            f.write(row)
    old = time.time() - 60
    os.utime(path, (old, old))
    return 10 + len(header)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--npyflow", required=True, help="the npyflow binary to test")
    ap.add_argument("--runs", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", ".")) as tmp:
        path = os.path.join(tmp, "x.npy")
        for k in range(args.runs):
            offset = write_npy(path)
            order = ["shuffle", "blocks", "sequential"][k % 3]
            threads = [1, 2, 4][(k // 3) % 3]
            proc = subprocess.Popen(
                [args.npyflow, "iterate", path, "--order", order, "--threads", str(threads),
                 "--rescale", "1/255", "--epochs", "1000", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            time.sleep(rng.uniform(0.05, 0.6))
            keep = offset + H * W * C * rng.randrange(N)
            if k % 2:
                os.truncate(path, keep)
                how = "truncated"
            else:
                with open(path, "r+b") as f:  # rewritten shorter, same inode
                    data = f.read(keep)
                    f.seek(0)
                    f.truncate()
                    f.write(data)
                how = "rewritten"
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                outcomes[f"{how}: hung"] += 1
                continue
            if proc.returncode < 0:
                outcomes[f"{how}: killed by {signal.Signals(-proc.returncode).name}"] += 1
            elif proc.returncode == 2 and "changed while" in err:
                outcomes[f"{how}: FileChanged"] += 1
            elif proc.returncode == 2 and "is truncated" in err:
                # Changed before the run opened it: the open's own check.
                outcomes[f"{how}: Truncated (at open)"] += 1
            else:
                outcomes[f"{how}: exit {proc.returncode}: {err.strip()[-120:]}"] += 1
    for what, count in sorted(outcomes.items()):
        print(f"{count:4d}  {what}")
    bad = sum(c for w, c in outcomes.items() if not w.endswith(("FileChanged", "(at open)")))
    print(f"{args.runs} runs, {bad} not ended by a file-changed error")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
