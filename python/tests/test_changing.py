"""A dataset file cut or rewritten while Python iterates it: an OSError
subclass (``npyflow.FileChangedError``), never a signal that kills the
interpreter, whatever the input form (path, ``np.load(mmap_mode="r")``)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import npyflow


def write(path, n: int = 2000) -> np.ndarray:
    x = (np.arange(n * 8 * 8 * 3) % 251).astype(np.uint8).reshape(n, 8, 8, 3)
    np.save(path, x)
    # A dataset written long before the run: the kernel's coarse clock
    # could give a rewrite a few milliseconds later the same time.
    old = time.time() - 60
    os.utime(path, (old, old))
    return x


@pytest.mark.parametrize("form", ["path", "memmap"])
@pytest.mark.parametrize("change", ["truncate", "rewrite"])
@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01])
def test_a_file_changed_while_iterating_is_file_changed_error(tmp_path, form, change, delay):
    path = tmp_path / "x.npy"
    x = write(path)
    source = str(path) if form == "path" else np.load(path, mmap_mode="r")
    gen = npyflow.ImageDataGenerator(rotation_range=20, rescale=1 / 255)
    it = gen.flow(source, batch_size=32, shuffle=True, seed=1, prefetch=4, threads=2)
    next(it)

    def cut() -> None:
        time.sleep(delay)
        if change == "truncate":
            os.truncate(path, 128 + 192 * 10)
        else:
            with open(path, "wb") as f:  # same inode, same size, new bytes
                np.save(f, x + 1)

    t = threading.Thread(target=cut)
    t.start()
    with pytest.raises(npyflow.FileChangedError) as info:
        for _ in range(10_000):
            next(it)
    t.join()
    assert isinstance(info.value, OSError)
    assert "x.npy" in str(info.value) and "changed while being read" in str(info.value)

    # The new file opens and iterates.
    del source
    write(path)
    fresh = npyflow.ImageDataGenerator().flow(str(path), batch_size=500, shuffle=False)
    first = next(fresh)
    assert first.shape[1:] == (8, 8, 3)
