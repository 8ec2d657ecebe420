"""npyflow against keras-preprocessing 1.1.2, run live: batches for the
deterministic options, fit statistics, single-image operations, return
shapes and Keras' error cases (same type, same message)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import images

import npyflow

TOL = 1e-4  # on 0..255 data, as the Rust fixtures


def keras_batches(keras, gen_kwargs, x, y=None, **flow):
    kg = keras.ImageDataGenerator(**gen_kwargs)
    return kg, kg.flow(x, y, **flow)


@pytest.mark.parametrize(
    "gen_kwargs",
    [
        {},
        {"rescale": 1 / 255},
        {"samplewise_center": True, "samplewise_std_normalization": True},
        {"rescale": 0.5, "samplewise_center": True},
        {"dtype": "float64", "rescale": 1 / 3},
        {"data_format": "channels_first"},
    ],
)
def test_sequential_batches_match_keras(keras, gen_kwargs):
    x = images(11, 6, 5, 3)
    if gen_kwargs.get("data_format") == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y = np.arange(11) * 2
    _, kit = keras_batches(keras, gen_kwargs, x.astype(np.float32), y, batch_size=4, shuffle=False)
    ours = npyflow.ImageDataGenerator(**gen_kwargs).flow(x, y, batch_size=4, shuffle=False)
    assert len(ours) == len(kit) == 3
    for i in range(3):
        (kx, ky), (nx, ny) = kit[i], ours[i]
        assert nx.dtype == kx.dtype and nx.shape == kx.shape
        np.testing.assert_allclose(nx, kx, rtol=0, atol=TOL)
        np.testing.assert_array_equal(ny, ky)
        assert ny.dtype == ky.dtype


def test_featurewise_statistics_and_batches_match_keras(keras):
    x = images(300, 6, 5, 3, seed=3).astype(np.float64)  # full rank: N > D = 90
    for kwargs in (
        {"featurewise_center": True},
        {"featurewise_std_normalization": True, "rescale": 1 / 255},
        {"zca_whitening": True},
    ):
        with pytest.warns(UserWarning) if "featurewise_center" not in kwargs else _nothing():
            kg = keras.ImageDataGenerator(dtype="float64", **kwargs)
        kg.fit(x)
        with pytest.warns(UserWarning) if "featurewise_center" not in kwargs else _nothing():
            ng = npyflow.ImageDataGenerator(dtype="float64", **kwargs)
        ng.fit(x.astype(np.uint8))
        np.testing.assert_allclose(ng.mean, kg.mean, rtol=1e-9, atol=1e-9)
        assert ng.mean.shape == kg.mean.shape == (1, 1, 3)
        if kg.std is not None:
            np.testing.assert_allclose(ng.std, kg.std, rtol=1e-9)
        else:
            assert ng.std is None
        if kg.principal_components is not None:
            np.testing.assert_allclose(
                ng.principal_components, kg.principal_components, rtol=1e-6, atol=1e-6
            )
        kb = kg.flow(x, batch_size=16, shuffle=False)[1]
        nb = ng.flow(x, batch_size=16, shuffle=False)[1]
        np.testing.assert_allclose(nb, kb, atol=1e-6)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_fit_channels_first_float32_default_dtype(keras):
    x = images(20, 3, 6, 5, seed=4).astype(np.float64)  # (N, C=3, H, W)
    kg = keras.ImageDataGenerator(
        featurewise_std_normalization=True, data_format="channels_first", dtype="float64"
    )
    ng = npyflow.ImageDataGenerator(
        featurewise_std_normalization=True, data_format="channels_first"
    )
    kg.fit(x)
    ng.fit(x)
    assert ng.mean.shape == (3, 1, 1) and ng.mean.dtype == np.float32
    np.testing.assert_allclose(ng.mean, kg.mean, rtol=1e-6)
    np.testing.assert_allclose(ng.std, kg.std, rtol=1e-6)


def test_subsets_and_batch_composition_match_keras(keras):
    x = images(10, 4, 4, 1).astype(np.float32)
    y = np.array([0, 1] * 5)
    for subset in ("training", "validation"):
        kit = keras.ImageDataGenerator(validation_split=0.3).flow(
            x, y, batch_size=3, shuffle=False, subset=subset
        )
        ours = npyflow.ImageDataGenerator(validation_split=0.3).flow(
            x, y, batch_size=3, shuffle=False, subset=subset
        )
        assert (len(ours), ours.n) == (len(kit), kit.n)
        for i in range(len(kit)):
            np.testing.assert_array_equal(ours[i][0], kit[i][0])
            np.testing.assert_array_equal(ours[i][1], kit[i][1])


def test_return_shapes_match_keras(keras):
    x = images(8, 5, 5, 3).astype(np.float32)
    y = np.arange(8)
    w = np.arange(8) + 1.0
    m1 = np.arange(8) * 10
    m2 = np.arange(8 * 9).reshape(8, 3, 3)
    cases = [
        ((x,), {}),
        ((x, y), {}),
        ((x, y), {"sample_weight": w}),
        (((x, m1), y), {}),
        (((x, [m1, m2]), y), {}),
        (((x, [m1, m2]),), {}),
        (((x, m1),), {}),
    ]
    for args, kw in cases:
        kb = keras.ImageDataGenerator().flow(*args, batch_size=3, shuffle=False, **kw).next()
        nb = npyflow.ImageDataGenerator().flow(*args, batch_size=3, shuffle=False, **kw).next()
        assert _structure(nb) == _structure(kb), (args, kw)
        for a, b in zip(_leaves(nb), _leaves(kb)):
            np.testing.assert_array_equal(a, b)
    # Keras drops sample weights without y; so does npyflow (with a warning).
    with pytest.warns(UserWarning, match="ignored without `y`"):
        nb = npyflow.ImageDataGenerator().flow(x, sample_weight=w, batch_size=3).next()
    assert isinstance(nb, np.ndarray)


def _structure(b):
    if isinstance(b, np.ndarray):
        return ("array", b.shape)
    return (type(b).__name__, tuple(_structure(e) for e in b))


def _leaves(b):
    if isinstance(b, np.ndarray):
        return [b]
    return [leaf for e in b for leaf in _leaves(e)]


def _keras_error(f):
    with pytest.raises(Exception) as e:
        f()
    return e


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.ImageDataGenerator(data_format="channels_middle"),
        lambda m: m.ImageDataGenerator(validation_split=5),
        lambda m: m.ImageDataGenerator(validation_split=-0.5),
        lambda m: m.ImageDataGenerator(zoom_range=[0.5]),
        lambda m: m.ImageDataGenerator(zoom_range=np.float32(0.2)),
        lambda m: m.ImageDataGenerator(brightness_range=0.1),
        lambda m: m.ImageDataGenerator(brightness_range=np.array([0.5, 1.5])),
        lambda m: m.ImageDataGenerator().flow(np.zeros((8, 4, 4, 3)), np.arange(9)),
        lambda m: m.ImageDataGenerator().flow(
            np.zeros((8, 4, 4, 3)), np.arange(8), sample_weight=np.ones(7)
        ),
        lambda m: m.ImageDataGenerator().flow((np.zeros((8, 4, 4, 3)), np.arange(9))),
        lambda m: m.ImageDataGenerator().flow(np.arange(32)),
        lambda m: m.ImageDataGenerator(validation_split=0.5).flow(
            np.zeros((8, 4, 4, 3)), np.arange(8), subset="foo"
        ),
        lambda m: m.ImageDataGenerator().fit(np.zeros((8, 4, 4))),
        lambda m: m.ImageDataGenerator().flow(np.zeros((8, 4, 4, 3)), batch_size=3)[3],
    ],
)
def test_errors_match_keras(keras, call):
    ke = _keras_error(lambda: call(keras))
    ne = _keras_error(lambda: call(npyflow))
    assert type(ne.value) is type(ke.value), (ne.value, ke.value)
    assert str(ne.value) == str(ke.value)


def test_class_split_error_has_keras_words(keras):
    x = np.zeros((8, 4, 4, 1), np.float32)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    msg = "Training and validation subsets have different number of classes after the split"
    with pytest.raises(ValueError, match=msg):
        keras.ImageDataGenerator(validation_split=0.5).flow(x, y, subset="validation")
    with pytest.raises(ValueError, match=msg):
        npyflow.ImageDataGenerator(validation_split=0.5).flow(x, y, subset="validation")
    it = npyflow.ImageDataGenerator(validation_split=0.5).flow(
        x, y, subset="validation", ignore_class_split=True
    )
    assert it.n == 4


def test_npyflow_specific_errors_are_conventional(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        npyflow.ImageDataGenerator().flow(tmp_path / "missing.npy")
    assert e.value.filename == str(tmp_path / "missing.npy")
    with pytest.raises(IsADirectoryError) as e:
        npyflow.ImageDataGenerator().flow(str(tmp_path))
    assert e.value.filename == str(tmp_path) and "is a folder" in str(e.value)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="not a .npy file"):
        npyflow.ImageDataGenerator().flow(bad)
    with pytest.raises(TypeError, match="complex"):
        npyflow.ImageDataGenerator().flow(np.zeros((2, 2, 2, 3), np.complex64))
    with pytest.raises(TypeError, match="object"):
        npyflow.ImageDataGenerator().flow(np.empty((2, 2, 2, 3), object))
    with pytest.raises(ValueError, match="fill_mode"):
        npyflow.ImageDataGenerator(fill_mode="edge")
    with pytest.raises(ValueError, match="batch_size"):
        npyflow.ImageDataGenerator().flow(np.zeros((2, 2, 2, 3)), batch_size=0)
    with pytest.raises(ValueError, match="statistics"):
        next(npyflow.ImageDataGenerator(featurewise_center=True).flow(np.zeros((2, 2, 2, 3))))
    # An unknown compat: a clear error naming the option (keras3: test_keras3.py).
    with pytest.raises(ValueError, match="compat"):
        npyflow.ImageDataGenerator(compat="keras2")


@pytest.mark.parametrize("order", [0, 1])
def test_apply_transform_and_standardize_match_keras(keras, order):
    x = images(1, 9, 11, 3, seed=5)[0].astype(np.float32)
    kwargs = dict(
        interpolation_order=order,
        fill_mode="reflect",
        rescale=1 / 255,
        samplewise_center=True,
    )
    kg = keras.ImageDataGenerator(**kwargs)
    ng = npyflow.ImageDataGenerator(**kwargs)
    params = {
        "theta": 17.0,
        "tx": 1.5,
        "ty": -2.25,
        "shear": 8.0,
        "zx": 0.9,
        "zy": 1.1,
        "flip_horizontal": 1,
        "channel_shift_intensity": 12.0,
    }
    kt = kg.apply_transform(x.copy(), params)
    nt = ng.apply_transform(x, params)
    assert nt.dtype == np.float32 and nt.shape == x.shape
    np.testing.assert_allclose(nt, kt, atol=TOL)
    ks = kg.standardize(kt.copy())
    ns = ng.standardize(nt.copy())
    np.testing.assert_allclose(ns, ks, atol=TOL)
    # In place on a float array, as Keras.
    y = nt.copy()
    assert ng.standardize(y) is y


def test_random_transform_keys_and_determinism():
    g = npyflow.ImageDataGenerator(
        rotation_range=90,
        width_shift_range=0.1,
        height_shift_range=0.1,
        shear_range=0.5,
        zoom_range=0.2,
        channel_shift_range=0.1,
        brightness_range=(1, 5),
        horizontal_flip=True,
        vertical_flip=True,
    )
    a = g.get_random_transform((28, 28, 3), seed=1)
    b = g.get_random_transform((28, 28, 3), seed=2)
    assert list(a) == [
        "theta",
        "tx",
        "ty",
        "shear",
        "zx",
        "zy",
        "flip_horizontal",
        "flip_vertical",
        "channel_shift_intensity",
        "brightness",
    ]
    for k in ("theta", "tx", "ty", "shear", "zx", "zy", "channel_shift_intensity", "brightness"):
        assert a[k] != 0 and a[k] != b[k], k
    assert a == g.get_random_transform((28, 28, 3), seed=1)
    d = npyflow.ImageDataGenerator().get_random_transform((28, 28, 3), seed=1)
    assert (d["theta"], d["zx"], d["channel_shift_intensity"], d["brightness"]) == (
        0,
        1,
        None,
        None,
    )
    img = images(1, 28, 28, 3)[0].astype(np.float32)
    np.testing.assert_array_equal(g.random_transform(img, seed=7), g.random_transform(img, seed=7))


def test_preprocessing_function_runs_and_its_errors_surface():
    x = images(6, 4, 4, 3)
    g = npyflow.ImageDataGenerator(preprocessing_function=lambda im: im * 2 + 1, rescale=0.5)
    b = g.flow(x, batch_size=6, shuffle=False).next()
    np.testing.assert_allclose(b, (x.astype(np.float32) * 2 + 1) * np.float32(0.5))

    def boom(im):
        raise KeyError("from the user's function")

    g = npyflow.ImageDataGenerator(preprocessing_function=boom)
    with pytest.raises(KeyError, match="from the user's function"):
        g.flow(x, batch_size=2).next()
