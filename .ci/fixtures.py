#!/usr/bin/env python3
"""Reruns every committed fixture generator (tests/fixtures/gen_*.py) in a
copy of tests/fixtures and compares what it writes with the committed
files, so a fixture that no longer matches its reference implementation
(or its script) fails CI instead of pinning a stale value.

Usage: python .ci/fixtures.py   (with numpy, scipy, keras-preprocessing
1.1.2 and, for the Keras 3 fixtures, keras + jax installed)

Arrays are compared by dtype, shape and value: integers exactly, floats to
1e-6 relative, and to 1e-6 of the array's largest value absolute (the
reference's BLAS and scipy builds differ in the last bits between
machines: a float32 ZCA matrix of scale 11.7 by 8.6e-6); other files byte
for byte. Files the committed
tree has and the rerun did not write are fine (fixtures made by other
means, e.g. the golden pins written by the Rust suite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def same_array(a: np.ndarray, b: np.ndarray) -> str | None:
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"dtype/shape {a.dtype}{a.shape} vs committed {b.dtype}{b.shape}"
    if a.dtype.kind == "f" or a.dtype.kind == "c":
        # Absolute error to 1e-6 of the array's largest value: a matrix
        # computed in float32 (ZCA's, through an SVD) differs between BLAS
        # builds by ~1e-6 of its scale in every element, small ones too.
        finite = np.abs(b[np.isfinite(b)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        if not np.allclose(a, b, rtol=1e-6, atol=1e-6 * scale, equal_nan=True):
            worst = np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)))
            return f"values differ by up to {worst:g}"
    elif not np.array_equal(a, b):
        return f"{int(np.sum(a != b))} values differ"
    return None


def compare_arrays(new: str, old: str) -> str | None:
    if new.endswith(".npy"):
        return same_array(
            np.load(new, allow_pickle=False), np.load(old, allow_pickle=False)
        )
    with np.load(new) as a, np.load(old) as b:
        if sorted(a.files) != sorted(b.files):
            return f"members {sorted(a.files)} vs committed {sorted(b.files)}"
        for m in a.files:
            problem = same_array(a[m], b[m])
            if problem:
                return f"member {m}: {problem}"
    # Stored vs compressed members are part of what the fixture tests.
    with zipfile.ZipFile(new) as a, zipfile.ZipFile(old) as b:
        if [i.compress_type for i in a.infolist()] != [
            i.compress_type for i in b.infolist()
        ]:
            return "compression differs"
    return None


def compare(new: str, old: str) -> str | None:
    if new.endswith((".npy", ".npz")):
        try:
            return compare_arrays(new, old)
        except Exception:  # noqa: BLE001 - a deliberately malformed file
            return compare_bytes(new, old)  # its bytes are the fixture
    return compare_bytes(new, old)


def compare_bytes(new: str, old: str) -> str | None:
    with open(new, "rb") as a, open(old, "rb") as b:
        return None if a.read() == b.read() else "bytes differ"


def main() -> int:
    scripts = sorted(
        f for f in os.listdir(FIXTURES) if f.startswith("gen_") and f.endswith(".py")
    )
    problems, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        # The generators run from a repository root of their own, which has
        # only them: whatever appears under its tests/fixtures was written.
        out = os.path.join(tmp, "tests", "fixtures")
        os.makedirs(out)
        for script in scripts:
            shutil.copy(os.path.join(FIXTURES, script), out)
        for script in scripts:
            run = subprocess.run(
                [sys.executable, os.path.join("tests", "fixtures", script)],
                cwd=tmp,
                check=False,
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                problems.append(
                    f"{script}: exit {run.returncode}\n{run.stderr[-2000:]}"
                )
        for dirpath, _, files in os.walk(out):
            for f in files:
                new = os.path.join(dirpath, f)
                rel = os.path.relpath(new, out)
                if rel in scripts or "__pycache__" in rel:
                    continue
                old = os.path.join(FIXTURES, rel)
                checked += 1
                if not os.path.exists(old):
                    problems.append(f"wrote {rel}, which is not committed")
                    continue
                problem = compare(new, old)
                if problem:
                    problems.append(f"{rel}: {problem}")
    for p in problems:
        print("fixture mismatch:", p)
    print(
        f"{len(scripts)} generators, {checked} files compared, {len(problems)} mismatches"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
