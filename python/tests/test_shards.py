"""Many processes in one: ``shard="auto"`` from RANK/WORLD_SIZE over 1-5
ranks. Every rank yields as many samples and batches, together the epoch's
permutation (padded by wrapping around, or cut with ``drop_last``), and a
sample's pixels never depend on the world size."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import images

import npyflow

N = 23


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, images(N, 9, 7, 3, seed=5))
    return str(path), np.arange(N)


def _gen():
    return npyflow.ImageDataGenerator(
        rotation_range=30, width_shift_range=0.2, zoom_range=0.2, horizontal_flip=True
    )


def _epoch(it):
    """[(label, image)] of one epoch, and its batch count."""
    batches = list(it.epoch())
    return [(int(label), img) for x, y in batches for img, label in zip(x, y)], len(batches)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("drop_last", [False, True])
def test_env_var_shards_are_equal_disjoint_and_world_independent(
    data, monkeypatch, world, drop_last
):
    path, y = data
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    single, _ = _epoch(_gen().flow(path, y, batch_size=4, seed=7))
    pixels = dict(single)
    order = [label for label, _ in single]
    per = N // world if drop_last else -(-N // world)
    batches = per // 4 if drop_last else -(-per // 4)
    seen = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        it = _gen().flow(path, y, batch_size=4, seed=7, shard="auto", drop_last=drop_last)
        assert (it.n, len(it)) == (per, batches)
        samples, count = _epoch(it)
        assert count == batches
        taken = batches * 4 if drop_last else per
        # A contiguous slice of the single process's order, padded by wrapping.
        want = [order[p % N] for p in range(rank * per, rank * per + taken)]
        assert [s[0] for s in samples] == want
        for label, img in samples:
            np.testing.assert_array_equal(img, pixels[label])
        seen += [s[0] for s in samples]
    if not drop_last:
        assert seen[:N] == order and seen[N:] == order[: world * per - N]
    else:
        assert len(set(seen)) == len(seen)


def test_auto_without_a_launcher_is_one_process(data, monkeypatch):
    path, y = data
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    it = _gen().flow(path, y, batch_size=4, seed=7, shard="auto")
    assert (it.n, len(it)) == (N, 6)


def test_bad_shards_are_value_errors(data):
    path, y = data
    with pytest.raises(ValueError, match="shard"):
        _gen().flow(path, y, shard=(2, 2))
