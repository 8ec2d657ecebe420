"""Exceptions and Keras' messages.

npyflow's own errors arrive from the native layer already as conventional
exceptions (``FileNotFoundError`` and the other ``OSError`` subclasses for
files, ``ValueError`` for bad values, ``TypeError`` for wrong types,
``MemoryError`` for a configured limit). The argument checks Keras makes
are repeated here, in Keras' order and with Keras' wording, so that code
written against Keras sees the same exception and message.
"""

from __future__ import annotations

from ._native import FileChangedError

__all__ = ["FileChangedError", "shape_str"]


def shape_str(shape: tuple[int, ...] | list[int]) -> str:
    """A shape as numpy prints it in Keras' messages: ``(10, 4, 4, 3)``, ``(9,)``."""
    return str(tuple(int(d) for d in shape))
