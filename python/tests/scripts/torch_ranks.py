"""Under ``torchrun --nproc_per_node 2`` (gloo): each rank's labels of two
epochs through ``npyflow.torch.dataset`` and a DataLoader, gathered on
rank 0 and written as JSON to argv[2]; the data is the .npy at argv[1]."""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.distributed as dist

import npyflow
import npyflow.torch

dist.init_process_group("gloo")
path, out = sys.argv[1], sys.argv[2]
n = len(np.load(path, mmap_mode="r"))
gen = npyflow.ImageDataGenerator(rotation_range=15)
it = gen.flow(path, np.arange(n), batch_size=4, seed=3)  # no shard: the dataset takes the rank's
ds = npyflow.torch.dataset(it)
loader = torch.utils.data.DataLoader(ds, batch_size=None)
mine = []
for epoch in range(2):
    ds.set_epoch(epoch)
    labels, batches = [], 0
    for images, y in loader:
        assert isinstance(images, torch.Tensor) and images.shape[1:] == (8, 6, 3)
        labels += y.tolist()
        batches += 1
    # Every rank reaches this collective as often: equal batch counts.
    dist.barrier()
    mine.append({"labels": labels, "batches": batches})
gathered = [None] * dist.get_world_size()
dist.all_gather_object(gathered, mine)
if dist.get_rank() == 0:
    with open(out, "w") as f:
        json.dump({"world": dist.get_world_size(), "ranks": gathered}, f)
dist.destroy_process_group()
