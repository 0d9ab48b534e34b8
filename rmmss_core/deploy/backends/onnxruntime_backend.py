"""ONNX Runtime backend: an exported ``.onnx`` file (or a ``.pt`` exported on the fly, cached).

Device ``cpu`` uses the CPU execution provider; ``cuda`` / ``cuda:N`` uses the CUDA provider
(and the TensorRT provider first when ``trt_provider=True`` and it is present), with the CPU
provider as fallback for unsupported nodes. Only the ``mask`` output is fetched by ``infer`` (and
``mask`` + ``confidence`` by ``infer_with_confidence``): the argmax and the confidence run on the
device and the logits never leave it. A graph exported before the ``confidence`` output existed
still serves ``infer``; ``infer_with_confidence`` then raises ModelFileError (re-export it).

Options: ``threads`` (intra-op threads, default: torch's thread count, so comparisons with the
torch backend are like for like), ``spin`` (let idle pool threads busy-wait: a little lower
latency, but they burn the cores other nodes need; default False), ``trt_provider`` (bool), ``cache_dir`` (for ``.pt`` inputs),
``dynamic_batch`` / ``input_size`` (export options for ``.pt`` inputs),
``optimized_model_path`` (dump ORT's optimised graph, for inspection).
"""
from __future__ import annotations

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
    to_numpy,
)
from rmmss_core.deploy.export import INPUT_NAMES, cached_export, read_onnx_metadata
from rmmss_core.modalities import MODALITIES


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, device: str = "cpu", precision: str = "fp32", *,
                 threads: int | None = None, spin: bool = False, trt_provider: bool = False,
                 cache_dir: str | Path | None = None, dynamic_batch: bool = False,
                 input_size: tuple[int, int] | None = None, optimized_model_path: str | None = None):
        import onnxruntime as ort

        check_precision(precision, ("fp32", "fp16"))
        path = require_file(model_path, "model", (".onnx", ".pt", ".pth", ".ckpt"))
        if path.suffix.lower() != ".onnx":
            path = cached_export(path, cache_dir, fp16=precision == "fp16",
                                 dynamic_batch=dynamic_batch, input_size=input_size)
        info = read_onnx_metadata(path)
        if info.precision != precision:
            raise ValueError(f"ONNX model {path} holds an {info.precision} graph but precision "
                             f"{precision!r} was requested; export with{'' if precision == 'fp16' else 'out'} --fp16")
        super().__init__(info.spec, device, precision)
        self.info = info
        self.path = path
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if not spin:  # idle pool threads sleep instead of busy-waiting on cores the robot shares
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if optimized_model_path:
            so.optimized_model_filepath = str(optimized_model_path)
        providers = _providers(device, trt_provider, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise ModelFileError(f"ONNX model {path} cannot be loaded by ONNX Runtime: {e}") from e
        self.providers = self.session.get_providers()
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUT_NAMES):
            raise ModelFileError(f"ONNX model {path} has inputs {names}, expected {list(INPUT_NAMES)}")
        self.outputs = tuple(o.name for o in self.session.get_outputs())

    @property
    def provides_confidence(self) -> bool:
        return "confidence" in self.outputs

    def _feeds(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> dict[str, np.ndarray]:
        shape = tuple(inputs["rgb"].shape)
        h, w = self.info.input_size
        if shape[2:] != (h, w) or (self.info.batch is not None and shape[0] != self.info.batch):
            batch = "any batch" if self.info.batch is None else f"batch {self.info.batch}"
            raise ValueError(f"ONNX model {self.path} was exported for {batch} at {h}x{w}, got inputs "
                             f"{shape}; re-export with --input-size/--dynamic-batch or resize")
        feeds = {m: to_numpy(inputs[m], np.float32) for m in MODALITIES}
        feeds["available"] = to_numpy(available, np.bool_)
        return feeds

    def _infer(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        return self.session.run(["mask"], self._feeds(inputs, available))[0]

    def _infer_confidence(self, inputs: dict[str, ArrayLike], available: ArrayLike
                          ) -> tuple[np.ndarray, np.ndarray]:
        if not self.provides_confidence:
            raise ModelFileError(f"ONNX model {self.path} has no 'confidence' output (outputs "
                                 f"{list(self.outputs)}): it was exported by an older rmmss; re-export it "
                                 "with `rmmss export`, or turn confidence off")
        mask, conf = self.session.run(["mask", "confidence"], self._feeds(inputs, available))
        return mask, conf

    def _infer_logits(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        return self.session.run(["logits"], self._feeds(inputs, available))[0]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def _providers(device: str, trt_provider: bool, available: list[str]) -> list[Any]:
    """Execution providers for ``device``; BackendUnavailableError when CUDA is asked but absent."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r} for onnxruntime; use 'cpu' or 'cuda[:N]'")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if "CUDAExecutionProvider" not in available:
        raise BackendUnavailableError(
            f"device {device!r} needs ONNX Runtime's CUDAExecutionProvider; this onnxruntime has "
            f"{available}. Install onnxruntime-gpu (same version) in place of onnxruntime.")
    providers: list[Any] = []
    if trt_provider:
        if "TensorrtExecutionProvider" not in available:
            raise BackendUnavailableError("trt_provider=True but ONNX Runtime has no TensorrtExecutionProvider")
        providers.append(("TensorrtExecutionProvider", {"device_id": index, "trt_engine_cache_enable": True}))
    providers.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*providers, "CPUExecutionProvider"]


def create(model_path: str | Path, device: str = "cpu", precision: str = "fp32", **options: Any) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model_path, device, precision, **options)
