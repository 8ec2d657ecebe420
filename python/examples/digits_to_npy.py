"""scikit-learn's digits (1,797 8x8 images, shipped with scikit-learn) as
an image folder (one sub-folder per class), then ``npyflow convert images``
into ``OUT/x.npy`` (32x32 grayscale uint8), ``OUT/y.npy`` and
``OUT/classes.txt``, the rows shuffled once.

    python digits_to_npy.py OUT [--npyflow PATH-TO-THE-npyflow-TOOL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def tool(given: str | None) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (
        given,
        shutil.which("npyflow"),
        os.path.join(here, "..", "..", "target", "release", "npyflow"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemExit("npyflow tool not found: cargo build --release -p npyflow-tool, or --npyflow")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--npyflow", default=None)
    args = p.parse_args()
    digits = load_digits()
    folder = os.path.join(args.out, "png")
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        d = os.path.join(folder, str(label))
        os.makedirs(d, exist_ok=True)
        # 0-16 -> 0-255
        Image.fromarray((image * 255 / 16).round().astype(np.uint8)).save(f"{d}/{i:04d}.png")
    subprocess.run(
        [tool(args.npyflow), "convert", "images", folder, "--out", args.out, "--size", "32x32",
         "--color", "grayscale", "--filter", "triangle", "--quiet"],
        check=True,
    )  # fmt: skip
    # The tool writes the classes in folder order; shuffle the rows once, so
    # that Keras' validation split (the first rows) holds every class.
    x = np.load(os.path.join(args.out, "x.npy"))
    y = np.load(os.path.join(args.out, "y.npy"))
    perm = np.random.default_rng(0).permutation(len(y))
    np.save(os.path.join(args.out, "x.npy"), x[perm])
    np.save(os.path.join(args.out, "y.npy"), y[perm].astype(np.int64))
    print(f"{args.out}/x.npy: {x.shape} {x.dtype}, y.npy: {len(y)} labels")


if __name__ == "__main__":
    main()
