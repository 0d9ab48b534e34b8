"""PyTorch backend: a ``.pt`` checkpoint in eager mode, optionally with CUDA graphs or compile.

Options: ``channels_last`` (default: True on CUDA), ``cuda_graphs`` (default: True on CUDA; one
graph captured per input shape, replayed with static buffers), ``compile`` (torch.compile the
forward; default False: minutes of compile time buy little once CUDA graphs remove launch
overhead), ``threads`` (CPU intra-op threads, default: leave torch's setting).
Precision fp16/bf16 casts the weights; LayerNorm and softmax run in fp32 (FP32SafeOps) exactly
as in the exported fp16 graph.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmmss_core.deploy.backends.base import (
    ArrayLike,
    Backend,
    BackendUnavailableError,
    ModelFileError,
    check_precision,
    require_file,
)
from rmmss_core.deploy.confidence import class_ids, mask_and_confidence
from rmmss_core.deploy.precision import FP32SafeOps, torch_dtype
from rmmss_core.modalities import MODALITIES


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model_path: str | Path, device: str = "cpu", precision: str = "fp32", *,
                 channels_last: bool | None = None, cuda_graphs: bool | None = None,
                 compile: bool = False, threads: int | None = None):
        from rmmss_core.models.checkpoint import load_model  # the models area; imported on use
        from rmmss_core.utils.io import CheckpointError

        path = require_file(model_path, "checkpoint", (".pt", ".pth", ".ckpt"))
        check_precision(precision)
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {device!r} requested but torch sees no CUDA device")
        if threads:
            torch.set_num_threads(threads)
        try:
            model, spec = load_model(path, map_location="cpu")
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - a readable file that is not a model
            raise ModelFileError(f"checkpoint {path} cannot be loaded as a model: {e}") from e
        super().__init__(spec, str(dev), precision)
        self.dtype = torch_dtype(precision)
        self.channels_last = dev.type == "cuda" if channels_last is None else channels_last
        self.cuda_graphs = dev.type == "cuda" if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and dev.type != "cuda":
            raise ValueError("cuda_graphs needs a CUDA device")
        model = model.eval().requires_grad_(False).to(dev, self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._dev = dev
        self._forward: Callable[..., torch.Tensor] = self._logits
        if compile:
            self._forward = torch.compile(self._logits, dynamic=False)
        self._graphs: dict[tuple, _GraphedCall] = {}

    # -- the computation -----------------------------------------------------------------------
    def _logits(self, inputs: dict[str, torch.Tensor], available: torch.Tensor) -> torch.Tensor:
        """B x K x H x W logits in float32 on the device."""
        mode = FP32SafeOps() if self.dtype != torch.float32 else contextlib.nullcontext()
        with mode:
            return self.model(inputs, available).logits.float()

    def _to_device(self, inputs: dict[str, ArrayLike], available: ArrayLike
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        out = {}
        for m in MODALITIES:
            x = torch.as_tensor(inputs[m])
            if x.device.type == "cpu" and self._dev.type == "cuda":
                x = x.pin_memory()
            out[m] = x.to(self._dev, self.dtype, non_blocking=True, memory_format=fmt)
        return out, torch.as_tensor(available).to(self._dev, torch.bool, non_blocking=True)

    @torch.inference_mode()
    def _run(self, inputs: dict[str, ArrayLike], available: ArrayLike, output: str) -> torch.Tensor:
        """``output``: "mask" (B x H x W uint8), "confidence" (B x 2 x H x W uint8: class ids, then
        confidence, one tensor so one copy to the host) or "logits" (B x K x H x W float32)."""
        fn = {"mask": self._mask, "confidence": self._mask_confidence, "logits": self._forward}[output]
        x, a = self._to_device(inputs, available)
        if self.cuda_graphs:
            key = (tuple(x["rgb"].shape), output)
            if key not in self._graphs:
                self._graphs[key] = _GraphedCall(fn, x, a)
            return self._graphs[key](x, a)
        return fn(x, a)

    def _mask(self, x: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        return class_ids(self._forward(x, a))  # B x H x W, on the device

    def _mask_confidence(self, x: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        # the logits are this call's own: overwritten in place (no B x K x H x W temporary)
        return torch.stack(mask_and_confidence(self._forward(x, a), inplace=True), dim=1)  # B x 2 x H x W

    def _infer(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        return self._run(inputs, available, "mask").cpu().numpy()

    def _infer_confidence(self, inputs: dict[str, ArrayLike], available: ArrayLike
                          ) -> tuple[np.ndarray, np.ndarray]:
        both = self._run(inputs, available, "confidence").cpu().numpy()
        return np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])

    def _infer_logits(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        return self._run(inputs, available, "logits").cpu().numpy()

    def synchronize(self) -> None:
        if self._dev.type == "cuda":
            torch.cuda.synchronize(self._dev)

    def close(self) -> None:
        self._graphs.clear()
        self.model = None  # type: ignore[assignment]
        if self._dev.type == "cuda":
            torch.cuda.empty_cache()


class _GraphedCall:
    """``fn(inputs, available)`` captured once into a CUDA graph for fixed shapes; each call copies
    the new inputs into the static buffers and replays (no per-kernel launch overhead)."""

    def __init__(self, fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor], available: torch.Tensor):
        self.inputs = {k: v.clone() for k, v in inputs.items()}
        self.available = available.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up outside the capture (cuDNN autotuning, lazy init)
                fn(self.inputs, self.available)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(self.inputs, self.available)

    def __call__(self, inputs: dict[str, torch.Tensor], available: torch.Tensor) -> torch.Tensor:
        for k, v in inputs.items():
            self.inputs[k].copy_(v, non_blocking=True)
        self.available.copy_(available, non_blocking=True)
        self.graph.replay()
        return self.output.clone()


def create(model_path: str | Path, device: str = "cpu", precision: str = "fp32", **options: Any) -> TorchBackend:
    return TorchBackend(model_path, device, precision, **options)
