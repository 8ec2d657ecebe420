"""One of two JAX processes on this machine (``jax.distributed`` on CPU,
gloo collectives): ``shard="auto"`` reads ``jax.process_index()`` /
``process_count()``; the ranks' labels of one epoch are gathered with a
collective (which needs equal counts) and written as JSON by process 0.
Arguments: process id, coordinator port, the .npy, the output file."""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
from jax.experimental import multihost_utils

import npyflow

pid, port, path, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)

n = len(np.load(path, mmap_mode="r"))
it = npyflow.ImageDataGenerator(rotation_range=15).flow(
    path, np.arange(n), batch_size=4, seed=3, shard="auto"
)
labels = np.concatenate([y for _, y in it.epoch()])
everyone = multihost_utils.process_allgather(labels)  # shape (2, per): equal counts
if jax.process_index() == 0:
    with open(out, "w") as f:
        json.dump({"count": jax.process_count(), "labels": everyone.tolist()}, f)
jax.distributed.shutdown()
