"""Keras 3 (JAX, PyTorch and TensorFlow backends), tf.keras 2.15 and JAX
multi-process, each in processes of their own: Keras changes the class of
iterators made after it is imported, and ``jax.distributed`` is once per
process. Skipped where the framework is not installed (``.ci/python``
installs it)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import images

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


def _installed(*names):
    return all(importlib.util.find_spec(n) is not None for n in names)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def test_import_npyflow_imports_no_framework():
    code = "import sys, npyflow; print(sorted({'keras', 'torch', 'jax'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip() == "[]", run.stderr


def _keras_fit(python: str, env: dict) -> dict:
    """Runs scripts/keras_fit.py with `python`; its JSON summary."""
    run = subprocess.run(
        [python, os.path.join(SCRIPTS, "keras_fit.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_keras3_fit_evaluate_predict_and_epochs(backend):
    if not _installed("keras", backend):
        pytest.skip(f"needs keras and {backend}")
    result = _keras_fit(sys.executable, _env(KERAS_BACKEND=backend))
    assert result["ok"] and result["dataset"] == "PyDataset", result
    assert result["keras"].startswith("3."), result


def test_tf_keras2_fit_evaluate_predict_and_epochs():
    """The same contract under tf.keras 2.15 (Keras 2: a ``Sequence``), in
    a Python of its own: TensorFlow 2.15 needs numpy < 2, so this also runs
    the native module under numpy 1. ``.ci/python`` makes that virtual
    environment and names its interpreter in NPYFLOW_TF_KERAS2_PYTHON."""
    python = os.environ.get("NPYFLOW_TF_KERAS2_PYTHON")
    if not python:
        pytest.skip(
            "needs NPYFLOW_TF_KERAS2_PYTHON: a Python with tensorflow-cpu 2.15 "
            "and npyflow installed (.ci/python makes one)"
        )
    result = _keras_fit(python, _env())
    assert result["ok"] and result["dataset"] == "Sequence", result
    assert result["keras"].startswith("2.15."), result
    assert result["numpy"].startswith("1."), result


@pytest.mark.skipif(not _installed("jax"), reason="needs jax")
def test_jax_two_processes_take_equal_disjoint_shards(tmp_path):
    import npyflow

    n = 30
    path = str(tmp_path / "x.npy")
    np.save(path, images(n, 8, 6, 3, seed=4))
    out = tmp_path / "ranks.json"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(SCRIPTS, "jax_ranks.py"),
                str(p),
                str(port),
                path,
                str(out),
            ],
            env=_env(JAX_PLATFORMS="cpu"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for p in (0, 1)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors[0][-2000:] + errors[1][-2000:]
    result = json.loads(out.read_text())
    assert result["count"] == 2
    first, second = result["labels"]
    assert len(first) == len(second) == 15
    gen = npyflow.ImageDataGenerator(rotation_range=15)
    it = gen.flow(path, np.arange(n), batch_size=4, seed=3)
    order = [int(v) for _, y in it.epoch() for v in y]
    assert first + second == order
