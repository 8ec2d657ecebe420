"""``NumpyArrayIterator``: Keras' iterator protocol over npyflow's core."""

from __future__ import annotations

import json
import os
import sys
import threading
import warnings
import weakref
from typing import Any

import numpy as np

from . import _inputs, _native
from ._errors import shape_str

_live: weakref.WeakSet[NumpyArrayIterator] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's worker threads do not exist in a forked child: the native
    # iterators that own them are abandoned (forgotten, never dropped, which
    # would join those threads) and rebuilt on first use, at the same position.
    for it in list(_live):
        it._abandon_native()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_abandoned: list[Any] = []


def _auto_shard() -> tuple[int, int] | None:
    """``shard="auto"``: torch.distributed when initialised, then JAX when
    it runs several processes, then RANK/WORLD_SIZE, else None (one
    process). Only frameworks already imported are asked; asking JAX starts
    its backend, so ``jax.distributed.initialize()`` must come first."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    jax = sys.modules.get("jax")
    if jax is not None and jax.process_count() > 1:
        return int(jax.process_index()), int(jax.process_count())
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


def _unpickle() -> NumpyArrayIterator:
    return NumpyArrayIterator.__new__(NumpyArrayIterator)


def _output_dtype(dtype: Any) -> str:
    """numpy's name of an image dtype: ``float32``, ``float64``, ``float16``,
    or ``bfloat16`` (``ml_dtypes.bfloat16`` arrays; numpy has no bfloat16 of
    its own, so that one needs the ``ml_dtypes`` package)."""
    if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
        name = "bfloat16"
    else:
        name = np.dtype(dtype).name
    if name == "bfloat16":
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            raise ImportError(
                "dtype='bfloat16' gives ml_dtypes.bfloat16 arrays, which need the "
                "ml_dtypes package: `pip install ml_dtypes` (jax brings it)"
            ) from None
    return name


class NumpyArrayIterator:
    """Keras' ``NumpyArrayIterator`` (keras-preprocessing 1.1.2), out of core.

    The protocol is Keras': ``len(it)`` batches per epoch, ``it[i]``,
    ``next(it)`` / iteration (endless, crossing epochs, as Keras),
    ``reset()``, ``on_epoch_end()``, ``n``, ``batch_size``. Batches are
    ``x``, ``(x, y)`` or ``(x, y, sample_weight)``, with ``x`` the list
    ``[images, aux...]`` for the tuple form ``(images, [aux...])``.

    Each batch is a set of numpy arrays that own their memory: a batch you
    keep is never overwritten by later ones. The GIL is released while
    batches are assembled. ``epoch()`` iterates one epoch.

    npyflow's own keyword arguments:

    - ``order``: ``'sequential'``, ``'shuffle'`` (default: from ``shuffle``)
      or ``'blocks'`` (page-aware block shuffle; ``('blocks', block_rows,
      window)`` sets its sizes);
    - ``threads`` (0 = all cores, one fewer when samples are only converted
      and the file is read past the page cache), ``prefetch`` (batches
      prepared ahead),
      ``cache_budget`` (bytes of page cache to keep at most);
    - ``dtype`` (Keras' own) also takes ``'float16'`` and ``'bfloat16'``
      (``ml_dtypes.bfloat16`` arrays): computed in float32 and rounded once,
      to nearest even, into the batch;
    - ``drop_last``: drop each epoch's last, shorter batch;
    - ``shard``: ``(index, count)`` or ``"auto"`` (torch.distributed, JAX,
      then ``RANK``/``WORLD_SIZE``). Every shard yields as many samples and
      batches: a contiguous slice of the epoch's permutation, padded by
      wrapping around (or cut with ``drop_last``).

    ``state_dict()`` / ``load_state_dict()`` resume a run exactly. With
    Keras 3 (or ``tf.keras``) already imported, the iterator is also a
    ``keras.utils.PyDataset`` (``Sequence``) for ``model.fit`` (see
    ``npyflow.keras``).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> NumpyArrayIterator:
        # With Keras already imported (never imported here), the Keras
        # protocol class: ``model.fit(gen.flow(...))`` works as in Keras.
        if cls is NumpyArrayIterator and "keras" in sys.modules:
            from .keras import iterator_class

            cls = iterator_class(cls)
        return object.__new__(cls)

    def __init__(
        self,
        x: Any,
        y: Any,
        image_data_generator: Any,
        batch_size: int = 32,
        shuffle: bool = False,
        sample_weight: Any = None,
        seed: int | None = None,
        data_format: str = "channels_last",
        save_to_dir: Any = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        ignore_class_split: bool = False,
        dtype: Any = "float32",
        *,
        order: Any = None,
        threads: int = 0,
        prefetch: int | None = None,
        cache_budget: int | None = None,
        drop_last: bool = False,
        shard: Any = None,
    ) -> None:
        self._lock = threading.RLock()
        # Keras' tuple form: (images, misc) or (images, [misc, ...]).
        misc: list[Any] = []
        if type(x) is tuple or type(x) is list:
            if type(x[1]) is list:
                misc = list(x[1])
            else:
                misc = [x[1]]
            x = x[0]
        x_arr = _inputs.to_array(x, "x")
        misc_arr = [_inputs.to_array(m, f"x[{i + 1}]") for i, m in enumerate(misc)]
        for m in misc_arr:
            if len(x_arr) != len(m):
                raise ValueError(
                    "All of the arrays in `x` "
                    "should have the same length. "
                    f"Found a pair with: len(x[0]) = {len(x_arr)}, len(x[?]) = {len(m)}"
                )
        y_arr = None if y is None else _inputs.to_array(y, "y")
        if y_arr is not None and len(x_arr) != len(y_arr):
            raise ValueError(
                "`x` (images tensor) and `y` (labels) "
                "should have the same length. "
                f"Found: x.shape = {shape_str(x_arr.shape)}, y.shape = {shape_str(y_arr.shape)}"
            )
        w_arr = None if sample_weight is None else _inputs.to_array(sample_weight, "sample_weight")
        if w_arr is not None and len(x_arr) != len(w_arr):
            raise ValueError(
                "`x` (images tensor) and `sample_weight` "
                "should have the same length. "
                f"Found: x.shape = {shape_str(x_arr.shape)}, "
                f"sample_weight.shape = {shape_str(w_arr.shape)}"
            )
        if subset is not None and subset not in {"training", "validation"}:
            raise ValueError(
                "Invalid subset name:", subset, '; expected "training" or "validation".'
            )
        if len(x_arr.shape) != 4:
            raise ValueError(
                "Input data in `NumpyArrayIterator` "
                "should have rank 4. You passed an array "
                "with shape",
                tuple(x_arr.shape),
            )
        channels_axis = 3 if data_format == "channels_last" else 1
        if x_arr.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(
                "NumpyArrayIterator is set to use the "
                'data format convention "' + data_format + '" '
                "(channels on axis " + str(channels_axis) + "), i.e. expected either 1, 3, or 4 "
                "channels on axis " + str(channels_axis) + ". "
                "However, it was passed an array with shape "
                + shape_str(x_arr.shape)
                + " ("
                + str(x_arr.shape[channels_axis])
                + " channels).",
                stacklevel=2,
            )
        if w_arr is not None and y_arr is None:
            warnings.warn(
                "npyflow: `sample_weight` is ignored without `y` (as Keras does)",
                stacklevel=2,
            )
        if shard == "auto":
            shard = _auto_shard()
        if order is None:
            order = "shuffle" if shuffle else "sequential"
        block_rows, window = None, 4
        if isinstance(order, (tuple, list)):
            order, block_rows, window = order
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.dtype = _output_dtype(dtype)
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.shuffle = order != "sequential"
        self._inputs: dict[str, Any] = {
            "x": (x, x_arr),
            "y": (y, y_arr),
            "sample_weight": (sample_weight, w_arr),
            "aux": [(m, a) for m, a in zip(misc, misc_arr)],
        }
        self._config: dict[str, Any] = dict(
            batch_size=int(batch_size),
            order=str(order),
            block_rows=block_rows,
            window=int(window),
            subset=subset,
            ignore_class_split=bool(ignore_class_split),
            dtype=self.dtype,
            drop_last=bool(drop_last),
            shard=None if shard is None else (int(shard[0]), int(shard[1])),
            save_to_dir=None if save_to_dir is None else os.fspath(save_to_dir),
            save_prefix=save_prefix,
            save_format=save_format,
            threads=int(threads),
            prefetch=prefetch,
            cache_budget=cache_budget,
        )
        self._resume: dict[str, Any] | None = None
        self._fetched: set[int] = set()
        self._fetched_epoch = -1
        self._peeked: set[int] = set()
        self._in_keras_epoch = False
        self._native: Any = self._build(None if seed is None else int(seed) % 2**64)
        self.seed = seed
        _live.add(self)

    def _build(self, seed: int | None) -> Any:
        (_, x), (_, y), (_, w) = (
            self._inputs["x"],
            self._inputs["y"],
            self._inputs["sample_weight"],
        )
        aux = [a for _, a in self._inputs["aux"]]
        # Without y, Keras drops the weights: the native iterator never sees
        # them, and its batches have Keras' shape (x, (x, y) or (x, y, w)).
        if y is None:
            w = None
        native = _native.Iterator(
            x, self.image_data_generator._native, y, w, aux, {**self._config, "seed": seed}
        )
        self._seed = native.seed
        return native

    def _abandon_native(self) -> None:
        native, self._native = self._native, None
        self._lock = threading.RLock()
        if native is None:
            return
        try:
            self._position = tuple(native.abandon())
        except RuntimeError:
            # Forked while another thread was inside a call: the object's
            # lock stays held in this process; keep it alive, never drop it.
            _abandoned.append(native)
            self._position = getattr(self, "_position", (0, 0))

    def _it(self) -> Any:
        """The native iterator, rebuilt at the same position after a fork.
        Calls on it take turns on its own lock; ``_lock`` guards replacing it."""
        native = self._native
        if native is None:
            with self._lock:
                if self._native is None:
                    rebuilt = self._build(self._seed)
                    if self._resume is not None:
                        rebuilt.load_state(json.dumps(self._resume))
                    rebuilt.set_position(*self._position)
                    self._native = rebuilt
                native = self._native
        return native

    # -- Keras' protocol ---------------------------------------------------

    @property
    def n(self) -> int:
        """Samples per epoch (this subset and shard)."""
        return int(self._it().num_samples)

    @property
    def batch_size(self) -> int:
        return int(self._config["batch_size"])

    def __len__(self) -> int:
        return len(self._it())

    def __getitem__(self, idx: int) -> Any:
        length = len(self)
        if idx >= length:
            raise ValueError(
                f"Asked to retrieve element {idx}, but the Sequence has length {length}"
            )
        if idx < 0:
            idx += length
            if idx < 0:
                raise IndexError(f"batch index {idx - length} out of range for length {length}")
        with self._lock:
            native = self._it()
            batch = native.get(int(idx))
            # Batches taken by index count as delivered (Keras' way of
            # taking them, in any order) for `state_dict`; under a Keras that
            # brackets its epochs, those taken outside one wait for the next.
            epoch = native.position()[0]
            if epoch != self._fetched_epoch:
                self._fetched, self._fetched_epoch = set(), epoch
                self._peeked = set()
            if self._in_keras_epoch or not self._keras_brackets_epochs:
                self._fetched.add(int(idx))
            else:
                self._peeked.add(int(idx))
            return batch

    def __iter__(self) -> NumpyArrayIterator:
        return self

    def __next__(self) -> Any:
        """The next batch (Keras' ``next``): endless, crossing epochs."""
        # The hot path of a training loop: one native call, which takes the
        # iterator's lock and builds the batch in Keras' shape.
        native = self._native
        if native is None:
            native = self._it()
        return native.next_batch()

    next = __next__

    def epoch(self) -> Any:
        """The batches of one epoch, from the current position to its end."""
        while True:
            batch = self._it().next_in_epoch()
            if batch is None:
                return
            yield batch

    def reset(self) -> None:
        """Keras' ``reset``: the next batch starts a new epoch."""
        self._it().reset()

    def on_epoch_end(self) -> None:
        """Keras' ``on_epoch_end``: move to the next epoch's order."""
        self._it().on_epoch_end()

    # Set by the Keras 3 class (Keras >= 3.5), whose ``fit`` calls
    # ``on_epoch_begin`` before taking an epoch's batches. Batches taken by
    # index outside an ``on_epoch_begin``/``on_epoch_end`` pair are then
    # either Keras' peeks (the TensorFlow backend takes the first two to
    # find the tensor spec, then calls ``on_epoch_end`` before the first
    # epoch: that call forgets them) or the first ones of an epoch whose
    # worker threads (``workers > 1``) started just before
    # ``on_epoch_begin`` (which adds them to the epoch's).
    _keras_brackets_epochs = False

    def _begin_keras_epoch(self) -> None:
        """``on_epoch_begin`` for Keras 3's ``fit``: the batches taken by
        index from now until ``on_epoch_end`` are the epoch's."""
        with self._lock:
            self._in_keras_epoch = True
            self._fetched |= self._peeked
            self._peeked = set()

    def _end_epoch_if_done(self) -> None:
        """``on_epoch_end`` for Keras' ``fit``: moves to the next epoch only
        once every batch of this one was taken. Keras 3 also calls
        ``on_epoch_end`` before the first epoch and after peeking at
        batches (to build the model, or for TensorFlow's tensor spec);
        those calls must not skip an epoch, so that Keras' epoch ``e`` is
        the iterator's epoch ``e``."""
        with self._lock:
            self._in_keras_epoch = False
            self._peeked = set()
            native = self._it()
            epoch, batch = native.position()
            taken = self._taken(epoch, batch)
            if len(taken if taken is not None else range(batch)) >= len(native):
                native.on_epoch_end()
                self._fetched, self._fetched_epoch = set(), -1

    # -- for the framework adapters ------------------------------------------

    def _where(self) -> tuple[int, int]:
        with self._lock:
            epoch, batch = self._it().position()
            return int(epoch), int(batch)

    def _set_epoch(self, epoch: int) -> None:
        """Moves to the start of ``epoch`` (unless already in it)."""
        with self._lock:
            native = self._it()
            if native.position()[0] != epoch:
                native.set_position(int(epoch), 0)

    def _next_epoch(self) -> None:
        """Keras-preprocessing's ``on_epoch_end``, whatever the class."""
        with self._lock:
            self._it().on_epoch_end()

    def _reshard(self, rank: int, world: int) -> None:
        """Iterates shard ``rank`` of ``world`` from now on (the same state)."""
        with self._lock:
            native = self._it()
            state = native.state(self._taken(*native.position()))
            self._config["shard"] = (int(rank), int(world))
            native = self._native = self._build(self._seed)
            native.load_state(state)
            self._resume = json.loads(state)
            self._fetched, self._fetched_epoch = set(), -1
            self._peeked = set()

    def _taken(self, epoch: int, batch: int) -> list[int] | None:
        """The batches of ``epoch`` taken so far (by index or in sequence),
        or None when only the sequence counts."""
        if self._fetched_epoch != epoch or not self._fetched:
            return None
        return sorted(self._fetched.union(range(batch)))

    # -- npyflow's additions -----------------------------------------------

    @property
    def threads(self) -> int:
        return int(self._it().threads)

    @property
    def prefetch(self) -> int:
        return int(self._it().prefetch)

    @property
    def order(self) -> Any:
        """The access order in its JSON form (``"shuffle"``, ``{"blocks": ...}``)."""
        return json.loads(self._it().order)

    def state_dict(self) -> dict[str, Any]:
        """Where the run stands, as a small JSON-able dict: ``version``,
        ``seed``, ``order``, ``samples`` (of the subset, before sharding),
        ``epoch``, and ``remaining``: the positions of the epoch's permutation
        not yet delivered, as ``[start, end)`` pairs (None: all).

        Delivered are the batches taken with ``next``/iteration/``epoch()``
        and, in the current epoch, those taken by index (``it[i]``, as Keras
        does). The state is global: every rank that took as many batches
        saves the same dict, so saving it on rank 0 is enough."""
        with self._lock:
            native = self._it()
            epoch, batch = native.position()
            return json.loads(native.state(self._taken(epoch, batch)))  # type: ignore[no-any-return]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues exactly where ``state`` (from ``state_dict``) stood: its
        seed and epoch, then only the samples of that epoch not yet
        delivered, re-batched and re-sharded for this iterator (another
        batch size, number of ranks, threads or prefetch depth), then full
        epochs. ``len(it)`` is the resumed epoch's (smaller) batch count until
        it ends. A state of other data (``samples``) or another ``order`` is
        a ``ValueError``."""
        with self._lock:
            native = self._it()
            native.load_state(json.dumps(state))
            self._seed = int(native.seed)
            self._resume = json.loads(json.dumps(state))
            self._fetched, self._fetched_epoch = set(), -1
            self._peeked = set()

    def last_epoch_telemetry(self) -> dict[str, Any] | None:
        """Telemetry of the last epoch walked to its end (samples, wall
        time, throughput, bytes read, major faults, page-cache residency
        before/after, peak anonymous memory), or None."""
        return self._it().telemetry(False)  # type: ignore[no-any-return]

    def current_epoch_telemetry(self) -> dict[str, Any] | None:
        """Telemetry of the epoch in progress so far, or None between epochs."""
        return self._it().telemetry(True)  # type: ignore[no-any-return]

    # -- pickling ----------------------------------------------------------

    def __reduce__(self) -> Any:
        # Rebuilt through `__new__`, which picks the Keras protocol class in
        # the receiving process when Keras is imported there.
        return (_unpickle, (), self.__getstate__())

    def __getstate__(self) -> dict[str, Any]:
        specs = {
            key: None if arr is None else _inputs.spec_of(obj, arr)
            for key, (obj, arr) in (
                ("x", self._inputs["x"]),
                ("y", self._inputs["y"]),
                ("sample_weight", self._inputs["sample_weight"]),
            )
        }
        specs["aux"] = [_inputs.spec_of(obj, arr) for obj, arr in self._inputs["aux"]]
        return {
            "inputs": specs,
            "generator": self.image_data_generator,
            "config": self._config,
            "attrs": {
                "data_format": self.data_format,
                "dtype": self.dtype,
                "save_to_dir": self.save_to_dir,
                "save_prefix": self.save_prefix,
                "save_format": self.save_format,
                "shuffle": self.shuffle,
                "seed": self.seed,
            },
            "state": {
                "seed": int(self._seed),
                "resume": self._resume,
                "position": list(self._it().position()),
                "fetched": sorted(self._fetched),
                "fetched_epoch": self._fetched_epoch,
                "peeked": sorted(self._peeked),
                "in_keras_epoch": self._in_keras_epoch,
            },
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state["attrs"])
        self._lock = threading.RLock()
        self.image_data_generator = state["generator"]
        self._config = state["config"]
        specs = state["inputs"]

        def reopen(spec: Any, name: str) -> tuple[Any, Any]:
            if spec is None:
                return (None, None)
            obj = spec[1] if spec[0] == "memory" else None
            return (obj, _inputs.from_spec(spec, name))

        self._inputs = {
            "x": reopen(specs["x"], "x"),
            "y": reopen(specs["y"], "y"),
            "sample_weight": reopen(specs["sample_weight"], "sample_weight"),
            "aux": [reopen(s, f"x[{i + 1}]") for i, s in enumerate(specs["aux"])],
        }
        # Keep what reopens a file-backed input when pickled again.
        for key in ("x", "y", "sample_weight"):
            obj, arr = self._inputs[key]
            if obj is None and arr is not None:
                self._inputs[key] = (os.fspath(arr.path), arr)
        s = state["state"]
        self._seed = int(s["seed"])
        self._resume = s["resume"]
        self._position = (int(s["position"][0]), int(s["position"][1]))
        self._fetched = set(s["fetched"])
        self._fetched_epoch = int(s["fetched_epoch"])
        self._peeked = set(s["peeked"])
        self._in_keras_epoch = bool(s["in_keras_epoch"])
        self._native = None
        _live.add(self)

    def __repr__(self) -> str:
        return (
            f"NumpyArrayIterator(n={self.n}, batch_size={self.batch_size}, "
            f"batches={len(self)}, seed={self._seed})"
        )
