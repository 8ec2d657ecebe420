"""PyTorch: ``npyflow.torch.dataset(it)`` in a DataLoader (tensors over the
batches' memory, one pass per epoch, ``set_epoch``, workers that split the
epoch without duplicates or losses) and a ``torchrun --nproc_per_node 2``
run with gloo (equal batch counts, disjoint and complete shards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import images

torch = pytest.importorskip("torch")

import npyflow  # noqa: E402
import npyflow.torch  # noqa: E402

N = 30


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, images(N, 8, 6, 3, seed=4))
    return str(p)


def _flow(path, **kw):
    gen = npyflow.ImageDataGenerator(rotation_range=15, horizontal_flip=True)
    return gen.flow(path, np.arange(N), batch_size=4, seed=3, **kw)


def _plain_epoch(path, epoch):
    it = _flow(path)
    it.load_state_dict({**it.state_dict(), "epoch": epoch})
    return list(it.epoch())


def _same(batches, expected):
    assert len(batches) == len(expected)
    for (x, y), (ex, ey) in zip(batches, expected):
        assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        np.testing.assert_array_equal(y.numpy(), ey)
        np.testing.assert_array_equal(x.numpy(), ex)


def test_tensors_share_the_batches_memory():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    (t,) = npyflow.torch._tensors((a,))
    assert t.data_ptr() == a.ctypes.data


def test_a_pass_is_an_epoch_and_set_epoch_picks_it(path):
    ds = npyflow.torch.dataset(_flow(path))
    loader = torch.utils.data.DataLoader(ds, batch_size=None)
    assert len(loader) == 8
    _same(list(loader), _plain_epoch(path, 0))
    _same(list(loader), _plain_epoch(path, 1))  # without set_epoch: the next one
    ds.set_epoch(5)
    _same(list(loader), _plain_epoch(path, 5))
    assert ds.state_dict()["epoch"] == 6


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_split_the_epoch_in_order(path, context):
    if context not in torch.multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context}")
    ds = npyflow.torch.dataset(_flow(path, prefetch=2, threads=1))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=2, multiprocessing_context=context
    )
    # Spawned workers import torch afresh each epoch: one epoch is enough.
    for epoch in (0, 2) if context == "fork" else (1,):
        ds.set_epoch(epoch)
        got = list(loader)
        # The same batches in the same order as without workers.
        _same(got, _plain_epoch(path, epoch))
        labels = sorted(int(v) for _, y in got for v in y)
        assert labels == list(range(N))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="torchrun needs a POSIX system here")
def test_torchrun_two_ranks_with_gloo(path, tmp_path):
    out = tmp_path / "ranks.json"
    script = os.path.join(os.path.dirname(__file__), "scripts", "torch_ranks.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29533", script, path, str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world"] == 2
    ranks = result["ranks"]
    for epoch in (0, 1):
        a, b = ranks[0][epoch], ranks[1][epoch]
        # 30 over 2 ranks: 15 each, in 4 batches each.
        assert a["batches"] == b["batches"] == 4
        assert len(a["labels"]) == len(b["labels"]) == 15
        assert sorted(a["labels"] + b["labels"]) == list(range(N))
        # The contiguous halves of the single-process permutation.
        order = [int(v) for _, y in _plain_epoch(path, epoch) for v in y]
        assert a["labels"] + b["labels"] == order
    assert ranks[0][0]["labels"] != ranks[0][1]["labels"]
