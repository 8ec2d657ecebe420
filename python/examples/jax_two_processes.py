"""Two JAX processes on one machine (``jax.distributed`` on CPU, gloo
collectives), each iterating its own shard of the digits .npy
(``shard="auto"`` reads ``jax.process_index()`` / ``process_count()``),
training a softmax regression data-parallel: each process computes the
gradient of its batch, the processes average them with a collective. Run::

    python jax_two_processes.py DIGITS_DIR [--epochs 5]

(it starts the two processes itself; ``--process-id`` is for them).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys


def launch(args: argparse.Namespace) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen([sys.executable, __file__, args.digits, "--epochs", str(args.epochs),
                          "--process-id", str(i), "--port", str(port)])
        for i in range(2)
    ]  # fmt: skip
    sys.exit(max(p.wait() for p in procs))


def run(args: argparse.Namespace) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils

    import npyflow

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{args.port}", 2, args.process_id)
    me = jax.process_index()

    x_path = os.path.join(args.digits, "x.npy")
    y = np.load(os.path.join(args.digits, "y.npy"))
    gen = npyflow.ImageDataGenerator(rescale=1 / 255, rotation_range=10, validation_split=0.2)
    train = gen.flow(x_path, y, batch_size=64, subset="training", seed=1, shard="auto")
    val = gen.flow(x_path, y, batch_size=256, subset="validation", shuffle=False)
    first = [int(v) for v in next(iter(train.epoch()))[1][:8]]
    train.load_state_dict({**train.state_dict(), "epoch": 0, "remaining": None})
    print(
        f"process {me} of {jax.process_count()}: {train.n} samples, {len(train)} batches "
        f"an epoch, first labels {first}",
        flush=True,
    )

    def loss(w, b, images, labels):
        logits = images.reshape(len(images), -1) @ w + b
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels])

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    w, b = jnp.zeros((32 * 32, 10)), jnp.zeros(10)
    for epoch in range(args.epochs):
        for images, labels in train.epoch():
            gw, gb = grad(w, b, images, labels)
            # Both processes reach this collective as often: equal batch counts.
            gw, gb = (multihost_utils.process_allgather(g).mean(0) for g in (gw, gb))
            w, b = w - 0.5 * gw, b - 0.5 * gb
        correct = sum(
            int((np.argmax(im.reshape(len(im), -1) @ w + b, 1) == lab).sum())
            for im, lab in val.epoch()
        )
        if me == 0:
            print(f"epoch {epoch + 1}: validation accuracy {correct / val.n:.3f}", flush=True)
    jax.distributed.shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("digits")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--process-id", type=int, default=None)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    if args.process_id is None:
        launch(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
