"""npyflow: Keras' ``ImageDataGenerator`` and ``NumpyArrayIterator``, out of core.

Arrays stay on disk (``.npy`` paths and ``np.load(..., mmap_mode='r')``
results are memory-mapped, in-memory arrays are used in place); batches are
assembled by npyflow's native threads with the GIL released and handed to
numpy as arrays that own their memory.
"""

from ._errors import FileChangedError
from ._generator import ImageDataGenerator
from ._iterator import NumpyArrayIterator
from ._native import __version__

__all__ = ["FileChangedError", "ImageDataGenerator", "NumpyArrayIterator", "__version__"]
