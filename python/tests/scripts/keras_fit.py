"""Keras 3 contract, run in its own process (Keras changes the class of
the iterators made after it is imported): fit / evaluate / predict on
npyflow iterators, epochs consistent with the iterator's, resume at an
epoch boundary, pickling, and ``npyflow.keras.dataset`` for an iterator
made before Keras was imported. Prints "ok" and the checks' numbers as JSON."""

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
assert isinstance(train, keras.utils.PyDataset) and isinstance(train, npyflow.NumpyArrayIterator)
assert isinstance(val, keras.utils.PyDataset)

# Which (iterator epoch, batch) Keras takes.
taken: list[tuple[int, int]] = []
cls = type(train)
getitem = cls.__getitem__


def recording(self, i):
    if self is train:
        taken.append((self._where()[0], int(i)))
    return getitem(self, i)


cls.__getitem__ = recording


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append((epoch, train.state_dict()["epoch"]))


def model():
    layers = keras.layers
    m = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(2, "softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


m = model()
epochs = Epochs()
history = m.fit(train, validation_data=val, epochs=3, verbose=0, callbacks=[epochs])
assert len(history.history["loss"]) == 3 and len(history.history["val_loss"]) == 3
assert epochs.seen == [(0, 0), (1, 1), (2, 2)], epochs.seen
assert train.state_dict()["epoch"] == 3 and train.state_dict()["remaining"] is None
batches = len(train)
for e in range(3):
    got = sorted(i for (ep, i) in taken if ep == e)
    # Every batch of the epoch once (plus Keras' peek at one to build the model).
    assert set(got) == set(range(batches)), (e, got)
    assert len(got) - batches <= (1 if e == 0 else 0), (e, got)

loss, acc = m.evaluate(val, verbose=0)
plain = npyflow.ImageDataGenerator(rescale=1 / 255).flow(path, batch_size=8, shuffle=False)
pred = m.predict(plain, verbose=0)
assert pred.shape == (n, 2), pred.shape
np.testing.assert_allclose(pred, m.predict(x.astype("float32") / 255, verbose=0), rtol=1e-5)

# Resume at an epoch boundary: a new process would load the saved state.
state = json.loads(json.dumps(train.state_dict()))
again = gen.flow(path, y, batch_size=8, subset="training", seed=99)
again.load_state_dict(state)
taken.clear()
train = again
m.fit(again, epochs=5, initial_epoch=3, verbose=0, callbacks=[epochs])
assert epochs.seen[-2:] == [(3, 3), (4, 4)], epochs.seen
assert again.state_dict()["epoch"] == 5

clone = pickle.loads(pickle.dumps(again))
assert isinstance(clone, keras.utils.PyDataset) and clone.state_dict() == again.state_dict()

# An iterator made before Keras was imported.
ds = npyflow.keras.dataset(early)
assert ds is early and isinstance(early, keras.utils.PyDataset)
model().fit(early, epochs=1, verbose=0)
assert early.state_dict()["epoch"] == 1

print(json.dumps({"ok": True, "val_loss": float(loss), "val_accuracy": float(acc)}))
