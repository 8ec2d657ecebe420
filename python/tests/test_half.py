"""Half-precision batches: ``dtype='float16'`` (as Keras') and
``dtype='bfloat16'`` (``ml_dtypes.bfloat16``), computed in float32 and
rounded once, to nearest even, into the batch.

Keras 1.1.2 computes a float16 batch *in* float16: ``x`` is converted to
float16 first and ``standardize`` works on the float16 array, so each of
its steps rounds (``x *= rescale`` multiplies by ``float16(rescale)``).
npyflow rounds once, at the end. The two agree exactly wherever Keras'
steps are exact (no rescale, a power-of-two rescale); with
``rescale=1/255`` they differ by at most one unit in the last place, in
the few values where Keras' double rounding lands on the other neighbour.
Against Keras' float32 batch rounded to float16 (one rounding, as npyflow
does), npyflow is exact."""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np
import pytest
from conftest import images

import npyflow


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place of two float16 arrays of
    non-negative values (consecutive bit patterns are neighbours)."""
    assert (a >= 0).all() and (b >= 0).all()
    return np.abs(a.view(np.int16).astype(np.int32) - b.view(np.int16).astype(np.int32))


def _batches(it, n):
    return [it[i] for i in range(n)]


@pytest.mark.parametrize(
    "gen_kwargs",
    [
        {},
        {"rescale": 0.5},
        {"rescale": 1 / 64, "data_format": "channels_first"},
    ],
)
def test_float16_equals_keras_where_keras_rounds_once(keras, gen_kwargs):
    x = images(11, 6, 5, 3)
    if gen_kwargs.get("data_format") == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    kit = keras.ImageDataGenerator(dtype="float16", **gen_kwargs).flow(
        x.astype(np.float32), batch_size=4, shuffle=False
    )
    ours = npyflow.ImageDataGenerator(**gen_kwargs).flow(
        x, batch_size=4, shuffle=False, dtype="float16"
    )
    assert len(ours) == len(kit) == 3
    for i in range(3):
        kx, nx = kit[i], ours[i]
        assert kx.dtype == nx.dtype == np.float16 and kx.shape == nx.shape
        np.testing.assert_array_equal(nx.view(np.uint16), kx.view(np.uint16))


def test_float16_rescale_is_keras_float32_rounded_once(keras):
    x = images(40, 8, 8, 3, seed=5)
    x[0, 0, 0, :] = [0, 128, 255]
    kw = {"rescale": 1 / 255}
    k16 = keras.ImageDataGenerator(dtype="float16", **kw).flow(x, batch_size=40, shuffle=False)[0]
    k32 = keras.ImageDataGenerator(**kw).flow(x, batch_size=40, shuffle=False)[0]
    ours = npyflow.ImageDataGenerator(**kw).flow(x, batch_size=40, shuffle=False, dtype="float16")[
        0
    ]
    assert ours.dtype == np.float16
    # One rounding of Keras' float32 result: exactly npyflow's.
    np.testing.assert_array_equal(ours.view(np.uint16), k32.astype(np.float16).view(np.uint16))
    # Keras' float16 arithmetic: within one unit in the last place, and
    # really different somewhere (else this test shows nothing).
    d = _ulps(ours, k16)
    assert d.max() == 1 and d.sum() > 0


def test_float16_samplewise_within_one_ulp_of_keras_float32_rounded(keras):
    x = images(12, 7, 6, 3, seed=2)
    kw = {"samplewise_center": True, "samplewise_std_normalization": True}
    k32 = keras.ImageDataGenerator(**kw).flow(x, batch_size=12, shuffle=False)[0]
    ours = npyflow.ImageDataGenerator(**kw).flow(x, batch_size=12, shuffle=False, dtype="float16")
    o32 = npyflow.ImageDataGenerator(**kw).flow(x, batch_size=12, shuffle=False)[0]
    # The float32 batches agree to ~1e-6 (summation order), so rounded
    # they may land on neighbouring float16 values; npyflow's own float32
    # batch rounds to its float16 batch exactly.
    np.testing.assert_array_equal(ours[0].view(np.uint16), o32.astype(np.float16).view(np.uint16))
    k = k32.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(ours[0].astype(np.float64), k, rtol=2**-10, atol=2**-24)


AUGMENT = dict(
    rotation_range=20,
    width_shift_range=0.1,
    height_shift_range=0.2,
    shear_range=10,
    zoom_range=0.2,
    channel_shift_range=10,
    brightness_range=(0.8, 1.2),
    horizontal_flip=True,
    rescale=1 / 255,
)


@pytest.mark.parametrize("order", ["sequential", "shuffle", ("blocks", 4, 2)])
def test_half_batches_are_the_float32_batches_rounded_once(order):
    x = images(37, 10, 9, 3, seed=4)
    y = np.arange(37)
    gen = npyflow.ImageDataGenerator(**AUGMENT)

    def flow(dtype):
        return gen.flow(x, y, batch_size=8, seed=3, order=order, dtype=dtype)

    f32, f16, b16 = flow("float32"), flow("float16"), flow("bfloat16")
    assert len(f32) == len(f16) == len(b16) == 5
    for i in range(5):
        (a, ya), (h, yh), (b, yb) = f32[i], f16[i], b16[i]
        assert h.dtype == np.float16 and b.dtype == ml_dtypes.bfloat16
        assert a.shape == h.shape == b.shape
        np.testing.assert_array_equal(ya, yh)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(h.view(np.uint16), a.astype(np.float16).view(np.uint16))
        want = a.astype(ml_dtypes.bfloat16)  # ml_dtypes' own rounding
        np.testing.assert_array_equal(b.view(np.uint16), want.view(np.uint16))
        # Not vacuous: the rounding changed values.
        assert (h.astype(np.float32) != a).any() and (b.astype(np.float32) != a).any()


def test_featurewise_standardize_into_half_batches():
    x = images(50, 6, 6, 3, seed=9)
    kw = {"featurewise_center": True, "featurewise_std_normalization": True}
    gen = npyflow.ImageDataGenerator(**kw)
    gen.fit(x)
    a = gen.flow(x, batch_size=50, shuffle=False)[0]
    h = gen.flow(x, batch_size=50, shuffle=False, dtype="float16")[0]
    b = gen.flow(x, batch_size=50, shuffle=False, dtype="bfloat16")[0]
    np.testing.assert_array_equal(h.view(np.uint16), a.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(b.view(np.uint16), a.astype(ml_dtypes.bfloat16).view(np.uint16))
    # A float16 generator fits the float32 statistics.
    g16 = npyflow.ImageDataGenerator(dtype="float16", **kw)
    g16.fit(x)
    h16 = g16.flow(x, batch_size=50, shuffle=False)[0]
    assert h16.dtype == np.float16
    np.testing.assert_array_equal(h16.view(np.uint16), h.view(np.uint16))


def test_half_batches_are_zero_copy_views_of_the_native_batch():
    x = images(6, 4, 4, 3)
    for dtype, want in (("float16", np.float16), ("bfloat16", ml_dtypes.bfloat16)):
        it = npyflow.ImageDataGenerator().flow(x, batch_size=3, shuffle=False, dtype=dtype)
        batch = it[0]
        assert batch.dtype == want and batch.shape == (3, 4, 4, 3)
        assert not batch.flags.owndata and type(batch.base).__name__ == "BatchMemory"
        assert batch.flags.c_contiguous and batch.flags.writeable
        np.testing.assert_array_equal(batch.astype(np.float32), x[:3].astype(np.float32))
    # The numpy dtype objects are accepted too.
    it = npyflow.ImageDataGenerator().flow(x, batch_size=3, dtype=ml_dtypes.bfloat16)
    assert it.dtype == "bfloat16" and it[0].dtype == ml_dtypes.bfloat16
    it = npyflow.ImageDataGenerator().flow(x, batch_size=3, dtype=np.float16)
    assert it.dtype == "float16"


def test_bfloat16_without_ml_dtypes_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import fails
    with pytest.raises(ImportError, match="pip install ml_dtypes"):
        npyflow.ImageDataGenerator().flow(images(4, 3, 3, 3), dtype="bfloat16")
