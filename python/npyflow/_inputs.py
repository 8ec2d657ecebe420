"""Turning user inputs into native arrays without copying them.

Accepted for ``x``, ``y``, ``sample_weight`` and auxiliary arrays:

- a path (``str`` or ``os.PathLike``) to a ``.npy`` file: memory-mapped;
- a ``numpy.memmap`` (also what ``np.load(path, mmap_mode='r')`` returns,
  and any slice of one along its first axis): reopened by its file and the
  byte offset of its first element, zero-copy (nothing is read until a
  batch needs it). A memmap in copy-on-write mode (``'c'``) may differ from
  its file and is used in memory instead;
- an in-memory ``ndarray`` (or anything ``np.asarray`` accepts): used in
  place when it is C-contiguous with a supported dtype. Any other layout is
  copied once with ``np.ascontiguousarray`` (a warning says so); an
  unsupported dtype (object, complex, strings, structured, datetime) is a
  ``TypeError``. The array must not be modified while an iterator reads it.
"""

from __future__ import annotations

import mmap
import os
import warnings
from typing import Any

import numpy as np

from . import _native

SUPPORTED_KINDS = {"b", "u", "i", "f"}
SUPPORTED_SIZES = {"b": {1}, "u": {1, 2, 4, 8}, "i": {1, 2, 4, 8}, "f": {2, 4, 8}}


def is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _check_dtype(dtype: np.dtype, name: str) -> None:
    ok = (
        dtype.fields is None
        and dtype.kind in SUPPORTED_KINDS
        and dtype.itemsize in SUPPORTED_SIZES[dtype.kind]
    )
    if not ok:
        raise TypeError(
            f"`{name}` has dtype {dtype}, which npyflow does not read (bool, uint8, int8, "
            "uint16, int16, uint32, int32, uint64, int64, float16, float32, float64)"
        )


def _memmap_file_offset(m: np.memmap) -> int | None:
    """The file offset of ``m``'s first element, or None when it cannot be known."""
    base = getattr(m, "_mmap", None)
    if base is None or not isinstance(base, mmap.mmap) or m.offset is None:
        return None
    # numpy maps from the allocation boundary at or below the memmap's offset.
    start = m.offset - m.offset % mmap.ALLOCATIONGRANULARITY
    base_addr = np.frombuffer(base, dtype=np.uint8).ctypes.data if len(base) else 0
    return int(start + (m.ctypes.data - base_addr))


def _from_memmap(m: np.memmap, name: str) -> _native.Array | None:
    if m.mode == "c" or not m.filename or not m.flags.c_contiguous or m.ndim == 0:
        return None
    _check_dtype(m.dtype, name)
    offset = _memmap_file_offset(m)
    if offset is None:
        return None
    path = os.fspath(m.filename)
    try:
        whole = _native.Array.open(path)
    except (ValueError, OSError):
        whole = None
    if (
        whole is not None
        and whole.data_offset == offset
        and tuple(whole.shape) == m.shape
        and np.dtype(whole.dtype) == m.dtype
    ):
        return whole
    return _native.Array.raw(path, offset, m.dtype.str, list(m.shape))


def to_array(obj: Any, name: str) -> _native.Array:
    """``obj`` as a native array (see the module docs for what is accepted)."""
    if isinstance(obj, _native.Array):
        return obj
    if is_path(obj):
        return _native.Array.open(os.fspath(obj))
    if isinstance(obj, np.memmap):
        found = _from_memmap(obj, name)
        if found is not None:
            return found
    arr = np.asarray(obj)
    _check_dtype(arr.dtype, name)
    if not arr.flags.c_contiguous:
        warnings.warn(
            f"npyflow: `{name}` is not C-contiguous; using one contiguous copy "
            f"({arr.nbytes} bytes) made with np.ascontiguousarray",
            UserWarning,
            stacklevel=4,
        )
        arr = np.ascontiguousarray(arr)
    shape = "x".join(str(d) for d in arr.shape)
    return _native.Array.memory(arr, f"<ndarray {name} {shape} {arr.dtype}>")


def spec_of(obj: Any, array: _native.Array) -> Any:
    """What pickling keeps of an input: where to reopen it, or the in-memory data."""
    if array.kind == "npy":
        return ("npy", os.fspath(array.path))
    if array.kind == "raw":
        return ("raw", os.fspath(array.path), array.data_offset, array.dtype, list(array.shape))
    return ("memory", np.asarray(obj))


def from_spec(spec: Any, name: str) -> _native.Array:
    kind = spec[0]
    if kind == "npy":
        return _native.Array.open(spec[1])
    if kind == "raw":
        return _native.Array.raw(spec[1], spec[2], spec[3], spec[4])
    return to_array(spec[1], name)
