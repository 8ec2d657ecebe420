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


class _FakeDist:
    def __init__(self, initialized, rank=0, world=1):
        self._init, self._rank, self._world = initialized, rank, world

    def is_available(self):
        return True

    def is_initialized(self):
        return self._init

    def get_rank(self):
        return self._rank

    def get_world_size(self):
        return self._world


class _FakeTorch:
    def __init__(self, dist):
        self.distributed = dist


class _FakeJax:
    def __init__(self, index, count):
        self._index, self._count = index, count

    def process_index(self):
        return self._index

    def process_count(self):
        return self._count


@pytest.mark.parametrize(
    "torch, jax, env, want",
    [
        # torch.distributed, initialised, comes first.
        (_FakeTorch(_FakeDist(True, 1, 3)), _FakeJax(0, 2), ("0", "4"), (1, 3)),
        # Not initialised: JAX when it runs several processes.
        (_FakeTorch(_FakeDist(False)), _FakeJax(1, 2), ("0", "4"), (1, 2)),
        # One JAX process: the environment.
        (None, _FakeJax(0, 1), ("3", "4"), (3, 4)),
        (None, None, ("2", "4"), (2, 4)),
        # Nothing: one process.
        (None, None, None, (0, 1)),
    ],
)
def test_auto_shard_asks_torch_then_jax_then_the_environment(
    data, monkeypatch, torch, jax, env, want
):
    import sys

    path, y = data
    for name, module in (("torch", torch), ("jax", jax)):
        if module is None:
            monkeypatch.delitem(sys.modules, name, raising=False)
        else:
            monkeypatch.setitem(sys.modules, name, module)
    if env is None:
        monkeypatch.delenv("RANK", raising=False)
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("RANK", env[0])
        monkeypatch.setenv("WORLD_SIZE", env[1])
    it = _gen().flow(path, y, batch_size=4, seed=7, shard="auto")
    rank, world = want
    order = [label for label, _ in _epoch(_gen().flow(path, y, batch_size=4, seed=7))[0]]
    per = -(-N // world)
    assert it.n == per
    got = [label for label, _ in _epoch(it)[0]]
    assert got == [order[p % N] for p in range(rank * per, (rank + 1) * per)]
