"""``ImageDataGenerator``: Keras' class, over npyflow's native core."""

from __future__ import annotations

import json
import secrets
import sys
import warnings
from typing import Any, Callable

import numpy as np

from . import _inputs, _native

_FLIP_KEYS = ("flip_horizontal", "flip_vertical")
_PARAM_KEYS = (
    "theta",
    "tx",
    "ty",
    "shear",
    "zx",
    "zy",
    "flip_horizontal",
    "flip_vertical",
    "channel_shift_intensity",
    "brightness",
)
_DEFAULT_PARAMS: dict[str, Any] = {
    "theta": 0,
    "tx": 0,
    "ty": 0,
    "shear": 0,
    "zx": 1,
    "zy": 1,
    "flip_horizontal": False,
    "flip_vertical": False,
    "channel_shift_intensity": None,
    "brightness": None,
}
COMPAT_DEFAULT = "keras-preprocessing"
COMPAT_KERAS3 = "keras3"


def _keras3_config(name: str, default: str) -> str:
    """Keras 3's ``image_data_format()`` / ``floatx()`` when Keras is loaded
    (its ``None`` defaults read them), else Keras' own defaults."""
    keras = sys.modules.get("keras")
    try:
        return str(getattr(keras.config, name)())  # type: ignore[union-attr]
    except AttributeError:
        return default


def random_seed() -> int:
    """A fresh 64-bit seed (Keras' ``seed=None``: a different draw each time)."""
    return secrets.randbits(64)


def _plain(value: Any) -> Any:
    """A Keras argument as JSON: numpy scalars and arrays as Python numbers
    and lists; ``True``/``False`` where Keras reads a number as 1/0."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _number(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list):
        return [int(v) if isinstance(v, bool) else v for v in value]
    return value


class ImageDataGenerator:
    """Keras' ``ImageDataGenerator`` (keras-preprocessing 1.1.2): the same
    keyword arguments, names, defaults, checks and messages, plus
    ``brightness_mode`` (``'keras'`` or ``'multiplicative'``) and ``compat``
    (``'keras-preprocessing'``, or ``'keras3'`` for the legacy generator of
    Keras 3 / ``tf.keras`` 2.16+: its affine geometry, brightness shift and
    ZCA; ``data_format=None`` and ``dtype=None`` then read Keras'
    ``image_data_format()`` and ``floatx()`` when Keras is imported, else
    ``'channels_last'`` and ``'float32'``; the ZCA matrix is also
    ``zca_whitening_matrix``).

    ``preprocessing_function`` is called from npyflow's worker threads with
    the GIL taken, on one float image at a time; it serialises the workers
    for that step, so prefer built-in options where one exists.
    """

    def __init__(
        self,
        featurewise_center: bool = False,
        samplewise_center: bool = False,
        featurewise_std_normalization: bool = False,
        samplewise_std_normalization: bool = False,
        zca_whitening: bool = False,
        zca_epsilon: float = 1e-6,
        rotation_range: float = 0,
        width_shift_range: Any = 0.0,
        height_shift_range: Any = 0.0,
        brightness_range: Any = None,
        shear_range: float = 0.0,
        zoom_range: Any = 0.0,
        channel_shift_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        rescale: float | None = None,
        preprocessing_function: Callable[[np.ndarray], np.ndarray] | None = None,
        data_format: str | None = "channels_last",
        validation_split: float = 0.0,
        interpolation_order: int = 1,
        dtype: Any = "float32",
        *,
        brightness_mode: str = "keras",
        compat: str = COMPAT_DEFAULT,
    ) -> None:
        self._kwargs = dict(
            featurewise_center=featurewise_center,
            samplewise_center=samplewise_center,
            featurewise_std_normalization=featurewise_std_normalization,
            samplewise_std_normalization=samplewise_std_normalization,
            zca_whitening=zca_whitening,
            zca_epsilon=zca_epsilon,
            rotation_range=rotation_range,
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            brightness_range=brightness_range,
            shear_range=shear_range,
            zoom_range=zoom_range,
            channel_shift_range=channel_shift_range,
            fill_mode=fill_mode,
            cval=cval,
            horizontal_flip=horizontal_flip,
            vertical_flip=vertical_flip,
            rescale=rescale,
            data_format=data_format,
            validation_split=validation_split,
            interpolation_order=interpolation_order,
            dtype=dtype,
            brightness_mode=brightness_mode,
            compat=compat,
        )
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.channel_shift_range = channel_shift_range
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.interpolation_order = interpolation_order
        self.brightness_mode = brightness_mode
        self.compat = compat
        if compat == COMPAT_KERAS3:
            floatx = _keras3_config("floatx", "float32")
            if brightness_range is not None and floatx != "float32":
                # Keras 3's brightness shift converts images to floatx.
                raise ValueError(
                    "compat='keras3' reproduces the brightness shift with Keras' "
                    f"floatx() 'float32' only; floatx() is {floatx!r}"
                )
            if data_format is None:
                data_format = _keras3_config("image_data_format", "channels_last")
                self._kwargs["data_format"] = data_format
            if dtype is None:
                dtype = floatx
                self._kwargs["dtype"] = dtype
        # Keras' checks, in Keras' order and words.
        if data_format not in {"channels_last", "channels_first"}:
            raise ValueError(
                '`data_format` should be `"channels_last"` '
                "(channel after row and column) or "
                '`"channels_first"` (channel before row and column). '
                f"Received: {data_format}"
            )
        self.data_format = data_format
        if data_format == "channels_first":
            self.channel_axis, self.row_axis, self.col_axis = 1, 2, 3
        else:
            self.channel_axis, self.row_axis, self.col_axis = 3, 1, 2
        if validation_split and not 0 < validation_split < 1:
            raise ValueError(
                "`validation_split` must be strictly between 0 and 1. "
                f" Received: {validation_split}"
            )
        self._validation_split = validation_split
        if isinstance(zoom_range, (float, int)):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2 and all(isinstance(v, (float, int)) for v in zoom_range):
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(
                "`zoom_range` should be a float or "
                "a tuple or list of two floats. "
                f"Received: {zoom_range}"
            )
        if zca_whitening:
            if not featurewise_center:
                self.featurewise_center = True
                warnings.warn(
                    "This ImageDataGenerator specifies "
                    "`zca_whitening`, which overrides "
                    "setting of `featurewise_center`.",
                    stacklevel=2,
                )
            if featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn(
                    "This ImageDataGenerator specifies "
                    "`zca_whitening` "
                    "which overrides setting of"
                    "`featurewise_std_normalization`.",
                    stacklevel=2,
                )
        if featurewise_std_normalization and not featurewise_center:
            self.featurewise_center = True
            warnings.warn(
                "This ImageDataGenerator specifies "
                "`featurewise_std_normalization`, "
                "which overrides setting of "
                "`featurewise_center`.",
                stacklevel=2,
            )
        if samplewise_std_normalization and not samplewise_center:
            self.samplewise_center = True
            warnings.warn(
                "This ImageDataGenerator specifies "
                "`samplewise_std_normalization`, "
                "which overrides setting of "
                "`samplewise_center`.",
                stacklevel=2,
            )
        if brightness_range is not None:
            if not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2:
                raise ValueError(
                    "`brightness_range should be tuple or list of two floats. "
                    f"Received: {brightness_range}"
                )
        self.brightness_range = brightness_range
        if not isinstance(compat, str):
            raise TypeError(f"`compat` must be a string, got {type(compat).__name__}")
        try:
            self.dtype = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"`dtype` must be a numpy float dtype, got {dtype!r}") from None
        self._native = _native.Generator(json.dumps(self._options()))
        self.preprocessing_function = preprocessing_function

    def _options(self) -> dict[str, Any]:
        """The keyword arguments as the core's JSON reads them."""
        k = self._kwargs
        options: dict[str, Any] = {}
        for key in (
            "featurewise_center",
            "samplewise_center",
            "featurewise_std_normalization",
            "samplewise_std_normalization",
            "zca_whitening",
            "horizontal_flip",
            "vertical_flip",
        ):
            options[key] = bool(k[key])
        for key in (
            "zca_epsilon",
            "rotation_range",
            "shear_range",
            "channel_shift_range",
            "cval",
            "validation_split",
        ):
            options[key] = float(_number(k[key]) or 0)
        for key in ("width_shift_range", "height_shift_range", "zoom_range"):
            options[key] = _number(k[key])
        options["brightness_range"] = _number(k["brightness_range"])
        options["fill_mode"] = k["fill_mode"]
        options["rescale"] = _number(k["rescale"]) or None
        options["data_format"] = k["data_format"]
        options["interpolation_order"] = _number(k["interpolation_order"])
        options["dtype"] = np.dtype(k["dtype"]).name
        options["brightness_mode"] = k["brightness_mode"]
        if k["compat"] != COMPAT_DEFAULT:
            options["compat"] = k["compat"]
        return options

    # -- Keras' attributes -------------------------------------------------

    @property
    def preprocessing_function(self) -> Callable[[np.ndarray], np.ndarray] | None:
        return self._preprocessing_function

    @preprocessing_function.setter
    def preprocessing_function(self, f: Callable[[np.ndarray], np.ndarray] | None) -> None:
        if f is not None and not callable(f):
            raise TypeError(f"`preprocessing_function` must be callable, got {type(f).__name__}")
        self._preprocessing_function = f
        self._native.set_preprocessing_function(f)

    def _stat_shape(self) -> tuple[int, ...]:
        return (1, 1, -1) if self.data_format == "channels_last" else (-1, 1, 1)

    def _stats(self) -> tuple[Any, Any, Any]:
        s = self._native.statistics()
        return (None, None, None) if s is None else s

    @property
    def mean(self) -> np.ndarray | None:
        """Keras' ``mean``: ``(1, 1, C)`` (or ``(C, 1, 1)``) after ``fit``."""
        m = self._stats()[0]
        return None if m is None else np.asarray(m, self.dtype).reshape(self._stat_shape())

    @mean.setter
    def mean(self, value: Any) -> None:
        self._set_stats(mean=value)

    @property
    def std(self) -> np.ndarray | None:
        """Keras' ``std`` (population std per channel) after ``fit``."""
        s = self._stats()[1]
        return None if s is None else np.asarray(s, self.dtype).reshape(self._stat_shape())

    @std.setter
    def std(self, value: Any) -> None:
        self._set_stats(std=value)

    @property
    def principal_components(self) -> np.ndarray | None:
        """Keras' ZCA matrix (``D × D``) after ``fit``."""
        z = self._stats()[2]
        if z is None:
            return None
        d = int(round(len(z) ** 0.5))
        return np.asarray(z, self.dtype).reshape(d, d)

    @principal_components.setter
    def principal_components(self, value: Any) -> None:
        self._set_stats(principal_components=value)

    @property
    def zca_whitening_matrix(self) -> np.ndarray | None:
        """Keras 3's name of the ZCA matrix (``D × D``, float64) after ``fit``."""
        z = self._stats()[2]
        if z is None:
            return None
        d = int(round(len(z) ** 0.5))
        return np.asarray(z, np.float64).reshape(d, d)

    @zca_whitening_matrix.setter
    def zca_whitening_matrix(self, value: Any) -> None:
        self._set_stats(principal_components=value)

    def _set_stats(self, **changed: Any) -> None:
        cur = {
            "mean": self.mean,
            "std": self.std,
            "principal_components": self.principal_components,
        }
        cur.update(changed)

        def flat(v: Any) -> list[float] | None:
            return None if v is None else [float(e) for e in np.asarray(v).ravel()]

        zca = None
        if cur["principal_components"] is not None:
            pc = np.asarray(cur["principal_components"])
            zca = (int(pc.shape[0]), [float(e) for e in pc.ravel()])
        self._native.set_statistics(flat(cur["mean"]), flat(cur["std"]), zca)

    # -- flow and fit ------------------------------------------------------

    def flow(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight: Any = None,
        seed: int | None = None,
        save_to_dir: Any = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: str | None = None,
        ignore_class_split: bool = False,
        dtype: Any = None,
        **npyflow_options: Any,
    ) -> Any:
        """Keras' ``flow``: a ``NumpyArrayIterator`` over ``x`` (and ``y``,
        ``sample_weight``). npyflow's own keyword arguments: ``order``,
        ``threads``, ``prefetch``, ``cache_budget``, ``drop_last``, ``shard``
        (see ``NumpyArrayIterator``)."""
        from ._iterator import NumpyArrayIterator

        if self.compat == COMPAT_KERAS3 and isinstance(subset, bool):
            # Keras 3 put `ignore_class_split` before `subset`; npyflow keeps
            # 1.1.2's order, so a positional call would swap the two.
            raise TypeError(
                "flow(): with compat='keras3' pass `subset` and `ignore_class_split` "
                f"by keyword (got subset={subset!r}: Keras 3's 10th positional "
                "argument is `ignore_class_split`, npyflow's is `subset`)"
            )
        return NumpyArrayIterator(
            x,
            y,
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            sample_weight=sample_weight,
            seed=seed,
            data_format=self.data_format,
            save_to_dir=save_to_dir,
            save_prefix=save_prefix,
            save_format=save_format,
            subset=subset,
            ignore_class_split=ignore_class_split,
            dtype=self.dtype if dtype is None else dtype,
            **npyflow_options,
        )

    def fit(self, x: Any, augment: bool = False, rounds: int = 1, seed: int | None = None) -> None:
        """Keras' ``fit``, streaming: any size, memory independent of the
        number of samples; statistics in double precision. Ctrl-C raises
        ``KeyboardInterrupt`` within ~50 ms."""
        array = _inputs.to_array(x, "x")
        shape = tuple(array.shape)
        if len(shape) != 4:
            raise ValueError(
                "Input to `.fit()` should have rank 4. Got array with shape: " + str(shape)
            )
        if shape[self.channel_axis] not in {1, 3, 4}:
            warnings.warn(
                "Expected input to be images (as Numpy array) "
                'following the data format convention "'
                + self.data_format
                + '" (channels on axis '
                + str(self.channel_axis)
                + "), i.e. expected "
                "either 1, 3 or 4 channels on axis " + str(self.channel_axis) + ". "
                "However, it was passed an array with shape "
                + str(shape)
                + " ("
                + str(shape[self.channel_axis])
                + " channels).",
                stacklevel=2,
            )
        if seed is None:
            seed = random_seed()
        self._native.fit(array, bool(augment), int(rounds), int(seed) % 2**64)

    # -- single images -----------------------------------------------------

    def get_random_transform(self, img_shape: Any, seed: int | None = None) -> dict[str, Any]:
        """Keras' ``get_random_transform``: a dict of the ten parameters for
        one image of ``img_shape``, drawn from ``seed``'s own stream."""
        if seed is None:
            seed = random_seed()
        t = self._native.get_random_transform([int(d) for d in img_shape], int(seed) % 2**64)
        params: dict[str, Any] = dict(zip(_PARAM_KEYS, t))
        for key in _FLIP_KEYS:
            params[key] = int(params[key])
        return params

    def _working_copy(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(self.dtype)
        return np.array(x, dtype=dtype, order="C", copy=True)

    def apply_transform(self, x: Any, transform_parameters: dict[str, Any]) -> np.ndarray:
        """Keras' ``apply_transform`` on one 3-D image: a new array (float32
        or float64, the input's float type or the generator's dtype)."""
        out = self._working_copy(x)
        p = {**_DEFAULT_PARAMS, **transform_parameters}
        t = (
            float(p["theta"]),
            float(p["tx"]),
            float(p["ty"]),
            float(p["shear"]),
            float(p["zx"]),
            float(p["zy"]),
            bool(p["flip_horizontal"]),
            bool(p["flip_vertical"]),
            None if p["channel_shift_intensity"] is None else float(p["channel_shift_intensity"]),
            None if p["brightness"] is None else float(p["brightness"]),
        )
        self._native.apply_transform(out, t)
        return out

    def random_transform(self, x: Any, seed: int | None = None) -> np.ndarray:
        """Keras' ``random_transform``."""
        params = self.get_random_transform(np.shape(x), seed)
        return self.apply_transform(x, params)

    def standardize(self, x: Any) -> np.ndarray:
        """Keras' ``standardize``: in place on a writeable, C-contiguous
        float32/float64 array (returned), else on a copy in the generator's
        dtype. A 4-D input is standardised image by image."""
        if not (
            isinstance(x, np.ndarray)
            and x.dtype in (np.float32, np.float64)
            and x.flags.c_contiguous
            and x.flags.writeable
        ):
            x = np.array(x, dtype=self.dtype, order="C", copy=True)
        if x.ndim not in (3, 4):
            raise ValueError(f"standardize expects a 3-D image or a 4-D batch, got shape {x.shape}")
        zca = self.zca_whitening_matrix if self.compat == COMPAT_KERAS3 else None
        if zca is not None and self.zca_whitening:
            return self._keras3_whiten(x, zca)
        self._native.standardize(x)
        return np.asarray(x)

    def _keras3_whiten(self, x: np.ndarray, zca: np.ndarray) -> np.ndarray:
        """Keras 3's ``standardize`` with ZCA: the steps before it in ``x``'s
        dtype, then ``flat_x @ zca_whitening_matrix`` in float64, and the
        float64 result returned (a batch of ``flow`` is cast back to the
        generator's dtype, as in Keras)."""
        kwargs = dict(self._kwargs, zca_whitening=False, featurewise_center=True)
        kwargs["featurewise_std_normalization"] = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before = ImageDataGenerator(
                **kwargs, preprocessing_function=self._preprocessing_function
            )
        before.mean = self.mean
        before._native.standardize(x)
        flat = np.asarray(x).reshape(-1, int(np.prod(x.shape[-3:])))
        white: np.ndarray = np.matmul(flat, zca)
        return white.reshape(x.shape)

    # -- pickling ----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "kwargs": self._kwargs,
            "preprocessing_function": self._preprocessing_function,
            "statistics": self._native.statistics(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.__init__(  # type: ignore[misc]
                **state["kwargs"], preprocessing_function=state["preprocessing_function"]
            )
        s = state["statistics"]
        if s is not None:
            mean, std, zca = s
            z = None if zca is None else (int(round(len(zca) ** 0.5)), zca)
            self._native.set_statistics(mean, std, z)

    def __repr__(self) -> str:
        given = {k: v for k, v in self._kwargs.items()}
        return "ImageDataGenerator(" + ", ".join(f"{k}={v!r}" for k, v in given.items()) + ")"
