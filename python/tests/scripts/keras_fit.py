"""The Keras contract, run in its own process (Keras changes the class of
the iterators made after it is imported), under Keras 3 (a ``PyDataset``,
any backend) or Keras 2 / tf.keras 2.15 (a ``Sequence``), whichever
``import keras`` gives: fit / evaluate / predict on npyflow iterators with
``validation_data``, every batch once per epoch, epochs consistent with the
iterator's (also for epochs of one or two batches), resume at an epoch
boundary and mid-epoch, pickling, and ``npyflow.keras.dataset`` for an
iterator made before Keras was imported. Prints "ok", the Keras version and
the checks' numbers as JSON."""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile

import numpy as np

import npyflow

tmp = tempfile.mkdtemp()
rng = np.random.default_rng(0)
n = 48
x = rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)
y = np.arange(n) % 2
path = os.path.join(tmp, "x.npy")
np.save(path, x)

early = npyflow.ImageDataGenerator(rescale=1 / 255).flow(path, y, batch_size=8, seed=2)
assert "keras" not in sys.modules, "npyflow imported keras"

import keras  # noqa: E402

import npyflow.keras  # noqa: E402

gen = npyflow.ImageDataGenerator(rescale=1 / 255, rotation_range=10, validation_split=0.25)
train = gen.flow(path, y, batch_size=8, subset="training", seed=1)
val = gen.flow(path, y, batch_size=8, subset="validation", shuffle=False)
# Keras 3's dataset class, or Keras 2's (which Keras 3 keeps as an alias).
Dataset = getattr(keras.utils, "PyDataset", None) or keras.utils.Sequence
assert isinstance(train, Dataset) and isinstance(train, npyflow.NumpyArrayIterator)
assert isinstance(val, Dataset)

# What Keras does, in order: ("get", iterator, its epoch, batch index) for
# each batch it takes from the iterators in `watched`, and ("begin", e) /
# ("end", e) for its epochs.
log: list[tuple] = []
watched: dict[int, str] = {}
given: dict[tuple[str, int, int], tuple] = {}
cls = type(train)
getitem = cls.__getitem__


def recording(self, i):
    batch = getitem(self, i)
    if id(self) in watched:
        name, epoch = watched[id(self)], self._where()[0]
        log.append(("get", name, epoch, int(i)))
        given[(name, epoch, int(i))] = batch
    return batch


cls.__getitem__ = recording


class Epochs(keras.callbacks.Callback):
    """Keras' epoch and the training iterator's, at each epoch's start."""

    def __init__(self, it):
        super().__init__()
        self.it = it
        self.seen = []
        self.untouched = []

    def on_epoch_begin(self, epoch, logs=None):
        state = self.it.state_dict()
        self.seen.append((epoch, state["epoch"]))
        self.untouched.append(state["remaining"] is None)
        log.append(("begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        log.append(("end", epoch))


def model():
    layers = keras.layers
    m = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(2, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def check_epochs(name, batches, first, last, once=True):
    """Inside Keras' epoch e, the iterator `name` gave every one of its
    batches (once, unless a validation iterator, which Keras' TensorFlow
    backend peeks at inside the first epoch), all from its own epoch e.
    Outside them, Keras took at most two (to build the model, or the
    TensorFlow backend's tensor spec), before the first epoch."""
    epoch = None
    started = False
    inside: dict[int, list[tuple[int, int]]] = {e: [] for e in range(first, last)}
    outside = []
    for event in log:
        if event[0] == "begin":
            epoch, started = event[1], True
        elif event[0] == "end":
            epoch = None
        elif event[1] == name and epoch is None:
            assert not started, (name, log)
            outside.append(event)
        elif event[1] == name:
            inside[epoch].append(event[2:])
    assert len(outside) <= 2, (name, outside)
    for e, got in inside.items():
        want = [(e, i) for i in range(batches)]
        assert (sorted(got) if once else sorted(set(got))) == want, (name, e, got)


m = model()
epochs = Epochs(train)
watched[id(train)] = "train"
history = m.fit(train, validation_data=val, epochs=3, verbose=0, callbacks=[epochs])
assert len(history.history["loss"]) == 3 and len(history.history["val_loss"]) == 3
assert epochs.seen == [(0, 0), (1, 1), (2, 2)], epochs.seen
assert train.state_dict()["epoch"] == 3 and train.state_dict()["remaining"] is None
batches = len(train)
assert batches == 5, batches
check_epochs("train", batches, 0, 3)
# Every epoch but the first starts with all of its samples left. In the
# first, Keras' peek counts as delivered where it cannot be told from an
# epoch's batch: Keras 2 has no on_epoch_begin, and Keras 3 on JAX or
# PyTorch takes it inside an epoch of its own. The TensorFlow backend's
# peeks come before any epoch of Keras >= 3.5, which marks them.
brackets = hasattr(Dataset, "on_epoch_begin")
peeks_marked = brackets and keras.backend.backend() == "tensorflow"
assert epochs.untouched == [peeks_marked, True, True], epochs.untouched

# Keras' own worker threads (workers=2), which it starts just before
# on_epoch_begin. Only on TensorFlow: on JAX and PyTorch they also start to
# build the model, and fetch ahead a whole (short) epoch (see
# npyflow.keras: leave workers=1 there).
if peeks_marked:
    threaded = gen.flow(path, y, batch_size=8, subset="training", seed=8)
    npyflow.keras.dataset(threaded, workers=2)
    log.clear()
    watched[id(threaded)] = "threaded"
    threaded_epochs = Epochs(threaded)
    model().fit(threaded, epochs=2, verbose=0, callbacks=[threaded_epochs])
    assert threaded_epochs.seen == [(0, 0), (1, 1)], threaded_epochs.seen
    check_epochs("threaded", batches, 0, 2)

# Epochs of one and two batches, which Keras' peeks could cover whole.
log.clear()
small = gen.flow(path, y, batch_size=24, subset="training", seed=5)
small_val = gen.flow(path, y, batch_size=24, subset="validation", seed=6)
assert (len(small), len(small_val)) == (2, 1)
watched.update({id(small): "small", id(small_val): "small_val"})
small_epochs = Epochs(small)
model().fit(small, validation_data=small_val, epochs=2, verbose=0, callbacks=[small_epochs])
assert small_epochs.seen == [(0, 0), (1, 1)], small_epochs.seen
assert small.state_dict()["epoch"] == 2
assert small_val.state_dict()["epoch"] == 2  # evaluated once per epoch
check_epochs("small", 2, 0, 2)
check_epochs("small_val", 1, 0, 2, once=False)

loss, acc = m.evaluate(val, verbose=0)
plain = npyflow.ImageDataGenerator(rescale=1 / 255).flow(path, batch_size=8, shuffle=False)
pred = m.predict(plain, verbose=0)
assert pred.shape == (n, 2), pred.shape
np.testing.assert_allclose(pred, m.predict(x.astype("float32") / 255, verbose=0), rtol=1e-5)

# Resume at an epoch boundary: a new process would load the saved state.
state = json.loads(json.dumps(train.state_dict()))
again = gen.flow(path, y, batch_size=8, subset="training", seed=99)
again.load_state_dict(state)
log.clear()
watched = {id(again): "again"}
resumed = Epochs(again)
m.fit(again, epochs=5, initial_epoch=3, verbose=0, callbacks=[resumed])
assert resumed.seen == [(3, 3), (4, 4)], resumed.seen
assert again.state_dict()["epoch"] == 5
check_epochs("again", batches, 3, 5)

# Resume mid-epoch: three batches of epoch 5 taken, the state saved, the
# rest of that epoch through Keras from a new iterator; together they are
# the uninterrupted epoch, sample for sample and pixel for pixel.
mid = gen.flow(path, y, batch_size=8, subset="training", seed=1)
mid._set_epoch(5)
before = [next(mid)[0] for _ in range(3)]
rest = gen.flow(path, y, batch_size=8, subset="training", seed=7)
rest.load_state_dict(json.loads(json.dumps(mid.state_dict())))
assert len(rest) == 2, len(rest)
log.clear()
watched = {id(rest): "rest"}
rest_epochs = Epochs(rest)
m.fit(rest, epochs=6, initial_epoch=5, verbose=0, callbacks=[rest_epochs])
assert rest_epochs.seen == [(5, 5)], rest_epochs.seen
assert rest.state_dict()["epoch"] == 6 and rest.state_dict()["remaining"] is None
check_epochs("rest", 2, 5, 6)
ref = gen.flow(path, y, batch_size=8, subset="training", seed=1)
ref._set_epoch(5)
whole = np.concatenate([b[0] for b in ref.epoch()])
resumed_epoch = np.concatenate(before + [given[("rest", 5, i)][0] for i in range(2)])
np.testing.assert_array_equal(resumed_epoch, whole)

clone = pickle.loads(pickle.dumps(again))
assert isinstance(clone, Dataset) and clone.state_dict() == again.state_dict()

# An iterator made before Keras was imported.
ds = npyflow.keras.dataset(early)
assert ds is early and isinstance(early, Dataset)
model().fit(early, epochs=1, verbose=0)
assert early.state_dict()["epoch"] == 1

result = {"ok": True, "keras": keras.__version__, "numpy": np.__version__}
result["dataset"] = Dataset.__name__
print(json.dumps({**result, "val_loss": float(loss), "val_accuracy": float(acc)}))
