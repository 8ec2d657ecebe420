"""A small CNN on the digits .npy (``digits_to_npy.py``) in a plain PyTorch
loop fed by ``npyflow.torch.dataset``; with ``torchrun`` each rank trains on
its shard (DistributedDataParallel, gloo on CPU).

    python torch_digits.py DIGITS_DIR [--epochs 10]
    torchrun --nproc_per_node 2 torch_digits.py DIGITS_DIR
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import npyflow
import npyflow.torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("digits")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    torch.manual_seed(1)

    x_path = os.path.join(args.digits, "x.npy")
    y = np.load(os.path.join(args.digits, "y.npy"))
    gen = npyflow.ImageDataGenerator(
        rescale=1 / 255, rotation_range=10, width_shift_range=0.1, height_shift_range=0.1,
        zoom_range=0.1, validation_split=0.2, data_format="channels_first",
    )  # fmt: skip
    # NCHW for Conv2d; each rank its shard (the dataset reads torch.distributed).
    train = npyflow.torch.dataset(gen.flow(x_path, y, batch_size=32, subset="training", seed=1))
    val = gen.flow(x_path, y, batch_size=256, subset="validation", shuffle=False)
    loader = torch.utils.data.DataLoader(train, batch_size=None)  # num_workers=0: the fast one

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 6 * 6, 10),
    )  # fmt: skip
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        model.train()
        total, batches = 0.0, 0
        for images, labels in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(images), labels.long())
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val.epoch():
                pred = model(torch.from_numpy(images)).argmax(1).numpy()
                correct += int((pred == labels).sum())
        if rank == 0:
            print(
                f"epoch {epoch + 1}: loss {total / batches:.3f} ({batches} batches a rank), "
                f"validation accuracy {correct / val.n:.3f}"
            )
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
