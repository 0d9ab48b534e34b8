"""Inference backends behind one factory. Each kind's module is imported only when used, so a
missing optional runtime (TensorRT) fails with its own clear error, not at import."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from rmmss_core.deploy.backends.base import (
    Backend,
    BackendUnavailableError,
    ModelFileError,
    check_inputs,
)

# kind -> module with ``create(model_path, device, precision, **options) -> Backend``
BACKENDS: dict[str, str] = {
    "torch": "rmmss_core.deploy.backends.torch_backend",
    "onnxruntime": "rmmss_core.deploy.backends.onnxruntime_backend",
    "tensorrt": "rmmss_core.deploy.backends.tensorrt_backend",
}


def create_backend(kind: str, model_path: str | Path, device: str = "cpu", precision: str = "fp32",
                   **options: Any) -> Backend:
    """A loaded backend. ``model_path``: a ``.pt`` checkpoint (torch; onnxruntime and tensorrt
    export it on the fly into a cache) or an ``.onnx`` file from ``rmmss export``.

    Raises ValueError (unknown kind, listing the valid ones; bad precision or options),
    FileNotFoundError / ModelFileError / CheckpointError naming the file, and
    BackendUnavailableError when the runtime is absent (with the install hint).
    """
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend kind {kind!r}; valid kinds: {sorted(BACKENDS)}")
    module = importlib.import_module(BACKENDS[kind])
    return module.create(model_path, device=device, precision=precision, **options)


__all__ = ["BACKENDS", "Backend", "BackendUnavailableError", "ModelFileError", "check_inputs",
           "create_backend"]
