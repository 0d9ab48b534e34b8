"""The inference ``Backend`` contract shared by the ROS node, bag replay and ``rmmss bench``.

A backend takes *preprocessed* tensors (encoded and normalised exactly as ``backend.spec`` says)
and returns class-id masks. The argmax runs on the backend's device, so only a small
``B x H x W`` uint8 mask crosses back to the host, never the ``B x K x H x W`` logits.
``infer_with_confidence`` also returns the winning class's softmax probability as uint8
(rmmss_core.deploy.confidence), computed on the device beside the argmax.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmmss_core.deploy.confidence import apply_min_confidence, min_confidence_level
from rmmss_core.modalities import MODALITIES, NUM_MODALITIES
from rmmss_core.spec import PreprocessSpec

ArrayLike = np.ndarray | torch.Tensor
PRECISIONS = ("fp32", "fp16", "bf16")


class ModelFileError(RuntimeError):
    """A model file (checkpoint, ONNX graph, TensorRT engine) is corrupt or of the wrong kind."""


class BackendUnavailableError(RuntimeError):
    """The runtime a backend needs (TensorRT, a CUDA device, an execution provider) is absent."""


class Backend(ABC):
    """One loaded model on one device.

    Attributes: ``spec`` (the preprocessing spec the model was trained with), ``name`` (the kind:
    torch, onnxruntime, tensorrt), ``device`` ("cpu", "cuda", "cuda:1"), ``precision``.
    Use as a context manager or call ``close()`` to release device memory.
    """

    name: str = "base"

    def __init__(self, spec: PreprocessSpec, device: str, precision: str):
        if spec.num_classes > 255:
            raise ValueError(f"{spec.num_classes} classes do not fit the uint8 mask (at most 255)")
        self.spec = spec
        self.device = device
        self.precision = precision

    def infer(self, inputs: Mapping[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        """Class ids ``B x H x W`` uint8 from ``inputs[m]: B x 3 x H x W`` float32 (normalised)
        for every m of MODALITIES and ``available: B x 4`` bool (True = sensor present)."""
        inputs, available = check_inputs(inputs, available)
        return self._infer(inputs, available)

    def infer_with_confidence(self, inputs: Mapping[str, ArrayLike], available: ArrayLike,
                              min_confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(class ids, confidence), both ``B x H x W`` uint8, for the inputs of :meth:`infer`.

        confidence = ``floor(255 * max softmax + 0.5)``, computed on the device with the argmax
        (rmmss_core.deploy.confidence). ``min_confidence`` in [0, 1] (0 = off) marks pixels whose
        confidence is below ``floor(255 * min_confidence + 0.5)`` as 255 (unlabeled) in the mask.
        Raises ModelFileError for an ONNX graph exported without the ``confidence`` output.
        """
        level = min_confidence_level(min_confidence)
        inputs, available = check_inputs(inputs, available)
        mask, conf = self._infer_confidence(inputs, available)
        return (apply_min_confidence(mask, conf, min_confidence) if level else mask), conf

    @property
    def provides_confidence(self) -> bool:
        """Whether :meth:`infer_with_confidence` works (False for ONNX files exported before it)."""
        return True

    def infer_logits(self, inputs: Mapping[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        """Logits ``B x K x H x W`` float32 on the host (tests and benchmarks, not serving)."""
        inputs, available = check_inputs(inputs, available)
        return self._infer_logits(inputs, available)

    @abstractmethod
    def _infer(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray: ...

    @abstractmethod
    def _infer_confidence(self, inputs: dict[str, ArrayLike], available: ArrayLike
                          ) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _infer_logits(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray: ...

    def synchronize(self) -> None:
        """Wait for queued device work (benchmarks); a no-op where ``infer`` is synchronous."""
        return None

    def close(self) -> None:
        """Release the model and its device memory. Idempotent."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        h, w = self.spec.input_size
        return (f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r}, "
                f"classes={self.spec.num_classes}, input={h}x{w})")


def check_inputs(inputs: Mapping[str, ArrayLike], available: ArrayLike
                 ) -> tuple[dict[str, ArrayLike], ArrayLike]:
    """Validate a batch; returns the four inputs in MODALITIES order and the mask (same types).

    Raises ValueError naming the offending input: a missing or unknown key, a shape that is not
    ``B x 3 x H x W`` or differs from rgb's, a mask that is not ``B x 4`` or has an empty row.
    """
    missing = [m for m in MODALITIES if m not in inputs]
    unknown = [k for k in inputs if k not in MODALITIES]
    if missing or unknown:
        raise ValueError(f"inputs need exactly the keys {MODALITIES} (zeros for a missing sensor); "
                         f"missing {missing}, unknown {unknown}")
    ref = tuple(inputs["rgb"].shape)
    if len(ref) != 4 or ref[1] != 3:
        raise ValueError(f"input 'rgb' must be B x 3 x H x W, got {ref}")
    for m in MODALITIES:
        x = inputs[m]
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise ValueError(f"input {m!r} must be a numpy array or torch tensor, got {type(x).__name__}")
        if tuple(x.shape) != ref:
            raise ValueError(f"input {m!r} has shape {tuple(x.shape)}, rgb has {ref}")
        if not _is_float(x):
            raise ValueError(f"input {m!r} must be float (normalised), got {x.dtype}")
    shape = tuple(available.shape)
    if shape != (ref[0], NUM_MODALITIES):
        raise ValueError(f"availability mask must be {ref[0]} x {NUM_MODALITIES} for this batch, got {shape}")
    rows = available.any(1) if isinstance(available, np.ndarray) else available.bool().any(1)
    if not bool(rows.all()):
        raise ValueError("availability mask: every sample needs at least one available modality")
    return {m: inputs[m] for m in MODALITIES}, available


def _is_float(x: ArrayLike) -> bool:
    if isinstance(x, torch.Tensor):
        return x.is_floating_point()
    return np.issubdtype(x.dtype, np.floating)


def to_numpy(x: ArrayLike, dtype: np.dtype) -> np.ndarray:
    """Host, contiguous numpy array of ``dtype`` (no copy when it already is one)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=dtype)


def require_file(path: str | Path, what: str, suffixes: tuple[str, ...]) -> Path:
    """``path`` as a Path if it is an existing file with one of ``suffixes``; clear errors if not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.suffix.lower() not in suffixes:
        hint = ""
        if path.suffix.lower() == ".onnx":  # the torch backend, the default of replay and the node
            hint = ("; an ONNX file is served by the onnxruntime or tensorrt backend (rmmss replay/bench: "
                    "--backend onnxruntime; the node: backend:=onnxruntime)")
        raise ValueError(f"{what} {path}: expected a file ending in {' or '.join(suffixes)}{hint}")
    return path


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    if precision not in allowed:
        raise ValueError(f"unknown precision {precision!r} for this backend; valid: {list(allowed)}")
    return precision
