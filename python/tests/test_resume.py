"""Exact resume: ``state_dict()`` saved part-way and ``load_state_dict()``
into an iterator with other threads, prefetch, batch size or number of
ranks delivers exactly the samples and pixels of the uninterrupted run."""

from __future__ import annotations

import json
import os
import pickle
import sys

import numpy as np
import pytest
from conftest import images

import npyflow

N = 26
SEED = 9


@pytest.fixture(autouse=True)
def _plain_iterators(monkeypatch):
    """These tests pin the plain iterator's protocol (keras-preprocessing's
    ``on_epoch_end`` moves to the next epoch at once). With Keras 3 imported
    by another test module in this process, ``flow()`` would return the
    ``PyDataset`` flavour, whose ``on_epoch_end`` waits for the epoch's
    batches (tested in test_frameworks.py); hide it for these tests."""
    monkeypatch.delitem(sys.modules, "keras", raising=False)


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, images(N, 8, 6, 3, seed=2))
    return str(p)


def _flow(path, **kw):
    gen = npyflow.ImageDataGenerator(
        rotation_range=25, height_shift_range=0.2, horizontal_flip=True
    )
    kw.setdefault("batch_size", 4)
    kw.setdefault("seed", SEED)
    return gen.flow(path, np.arange(N), **kw)


def _samples(batches):
    """[(label, image)] of a list of (x, y) batches."""
    return [(int(label), img) for x, y in batches for img, label in zip(x, y)]


def _same(a, b):
    assert [s[0] for s in a] == [s[0] for s in b]
    for (la, ia), (_, ib) in zip(a, b):
        np.testing.assert_array_equal(ia, ib, err_msg=f"sample {la}")


def _rest(it):
    return _samples(list(it.epoch()))


def test_mid_epoch_with_other_threads_and_prefetch(path):
    a = _flow(path, threads=1, prefetch=0)
    for _ in range(3):
        next(a)
    state = json.loads(json.dumps(a.state_dict()))
    assert (state["epoch"], state["remaining"]) == (0, [[12, N]])
    expected = _samples([next(a) for _ in range(8)])
    for threads, prefetch in [(2, 0), (2, 6), (1, 2)]:
        b = _flow(path, threads=threads, prefetch=prefetch, seed=None)
        b.load_state_dict(state)
        assert len(b) == 4  # 14 left, in batches of 4
        _same(_samples([next(b) for _ in range(8)]), expected)


def test_at_the_epoch_boundary(path):
    a = _flow(path)
    list(a.epoch())
    state = a.state_dict()
    assert (state["epoch"], state["remaining"]) == (1, None)
    k = _flow(path)
    k.on_epoch_end()  # Keras' way to the next epoch: the same state
    assert k.state_dict() == state
    expected = _rest(a)
    b = _flow(path)
    b.load_state_dict(state)
    _same(_rest(b), expected)


def test_another_batch_size_rebatches_the_rest(path):
    a = _flow(path)
    before = _samples([next(a), next(a)])
    state = a.state_dict()
    rest = _rest(a)
    b = _flow(path, batch_size=5)
    b.load_state_dict(state)
    assert len(b) == 4  # 18 left: 5, 5, 5, 3
    _same(_rest(b), rest)
    assert len(before) + len(rest) == N
    # Then full epochs, in batches of 5.
    c = _flow(path, batch_size=5)
    c.load_state_dict({**state, "remaining": None, "epoch": 1})
    _same(_rest(b), _rest(c))


@pytest.mark.parametrize("world, world2", [(1, 3), (3, 2), (3, 3), (4, 2), (2, 1)])
def test_elastic_resume_over_env_ranks(path, monkeypatch, world, world2):
    """W ranks take 2 batches each and save (all the same state); W' ranks
    load it: together every sample of the epoch, padding only to equalise
    the ranks, each rank as many batches, the pixels of one process."""
    pixels = dict(_rest(_flow(path)))

    def rank(r, w):
        monkeypatch.setenv("RANK", str(r))
        monkeypatch.setenv("WORLD_SIZE", str(w))
        return _flow(path, shard="auto")

    before, states = [], []
    for r in range(world):
        it = rank(r, world)
        before += _samples([next(it), next(it)])
        states.append(it.state_dict())
    assert all(s == states[0] for s in states)
    after, counts = [], []
    for r in range(world2 if states[0]["epoch"] == 0 else 0):
        it = rank(r, world2)
        it.load_state_dict(states[0])
        batches = list(it.epoch())
        counts.append(len(batches))
        after += _samples(batches)
    assert len(set(counts)) <= 1
    labels = [s[0] for s in before + after]
    assert sorted(set(labels)) == list(range(N))
    assert len(labels) - N < world + world2  # padding only
    for label, img in before + after:
        np.testing.assert_array_equal(img, pixels[label])


def test_batches_taken_by_index_in_any_order_count(path):
    a = _flow(path)
    taken = {i: a[i] for i in (5, 1, 3)}
    state = a.state_dict()
    # Batches 1, 3, 5 hold positions 4-8, 12-16, 20-24.
    assert state["remaining"] == [[0, 4], [8, 12], [16, 20], [24, N]]
    b = _flow(path)
    b.load_state_dict(state)
    got = _rest(b)
    expected = _samples([a[i] for i in (0, 2, 4, 6)])
    _same(got, expected)
    assert not {s[0] for s in got} & {s[0] for s in _samples(taken.values())}


def test_pickle_and_fork_keep_a_resumed_epoch(path):
    a = _flow(path)
    next(a)
    state = a.state_dict()
    b = _flow(path, prefetch=3, threads=2)
    b.load_state_dict(state)
    next(b)
    clone = pickle.loads(pickle.dumps(b))
    assert clone.state_dict() == b.state_dict()
    expected = _rest(b)
    _same(_rest(clone), expected)
    if not hasattr(os, "fork"):
        return
    c = _flow(path, prefetch=3, threads=2)
    c.load_state_dict(state)
    next(c)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the pipeline is rebuilt, the resumed epoch kept
        try:
            got = _rest(c)
            ok = [s[0] for s in got] == [s[0] for s in expected] and all(
                np.array_equal(x[1], y[1]) for x, y in zip(got, expected)
            )
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_a_state_of_other_data_or_order_is_a_value_error(path):
    a = _flow(path)
    state = a.state_dict()
    with pytest.raises(ValueError, match="over 27 samples, this one has 26"):
        a.load_state_dict({**state, "samples": 27})
    with pytest.raises(ValueError, match="in order Shuffle, this one is in order Sequential"):
        _flow(path, shuffle=False).load_state_dict(state)
    with pytest.raises(ValueError, match="remaining"):
        a.load_state_dict({**state, "remaining": [[5, 3]]})
    with pytest.raises(ValueError, match="invalid iterator state"):
        a.load_state_dict({"epoch": 1})
    assert a.state_dict() == state
