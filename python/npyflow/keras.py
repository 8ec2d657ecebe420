"""Keras adapters: an npyflow iterator as the dataset ``model.fit`` takes.

Keras 3 (any backend: JAX, TensorFlow, PyTorch) takes a
``keras.utils.PyDataset``; Keras 2 (``tf.keras`` up to 2.15) a
``keras.utils.Sequence``. Nothing here imports Keras until it is used.

When Keras is already imported, ``ImageDataGenerator.flow`` (and
``NumpyArrayIterator``) return iterators that *are* such datasets, so the
Keras idiom works as it is::

    import keras
    from npyflow import ImageDataGenerator

    gen = ImageDataGenerator(rotation_range=10, validation_split=0.2)
    train = gen.flow("x.npy", y, batch_size=64, subset="training", seed=1)
    val = gen.flow("x.npy", y, batch_size=64, subset="validation", shuffle=False)
    model.fit(train, validation_data=val, epochs=10)

``dataset(it)`` does the same for an iterator made before Keras was
imported, and sets Keras' ``workers``/``use_multiprocessing``/
``max_queue_size`` (leave them at their defaults: npyflow assembles each
batch on its own threads, with the GIL released; and on JAX or PyTorch,
Keras' worker threads also start when it builds the model from one batch,
and fetch up to ``max_queue_size`` batches ahead, which for an epoch no
longer than that looks like the whole epoch taken).

Epochs: Keras' epoch ``e`` is the iterator's epoch ``e`` (a new permutation
and new augmentations each), because ``on_epoch_end`` moves to the next
epoch only once every batch of the current one was taken (Keras 3 also
calls it before the first epoch and after peeking at batches to build the
model). Keras 3.5 and later call ``on_epoch_begin`` before an epoch's
batches: under them only batches taken between ``on_epoch_begin`` and
``on_epoch_end`` count, since the TensorFlow backend takes the first two
before any epoch (for their tensor spec), which for an epoch of one or two
batches would be all of it. One case is beyond telling apart: on JAX or
PyTorch, Keras builds the model (on the first ``fit``) from one batch taken
inside an epoch of its own, which for an iterator of one batch per epoch is
a whole epoch; that iterator's epochs then run one ahead of Keras'.
``it.state_dict()`` counts the batches Keras took (by index, in any
order; a peek counts where it cannot be told apart: Keras 2's at batch 0
and the JAX/PyTorch build's, at the start of a ``fit``); saved at an
epoch's end (as ``keras.callbacks.BackupAndRestore`` does), it resumes
with ``fit(..., initial_epoch=state["epoch"])``. A state saved mid-epoch
resumes with a shorter epoch, which Keras takes as the
length of every epoch of that ``fit`` call: finish it with
``fit(it, initial_epoch=e, epochs=e + 1)``, then go on as usual.
"""

from __future__ import annotations

import sys
from typing import Any

_classes: dict[tuple[type, type], type] = {}


def _keras_base() -> type | None:
    """``keras.utils.PyDataset`` (Keras 3) or ``keras.utils.Sequence``
    (Keras 2), from the Keras already imported; None without one."""
    keras = sys.modules.get("keras")
    utils = getattr(keras, "utils", None)
    if utils is None:
        return None
    base = getattr(utils, "PyDataset", None) or getattr(utils, "Sequence", None)
    return base if isinstance(base, type) else None


def iterator_class(cls: type) -> type:
    """``cls`` (an npyflow iterator class) with the Keras dataset protocol
    mixed in, or ``cls`` itself without Keras."""
    base = _keras_base()
    if base is None or issubclass(cls, base):
        return cls
    key = (cls, base)
    if key not in _classes:

        class _Keras(cls, base):  # type: ignore[valid-type, misc]
            # What PyDataset.__init__ sets (it is not called): one worker,
            # since npyflow's own threads assemble every batch.
            _workers = 1
            _use_multiprocessing = False
            _max_queue_size = 10
            # Keras 3.5 and later bracket every epoch of fit/evaluate/predict
            # with on_epoch_begin/on_epoch_end (Keras 2 and earlier Keras 3
            # call only on_epoch_end, so every batch taken counts there).
            _keras_brackets_epochs = hasattr(base, "on_epoch_begin")

            def on_epoch_begin(self) -> None:
                self._begin_keras_epoch()

            def on_epoch_end(self) -> None:
                self._end_epoch_if_done()

        _Keras.__name__ = _Keras.__qualname__ = cls.__name__
        _Keras.__module__ = cls.__module__
        _Keras.__doc__ = cls.__doc__
        _classes[key] = _Keras
    return _classes[key]


def dataset(
    it: Any, *, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
) -> Any:
    """``it`` (an npyflow ``NumpyArrayIterator``) as a Keras dataset
    (``keras.utils.PyDataset`` with Keras 3, ``Sequence`` with Keras 2), in
    place: the same object, now also of the Keras class. Imports Keras."""
    import keras  # noqa: F401  (the user asked for Keras)

    cls = iterator_class(type(it))
    if type(it) is not cls:
        it.__class__ = cls
    it._workers = int(workers)
    it._use_multiprocessing = bool(use_multiprocessing)
    it._max_queue_size = int(max_queue_size)
    return it
