"""``compat='keras3'`` against the legacy ``ImageDataGenerator`` of Keras 3
(``keras/src/legacy/preprocessing/image.py``), run live: transforms with
explicit parameters, brightness, fit statistics with ZCA, flow batches of
deterministic configurations, and the Keras 3 defaults."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from conftest import images

import npyflow

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GEO = {"theta": 17.5, "tx": 1.3, "ty": -2.1, "shear": 8.0, "zx": 0.9, "zy": 1.15}
REST = {"channel_shift_intensity": 10.5, "flip_horizontal": True, "flip_vertical": True}


@pytest.fixture(scope="module")
def k3():
    """Keras 3's legacy preprocessing module (JAX backend: any backend will
    do, the legacy generator is numpy, scipy and Pillow)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("jax")
    keras = pytest.importorskip("keras")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip(f"keras {keras.__version__} is not Keras 3")
    from keras.src.legacy.preprocessing import image

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return image


def _uniform(shape, lo=0.0, hi=255.0, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


@pytest.mark.parametrize(
    ("shape", "params", "kwargs"),
    [
        ((7, 7, 3), {"theta": 30.0}, {}),
        ((5, 8, 3), {"theta": 90.0}, {}),
        ((5, 8, 3), {"tx": 1.3, "ty": -2.1}, {}),
        ((5, 8, 3), {"shear": 20.0}, {}),
        ((5, 8, 3), {"zx": 0.8, "zy": 1.25}, {}),
        ((9, 11, 3), dict(GEO, **REST), {"fill_mode": "constant", "cval": 12.5}),
        ((9, 11, 3), GEO, {"fill_mode": "wrap", "interpolation_order": 3}),
        ((3, 9, 11), dict(GEO, **REST), {"data_format": "channels_first"}),
    ],
)
def test_apply_transform_matches_keras3(k3, shape, params, kwargs):
    x = _uniform(shape)
    want = k3.ImageDataGenerator(**kwargs).apply_transform(x.copy(), params)
    ours = npyflow.ImageDataGenerator(compat="keras3", **kwargs)
    got = ours.apply_transform(x, params)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    # 1.1.2's numerics are another transform.
    old = npyflow.ImageDataGenerator(**kwargs).apply_transform(x, params)
    assert np.max(np.abs(old - want)) > 1.0


@pytest.mark.parametrize("lo_hi", [(0.0, 255.0), (0.0, 1.0), (-3.0, 7.0), (-40.0, 600.0)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_brightness_matches_keras3_exactly(k3, lo_hi, channels):
    x = _uniform((6, 7, channels), *lo_hi, seed=channels)
    for factor in (0.3, 1.0, 1.2345, 2.5):
        want = k3.ImageDataGenerator().apply_transform(x.copy(), {"brightness": factor})
        got = npyflow.ImageDataGenerator(compat="keras3").apply_transform(x, {"brightness": factor})
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("n", "hw", "kwargs"),
    [
        (20, 4, {"featurewise_std_normalization": True, "rescale": 1 / 255}),
        (60, 3, {"zca_whitening": True}),
        (10, 4, {"zca_whitening": True, "rescale": 1 / 255}),
    ],
)
def test_fit_and_flow_match_keras3(k3, n, hw, kwargs):
    x = images(n, hw, hw, 3, seed=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = k3.ImageDataGenerator(**kwargs)
        ng = npyflow.ImageDataGenerator(compat="keras3", **kwargs)
    kg.fit(x)
    ng.fit(x)
    np.testing.assert_allclose(ng.mean, kg.mean, rtol=1e-5, atol=1e-4)
    if kg.std is not None:
        np.testing.assert_allclose(ng.std, kg.std, rtol=1e-5)
    if kg.zca_whitening_matrix is not None:
        pz, kz = ng.zca_whitening_matrix, kg.zca_whitening_matrix
        assert pz.dtype == kz.dtype == np.float64
        np.testing.assert_allclose(pz, kz, rtol=0, atol=1e-4 * max(1.0, np.abs(kz).max()))
        # A single image: Keras 3 whitens in float64 and returns float64.
        one = x[0].astype(np.float32)
        want = kg.standardize(one.copy())
        got = ng.standardize(one.copy())
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    kit = kg.flow(x, batch_size=4, shuffle=False)
    nit = ng.flow(x, batch_size=4, shuffle=False)
    assert len(kit) == len(nit)
    for i in range(len(kit)):
        kb, nb = kit[i], nit[i]
        assert nb.dtype == kb.dtype and nb.shape == kb.shape
        np.testing.assert_allclose(nb, kb, rtol=0, atol=1e-4 * max(1.0, np.abs(kb).max()))


def test_keras3_defaults_and_refusals(k3):
    g = npyflow.ImageDataGenerator(compat="keras3", data_format=None, dtype=None)
    kg = k3.ImageDataGenerator()
    assert (g.data_format, g.dtype) == (kg.data_format, kg.dtype)
    with pytest.raises(ValueError, match="Received: None"):
        npyflow.ImageDataGenerator(data_format=None)
    with pytest.raises(TypeError, match="by keyword"):
        g.flow(images(4), None, 2, False, None, None, None, "", "png", True)
    with pytest.raises(ValueError, match="compat"):
        npyflow.ImageDataGenerator(compat="keras2")
