"""What the package promises beyond Keras' numbers: inputs opened without a
copy, batches that stay valid, the GIL released, Ctrl-C, pickling and fork."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest
from conftest import images

import npyflow


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory):
    """A 256 MB uint8 array on disk (8192 images of 128×128×2... as 4-D)."""
    p = tmp_path_factory.mktemp("big") / "big.npy"
    m = np.lib.format.open_memmap(p, mode="w+", dtype=np.uint8, shape=(4096, 128, 128, 4))
    for i in range(0, 4096, 512):
        m[i : i + 512] = (np.arange(512 * 128 * 128 * 4) % 251).reshape(512, 128, 128, 4)
    m.flush()
    del m
    return p


def test_memmap_input_is_opened_without_a_copy(big_npy):
    size = os.path.getsize(big_npy)
    assert size > 200 << 20
    before = rss_anon()
    x = np.load(big_npy, mmap_mode="r")
    it = npyflow.ImageDataGenerator(rescale=1 / 255).flow(x, batch_size=64, prefetch=2)
    # Opened by its file and data offset: the same .npy, not a raw copy.
    arr = it._inputs["x"][1]
    assert (arr.kind, os.fspath(arr.path)) == ("npy", os.fspath(big_npy))
    for _ in range(20):
        batch = next(it)
    assert batch.shape == (64, 128, 128, 4)
    grown = rss_anon() - before
    # A float32 copy (Keras) would be 4× the file; batches are ~16 MB each.
    assert grown < size // 2, f"anonymous memory grew by {grown} bytes"
    # A slice along the first axis and a headerless memmap are files too.
    part = npyflow.ImageDataGenerator().flow(x[100:], batch_size=1, shuffle=False)
    assert part._inputs["x"][1].kind == "raw" and part.n == 3996
    np.testing.assert_array_equal(part[0][0], x[100].astype(np.float32))
    raw = np.memmap(big_npy, dtype=np.uint8, mode="r", offset=128, shape=(10, 128, 128, 4))
    it = npyflow.ImageDataGenerator().flow(raw, batch_size=10, shuffle=False)
    assert it._inputs["x"][1].kind == "raw"
    np.testing.assert_array_equal(next(it), raw.astype(np.float32))
    assert rss_anon() - before < size // 2


def test_in_memory_arrays_are_used_in_place_or_copied_once_with_a_warning():
    x = images(8, 4, 4, 3)
    it = npyflow.ImageDataGenerator().flow(x, batch_size=8, shuffle=False)
    assert it._inputs["x"][1].kind == "memory"
    np.testing.assert_array_equal(next(it), x.astype(np.float32))
    t = np.asfortranarray(x)
    with pytest.warns(UserWarning, match="not C-contiguous"):
        it = npyflow.ImageDataGenerator().flow(t, batch_size=8, shuffle=False)
    np.testing.assert_array_equal(next(it), x.astype(np.float32))
    big_endian = x.astype(">u2")
    it = npyflow.ImageDataGenerator().flow(big_endian, big_endian[:, 0, 0, 0], batch_size=8)
    xb, yb = it[0]
    assert sorted(yb.tolist()) == sorted(x[:, 0, 0, 0].tolist())


def test_kept_batches_are_never_overwritten(npy_path, x_u8):
    it = npyflow.ImageDataGenerator(rescale=1 / 255, rotation_range=30).flow(
        str(npy_path), np.arange(10), batch_size=3, seed=5
    )
    kept = [next(it) for _ in range(4)]
    copies = [(x.copy(), y.copy()) for x, y in kept]
    for _ in range(200):
        next(it)
    for (x, y), (cx, cy) in zip(kept, copies):
        np.testing.assert_array_equal(x, cx)
        np.testing.assert_array_equal(y, cy)
    # A batch owns its memory: writing to it is allowed and stays local.
    kept[0][0][...] = -1
    assert not np.any(next(it)[0] == -1)


def test_a_python_thread_runs_while_batches_are_assembled(big_npy):
    # One call that assembles 1024 augmented 128×128×4 images on one thread: long
    # enough for a sleeping thread to wake many times, however fast the machine.
    it = npyflow.ImageDataGenerator(rotation_range=20, zoom_range=0.1).flow(
        str(big_npy), batch_size=1024, prefetch=0, threads=1
    )
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.01)
    before = ticks
    next(it)
    during = ticks - before
    done.set()
    t.join()
    # Had `next` held the GIL, the counting thread could not have run during it.
    assert during >= 5, during


def test_threads_sharing_an_iterator_take_turns(npy_path):
    def flow():
        return npyflow.ImageDataGenerator(rotation_range=20).flow(
            str(npy_path), np.arange(10) * 7, batch_size=3, seed=2, threads=2
        )

    reference = [next(flow_it) for flow_it in [flow()] for _ in range(61)]
    it = flow()
    got: list = []

    def take():
        for _ in range(15):
            x, y = next(it)
            got.append((y.tolist(), x))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every call got a whole batch of its own: together, the first 60
    # batches, each once, whatever the interleaving.
    key = lambda b: (b[0], b[1].tobytes())  # noqa: E731
    assert sorted(map(key, got)) == sorted(key((y.tolist(), x)) for x, y in reference[:60])
    # The iterator counted 60 batches delivered: resumed from its state, the
    # next batch is the 61st of an uninterrupted run.
    resumed = flow()
    resumed.load_state_dict(it.state_dict())
    x, y = next(resumed)
    np.testing.assert_array_equal(y, reference[60][1])
    np.testing.assert_array_equal(x, reference[60][0])


def test_ctrl_c_interrupts_a_long_fit(big_npy):
    g = npyflow.ImageDataGenerator(featurewise_center=True, rotation_range=10)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        g.fit(str(big_npy), augment=True, rounds=50)
    elapsed = time.perf_counter() - started
    timer.join()
    assert elapsed < 3.0, elapsed
    assert g.mean is None


def test_state_dict_resumes_exactly(npy_path):
    gen = npyflow.ImageDataGenerator(rotation_range=20, horizontal_flip=True)
    a = gen.flow(str(npy_path), np.arange(10), batch_size=3, seed=11)
    for _ in range(5):
        next(a)
    state = a.state_dict()
    assert state == {
        "version": 1,
        "seed": 11,
        "order": "shuffle",
        "samples": 10,
        "epoch": 1,
        "remaining": [[3, 10]],
    }
    expected = [next(a) for _ in range(4)]
    b = gen.flow(str(npy_path), np.arange(10), batch_size=3)  # another seed
    b.load_state_dict(state)
    for (ex, ey), (gx, gy) in zip(expected, [next(b) for _ in range(4)]):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)
    tele = a.last_epoch_telemetry()
    assert tele["samples"] == 10 and tele["batches"] == 4


def test_pickle_keeps_configuration_and_position(npy_path, x_u8):
    gen = npyflow.ImageDataGenerator(rotation_range=20, featurewise_center=True)
    gen.fit(x_u8)
    for x in (str(npy_path), np.load(npy_path, mmap_mode="r"), x_u8):
        it = gen.flow((x, [np.arange(10) * 2]), np.arange(10), batch_size=4, seed=3)
        next(it)
        clone = pickle.loads(pickle.dumps(it))
        assert clone.state_dict() == it.state_dict()
        (a, aa), ay = next(it)
        (b, bb), by = next(clone)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(aa, bb)
        np.testing.assert_array_equal(ay, by)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(gen)).mean, gen.mean)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_restarts_the_pipeline(npy_path):
    it = npyflow.ImageDataGenerator(rotation_range=20).flow(
        str(npy_path), batch_size=3, seed=4, prefetch=3, threads=2
    )
    next(it)  # the parent's workers are running
    expected = _second_batch(npy_path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            batch = next(it)
            ok = np.array_equal(batch, expected)
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.waitpid(pid, 0)
    assert got == b"1"
    np.testing.assert_array_equal(next(it), expected)


def _second_batch(npy_path):
    it = npyflow.ImageDataGenerator(rotation_range=20).flow(str(npy_path), batch_size=3, seed=4)
    next(it)
    return next(it)
