"""The Rust suite's golden pins (tests/fixtures/golden/golden.json) through
the Python package: the same inputs, options and seed give the same
SHA-256 of every pinned batch — a cross-language check of the whole path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import npyflow

FIXTURE = Path(__file__).resolve().parents[2] / "tests/fixtures/golden/golden.json"
SEED = 20261206
KERAS = dict(
    rotation_range=20.0,
    width_shift_range=0.1,
    height_shift_range=0.1,
    shear_range=10.0,
    zoom_range=0.1,
    horizontal_flip=True,
    rescale=1.0 / 255.0,
)
# name: (options, n, dims, batch_size, order, shard) — as tests/integration/golden.rs
CASES = {
    "keras_augmentation_32x32x3_shuffle": (KERAS, 70, (32, 32, 3), 32, "shuffle", (0, 1)),
    "keras_augmentation_48x40x3_reflect_f64": (
        {**KERAS, "fill_mode": "reflect", "dtype": "float64"},
        9,
        (48, 40, 3),
        4,
        "sequential",
        (0, 1),
    ),
    "spline3_constant_colour_1ch": (
        dict(
            rotation_range=45.0,
            zoom_range=[0.8, 1.3],
            interpolation_order=3,
            fill_mode="constant",
            cval=17.0,
            channel_shift_range=30.0,
            vertical_flip=True,
        ),
        12,
        (17, 23, 1),
        5,
        "shuffle",
        (0, 1),
    ),
    "brightness_wrap_channels_first_blocks_shard": (
        dict(
            width_shift_range=4,
            shear_range=20.0,
            brightness_range=[0.5, 1.5],
            fill_mode="wrap",
            interpolation_order=0,
            data_format="channels_first",
            samplewise_center=True,
            samplewise_std_normalization=True,
        ),
        40,
        (3, 14, 11),
        6,
        ("blocks", 5, 2),
        (1, 3),
    ),
}


def golden_images(n, dims):
    sl = int(np.prod(dims))
    k = np.arange(n * sl, dtype=np.int64)
    data = ((k // sl) * 29 + (k % sl) * 7 + (k % sl) // 13) % 256
    return data.astype(np.uint8).reshape((n, *dims))


@pytest.mark.skipif(not FIXTURE.exists(), reason="runs from a checkout")
@pytest.mark.parametrize("name", sorted(CASES))
def test_python_batches_have_the_pinned_digests(name, tmp_path):
    pinned = json.loads(FIXTURE.read_text())["batches"][name]
    options, n, dims, batch_size, order, shard = CASES[name]
    np.save(tmp_path / "x.npy", golden_images(n, dims))
    y = np.arange(n, dtype=np.int64) * 3 - 7
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = npyflow.ImageDataGenerator(**options)
        it = gen.flow(
            str(tmp_path / "x.npy"), y, batch_size=batch_size, order=order, shard=shard, seed=SEED
        )
    assert set(pinned)
    for key, want in pinned.items():
        epoch, batch = (int(part.split("=")[1]) for part in key.split())
        it.load_state_dict({"seed": SEED, "epoch": epoch, "batch": batch})
        x, yb = next(it)
        assert list(x.shape) == want["shape"], key
        assert yb.tolist() == want["y"], key
        digest = hashlib.sha256(x.astype(x.dtype.newbyteorder("<")).tobytes()).hexdigest()
        assert digest == want["images_sha256"], key
