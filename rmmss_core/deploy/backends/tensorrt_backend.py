"""TensorRT backend (UNTESTED HERE: TensorRT cannot be installed on this project's machines).

Written against the documented TensorRT 10/11 Python API (``trt.Builder``, ``trt.OnnxParser``,
``build_serialized_network``, ``IExecutionContext.set_tensor_address`` / ``execute_async_v3``).
Device buffers are torch CUDA tensors, so no pycuda/cuda-python dependency.

Precision comes from the ONNX graph (TensorRT 11 builds strongly typed networks only and has no
``BuilderFlag.FP16``): ``precision="fp16"`` needs an fp16 export (``rmmss export --fp16``; a
``.pt`` is exported that way on the fly). The engine is cached beside the ONNX file as
``<stem>.<gpu>-sm<cc>.trt<version>.<onnx sha>.engine``: a different GPU, TensorRT version or ONNX
file gives another name, so a stale engine is never loaded; ``rebuild=True`` forces a build.
Options: ``rebuild``, ``workspace_gb`` (default 4), ``max_batch`` (dynamic-batch graphs, default 8),
``cache_dir`` (for ``.pt`` inputs).
``infer_with_confidence`` reads the graph's ``mask`` and ``confidence`` outputs (both computed in
the engine, rmmss_core.deploy.confidence) and copies them to the host in one transfer.
"""
from __future__ import annotations

import hashlib
import logging
import re
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
from rmmss_core.deploy.export import INPUT_NAMES, cached_export, read_onnx_metadata
from rmmss_core.modalities import MODALITIES
from rmmss_core.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)
INSTALL_HINT = ("TensorRT is not installed. On a machine with an NVIDIA GPU and CUDA 12/13 install "
                "it with `pip install tensorrt` (or NVIDIA's tensorrt-cu12 / tensorrt-cu13 wheels, "
                "or the TensorRT tarball), then check `python -c 'import tensorrt'`. Meanwhile use "
                "the 'onnxruntime' or 'torch' backend.")


def import_tensorrt():
    """The ``tensorrt`` module, or BackendUnavailableError with the install hint."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailableError(INSTALL_HINT) from e
    return trt


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, model_path: str | Path, device: str = "cuda", precision: str = "fp32", *,
                 rebuild: bool = False, workspace_gb: float = 4.0, max_batch: int = 8,
                 cache_dir: str | Path | None = None):
        trt = import_tensorrt()
        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise BackendUnavailableError(f"the tensorrt backend needs a CUDA device, got {device!r} "
                                          f"(torch CUDA available: {torch.cuda.is_available()})")
        check_precision(precision, ("fp32", "fp16"))
        path = require_file(model_path, "model", (".onnx", ".pt", ".pth", ".ckpt"))
        if path.suffix.lower() != ".onnx":
            path = cached_export(path, cache_dir, fp16=precision == "fp16")
        info = read_onnx_metadata(path)
        if info.precision != precision:
            raise ValueError(f"ONNX model {path} holds an {info.precision} graph; TensorRT takes its "
                             f"precision from the graph: export with `rmmss export --fp16` for fp16")
        super().__init__(info.spec, device, precision)
        self.trt, self.info, self.path = trt, info, path
        self._dev = torch.device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine_path = engine_path_for(path, self._dev)
        if rebuild or not self.engine_path.is_file():
            atomic_write_bytes(self.engine_path, self._build(path, workspace_gb, max_batch))
        runtime = trt.Runtime(self._logger)
        self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:  # e.g. written by another TensorRT build with the same name
            log.warning("engine %s does not deserialize; rebuilding", self.engine_path)
            atomic_write_bytes(self.engine_path, self._build(path, workspace_gb, max_batch))
            self.engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self._dev)

    def _build(self, onnx_path: Path, workspace_gb: float, max_batch: int) -> bytes:
        trt = self.trt
        builder = trt.Builder(self._logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # precision from the graph
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelFileError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        if self.info.batch is None:  # dynamic batch: one optimisation profile 1..max_batch
            profile = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                t = network.get_input(i)
                shape = tuple(t.shape)[1:]
                profile.set_shape(t.name, (1, *shape), (1, *shape), (max_batch, *shape))
            config.add_optimization_profile(profile)
        log.info("building a TensorRT %s engine from %s (minutes) ...", trt.__version__, onnx_path)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log)")
        return bytes(serialized)

    def _run(self, inputs: dict[str, ArrayLike], available: ArrayLike, *wanted: str) -> list[torch.Tensor]:
        """The engine's outputs named ``wanted`` (device tensors, after the stream synchronised)."""
        trt, ctx = self.trt, self.context
        shape = tuple(inputs["rgb"].shape)
        h, w = self.info.input_size
        if shape[2:] != (h, w) or (self.info.batch is not None and shape[0] != self.info.batch):
            raise ValueError(f"engine for {self.path} takes batch {self.info.batch or 'dynamic'} at "
                             f"{h}x{w}, got inputs {shape}")
        with torch.cuda.stream(self.stream):
            feeds = {m: torch.as_tensor(inputs[m]).to(self._dev, torch.float32, non_blocking=True).contiguous()
                     for m in MODALITIES}
            feeds["available"] = torch.as_tensor(available).to(self._dev, torch.bool).contiguous()
            for name in INPUT_NAMES:
                ctx.set_input_shape(name, tuple(feeds[name].shape))
                ctx.set_tensor_address(name, feeds[name].data_ptr())
            outputs = {}
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                if self.engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                    continue
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                outputs[name] = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=dtype, device=self._dev)
                ctx.set_tensor_address(name, outputs[name].data_ptr())
            if not ctx.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed for {self.engine_path}")
        self.stream.synchronize()
        missing = [n for n in wanted if n not in outputs]
        if missing:
            raise ModelFileError(f"engine for {self.path} has no output {missing} (outputs {sorted(outputs)}); "
                                 "re-export the ONNX file with `rmmss export` and rebuild the engine")
        return [outputs[n] for n in wanted]

    @property
    def provides_confidence(self) -> bool:
        return "confidence" in self.info.outputs

    def _infer(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        return self._run(inputs, available, "mask")[0].to(torch.uint8).cpu().numpy()

    def _infer_confidence(self, inputs: dict[str, ArrayLike], available: ArrayLike
                          ) -> tuple[np.ndarray, np.ndarray]:
        mask, conf = self._run(inputs, available, "mask", "confidence")
        both = torch.stack((mask.to(torch.uint8), conf.to(torch.uint8)), dim=1).cpu().numpy()  # one copy
        return np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])

    def _infer_logits(self, inputs: dict[str, ArrayLike], available: ArrayLike) -> np.ndarray:
        return self._run(inputs, available, "logits")[0].float().cpu().numpy()

    def close(self) -> None:
        self.context = None
        self.engine = None


def engine_path_for(onnx_path: Path, device: torch.device) -> Path:
    """Cache file beside the ONNX file, named by GPU, compute capability, TensorRT version and
    the ONNX file's content hash."""
    trt = import_tensorrt()
    props = torch.cuda.get_device_properties(device)
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", props.name).strip("-").lower()
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:12]
    return onnx_path.with_name(f"{onnx_path.stem}.{gpu}-sm{props.major}{props.minor}."
                               f"trt{trt.__version__}.{sha}.engine")


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.int8: torch.int8, trt.bool: torch.bool, trt.uint8: torch.uint8}
    for name, tdt in (("int64", torch.int64), ("bf16", torch.bfloat16)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = tdt
    if dtype not in table:
        raise ModelFileError(f"unsupported TensorRT tensor type {dtype}")
    return table[dtype]


def create(model_path: str | Path, device: str = "cuda", precision: str = "fp32", **options: Any) -> TensorRTBackend:
    return TensorRTBackend(model_path, device, precision, **options)
