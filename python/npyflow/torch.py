"""PyTorch adapter: an npyflow iterator as a ``torch.utils.data.IterableDataset``.

::

    import torch
    import npyflow
    import npyflow.torch

    it = npyflow.ImageDataGenerator(horizontal_flip=True).flow(
        "x.npy", y, batch_size=64, seed=1, shard="auto"
    )
    ds = npyflow.torch.dataset(it)
    loader = torch.utils.data.DataLoader(ds, batch_size=None)  # npyflow batches
    for epoch in range(10):
        ds.set_epoch(epoch)
        for images, labels in loader:
            ...

Each pass over the dataset is one epoch of the iterator (a new permutation
and new augmentations), yielding its batches as tensors that share the
numpy batches' memory (``torch.from_numpy``: no copy), channels as the
iterator's ``data_format`` lays them (``channels_last`` by default: permute
to NCHW for ``nn.Conv2d`` or use ``data_format="channels_first"``).
``set_epoch(e)`` picks the epoch, as with ``DistributedSampler``; without
it, passes walk through consecutive epochs. Under ``torch.distributed``
(``torchrun``), an iterator made without ``shard`` takes this rank's shard
(``get_rank()`` of ``get_world_size()``): every rank yields the same number
of batches.

``num_workers=0`` is the fast setting: npyflow already assembles batches on
its own threads with the GIL released, ahead of the training loop. With
``num_workers=K > 0`` it still works — each worker process (forked, or
spawned and unpickled) takes every K-th batch of the epoch, so DataLoader's
round-robin hands out the same batches in the same order as with no
workers, none twice and none lost — but every batch is then copied from the
worker to the main process through shared memory, K copies of npyflow's
thread pool compete for the same cores, and the workers read by random
access instead of the prefetching pipeline. Workers that are not
persistent start from the main process's dataset each epoch, so call
``set_epoch`` (which they cannot report back); ``state_dict()`` is exact
with ``num_workers=0``.

Importing ``npyflow.torch`` imports torch; ``import npyflow`` does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info


def _tensors(batch: Any) -> Any:
    """numpy arrays (nested in tuples and lists) as tensors over the same memory."""
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch)
    if isinstance(batch, tuple):
        return tuple(_tensors(b) for b in batch)
    if isinstance(batch, list):
        return [_tensors(b) for b in batch]
    return batch


class Dataset(IterableDataset):  # type: ignore[type-arg, misc, unused-ignore]
    """An npyflow iterator as an ``IterableDataset`` of batches (see
    ``npyflow.torch``); made by ``dataset(it)``."""

    def __init__(self, it: Any) -> None:
        super().__init__()
        self.iterator = it

    def __len__(self) -> int:
        """Batches of one pass (the current epoch, this rank)."""
        return len(self.iterator)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass yields."""
        self.iterator._set_epoch(int(epoch))

    def state_dict(self) -> dict[str, Any]:
        """The iterator's ``state_dict()``."""
        return self.iterator.state_dict()  # type: ignore[no-any-return]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The iterator's ``load_state_dict()``."""
        self.iterator.load_state_dict(state)

    def __iter__(self) -> Any:
        it = self.iterator
        info = get_worker_info()
        if info is None or info.num_workers <= 1:
            # The prefetching pipeline, from the current position to the
            # epoch's end (then the next pass is the next epoch).
            for batch in it.epoch():
                yield _tensors(batch)
            return
        # Worker k of K: batches k, k + K, ... of the epoch, which
        # DataLoader's round-robin puts back in order.
        start = it._where()[1]
        for index in range(start + info.id, len(it), info.num_workers):
            yield _tensors(it[index])
        it._next_epoch()


def dataset(it: Any) -> Dataset:
    """``it`` (an npyflow ``NumpyArrayIterator``) as a
    ``torch.utils.data.IterableDataset`` for ``DataLoader(ds,
    batch_size=None)``. Under an initialised ``torch.distributed``, an
    iterator made without ``shard`` is sharded by rank and world size."""
    if it._config["shard"] is None and dist.is_available() and dist.is_initialized():
        it._reshard(dist.get_rank(), dist.get_world_size())
    return Dataset(it)
