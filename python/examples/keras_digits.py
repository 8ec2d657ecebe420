"""A small CNN on the digits .npy (``digits_to_npy.py``), trained with Keras 3
from npyflow iterators: ``model.fit(gen.flow(..., subset="training"),
validation_data=gen.flow(..., subset="validation"))``.

    KERAS_BACKEND=jax python keras_digits.py DIGITS_DIR [--epochs 15] [--compare]

``--compare`` then trains the same model for the same epochs fed by Keras'
own legacy ``ImageDataGenerator.flow`` (same augmentation, the arrays in
memory) and prints both training throughputs (samples/s, the first epoch
left out: it compiles).
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import numpy as np

import npyflow

AUGMENT = dict(
    rescale=1 / 255,
    rotation_range=10,
    width_shift_range=0.1,
    height_shift_range=0.1,
    zoom_range=0.1,
)


def model() -> keras.Model:
    layers = keras.layers
    m = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax"),
        ]
    )
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


class Throughput(keras.callbacks.Callback):
    """Samples per second of the epochs after the first."""

    def __init__(self, samples: int) -> None:
        super().__init__()
        self.samples, self.times = samples, []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)

    def rate(self) -> float:
        return self.samples * (len(self.times) - 1) / sum(self.times[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("digits")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--compare", action="store_true")
    args = p.parse_args()
    x_path = os.path.join(args.digits, "x.npy")
    y = np.load(os.path.join(args.digits, "y.npy"))

    gen = npyflow.ImageDataGenerator(**AUGMENT, validation_split=0.2)
    train = gen.flow(x_path, y, batch_size=32, subset="training", seed=1)
    val = gen.flow(x_path, y, batch_size=64, subset="validation", shuffle=False)
    keras.utils.set_random_seed(1)
    m = model()
    speed = Throughput(train.n)
    history = m.fit(train, validation_data=val, epochs=args.epochs, callbacks=[speed], verbose=2)
    accuracy = history.history["val_accuracy"][-1]
    print(f"npyflow: validation accuracy {accuracy:.3f} after {args.epochs} epochs")
    print(f"npyflow: {speed.rate():,.0f} samples/s (training, epochs 2-{args.epochs})")

    if args.compare:
        try:  # Keras 3 keeps the legacy class in its tf.keras namespace
            from keras._tf_keras.keras.preprocessing.image import (
                ImageDataGenerator as KerasGenerator,
            )
        except ImportError:
            from keras.preprocessing.image import ImageDataGenerator as KerasGenerator

        split = int(len(y) * 0.2)
        kgen = KerasGenerator(**AUGMENT)
        x = np.load(x_path).astype("float32")  # Keras' flow takes arrays in memory
        kflow = kgen.flow(x[split:], y[split:], batch_size=32, seed=1)
        keras.utils.set_random_seed(1)
        k = model()
        kspeed = Throughput(len(y) - split)
        k.fit(kflow, epochs=args.epochs, callbacks=[kspeed], verbose=0)
        print(f"keras ImageDataGenerator.flow: {kspeed.rate():,.0f} samples/s")
        print(f"npyflow / keras: {speed.rate() / kspeed.rate():.2f}x")


if __name__ == "__main__":
    main()
