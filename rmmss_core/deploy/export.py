"""Checkpoint -> one ONNX graph that serves any modality subset.

Graph contract (``rmmss-onnx-v1``):

- inputs ``rgb``, ``depth``, ``event``, ``lidar``: ``B x 3 x H x W`` float32, preprocessed and
  normalised per the spec (zeros for a missing sensor); ``available``: ``B x 4`` **bool**
  (True = present, order R, D, E, L). The model's masked arithmetic runs inside the graph, so every
  one of the 15 subsets is served by the same graph, exactly as in PyTorch.
- outputs ``mask``: ``B x H x W`` uint8 class ids (argmax inside the graph), ``logits``:
  ``B x K x H x W`` float32 (a runtime that asks only for ``mask`` never copies the logits out),
  ``confidence``: ``B x H x W`` uint8, ``floor(255 * max softmax + 0.5)`` (the winning class's
  probability, rmmss_core.deploy.confidence; computed from float32 logits in every precision).
  Files exported before ``confidence`` existed lack it; ``OnnxModelInfo.outputs`` says which.
- ``metadata_props``: ``rmmss.spec`` (PreprocessSpec JSON), ``rmmss.model`` (name + config JSON),
  ``rmmss.format``, ``rmmss.precision`` (fp32 | fp16), ``rmmss.batch`` (an int, or "dynamic"),
  and ``rmmss.quality`` (the checkpoint's expected-quality table, rmmss_core.deploy.quality) when
  the checkpoint has one.
- Shapes are static (batch 1, H x W = spec.input_size) unless ``dynamic_batch``; H x W may be
  overridden (the spec in the metadata then records the exported size).
- ``fp16``: weights and activations in fp16, LayerNorm and softmax in fp32 (see precision.py);
  inputs and the logits output stay float32, so callers never change.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from rmmss_core.deploy.backends.base import ModelFileError
from rmmss_core.deploy.confidence import mask_and_confidence
from rmmss_core.deploy.precision import FP32SafeOps
from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import atomic_write_bytes, load_checkpoint

log = logging.getLogger(__name__)

FORMAT = "rmmss-onnx-v1"
INPUT_NAMES: tuple[str, ...] = (*MODALITIES, "available")
OUTPUT_NAMES: tuple[str, ...] = ("mask", "logits", "confidence")
DEFAULT_OPSET = 18


class DeployWrapper(nn.Module):
    """``model(inputs, available).logits`` as positional tensors -> (mask uint8, logits float32,
    confidence uint8).

    ``compute_dtype`` fp16/bf16: the wrapped model must already be in that dtype; inputs are cast
    in, softmax/LayerNorm run in fp32, logits are cast back to float32.
    """

    def __init__(self, model: nn.Module, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, event: torch.Tensor,
                lidar: torch.Tensor, available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dt = self.compute_dtype
        inputs = {"rgb": rgb.to(dt), "depth": depth.to(dt), "event": event.to(dt), "lidar": lidar.to(dt)}
        mode = FP32SafeOps() if dt != torch.float32 else contextlib.nullcontext()
        with mode:
            logits = self.model(inputs, available.to(torch.bool)).logits  # B x K x H x W
        logits = logits.float()
        mask, confidence = mask_and_confidence(logits)  # B x H x W each
        return mask, logits, confidence


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported file says about itself (from its metadata and graph inputs)."""

    path: Path
    spec: PreprocessSpec
    model: dict[str, Any]
    precision: str
    batch: int | None  # None = dynamic
    input_size: tuple[int, int]
    opset: int
    outputs: tuple[str, ...] = OUTPUT_NAMES


def export_model(model: nn.Module, spec: PreprocessSpec, out: str | os.PathLike, *,
                 model_info: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET,
                 batch: int = 1, input_size: tuple[int, int] | None = None,
                 dynamic_batch: bool = False, fp16: bool = False, check: bool = True,
                 quality: dict[str, Any] | None = None) -> Path:
    """Export an in-memory model (forward contract of rmmss_core.models) to ``out`` atomically.
    ``quality``: an expected-quality table (``QualityTable.to_dict()``) for the metadata.

    Returns the path. Raises ValueError for bad options, RuntimeError naming the stage on failure.
    """
    if opset < 17:
        raise ValueError(f"opset {opset} is too old: LayerNormalization needs opset >= 17")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    h, w = input_size or spec.input_size
    spec = dataclasses.replace(spec, input_size=(int(h), int(w)))
    dtype = torch.float16 if fp16 else torch.float32
    wrapper = DeployWrapper(_frozen_copy(model, dtype), dtype).eval()
    example_batch = max(batch, 2) if dynamic_batch else batch
    g = torch.Generator().manual_seed(0)
    dev = next(wrapper.parameters()).device  # trace where the model lives (a CUDA model exports on the GPU)
    args = tuple(torch.randn(example_batch, 3, h, w, generator=g).to(dev) for _ in MODALITIES)
    args += (torch.ones(example_batch, len(MODALITIES), dtype=torch.bool, device=dev),)
    try:
        with warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")
            proto = _trace_to_onnx(wrapper, args, opset, dynamic_batch)
    except Exception as e:  # noqa: BLE001 - the exporter raises many types; name the stage
        raise RuntimeError(f"ONNX export of {type(model).__name__} failed: {e}") from e
    if proto.opset_import and min(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) < 17:
        raise RuntimeError(f"exporter produced opset < 17: {proto.opset_import}")
    meta = {
        "rmmss.format": FORMAT,
        "rmmss.spec": spec.to_json(),
        "rmmss.model": json.dumps(model_info or {"name": type(model).__name__}, sort_keys=True, default=str),
        "rmmss.precision": "fp16" if fp16 else "fp32",
        "rmmss.batch": "dynamic" if dynamic_batch else str(batch),
        "rmmss.inputs": "rgb,depth,event,lidar: B x 3 x H x W float32 normalised; available: B x 4 bool",
        "rmmss.outputs": ("mask: B x H x W uint8 class ids; logits: B x K x H x W float32; confidence: "
                          "B x H x W uint8 = floor(255 * max softmax + 0.5)"),
        "rmmss.torch": torch.__version__,
    }
    if quality is not None:
        meta["rmmss.quality"] = json.dumps(quality, sort_keys=True)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "rmmss"
    proto.doc_string = "rmmss any-modal segmentation; see metadata rmmss.*"
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"exported graph fails the ONNX checker: {e}") from e
    out = Path(out)
    atomic_write_bytes(out, proto.SerializeToString())
    log.info("exported %s (%s, batch %s, %dx%d, opset %d) -> %s", type(model).__name__,
             meta["rmmss.precision"], meta["rmmss.batch"], h, w, opset, out)
    return out


def _trace_to_onnx(wrapper: nn.Module, args: tuple[torch.Tensor, ...], opset: int,
                   dynamic_batch: bool) -> onnx.ModelProto:
    """torch.export-based exporter for opset >= 18 (its native range). Opset 17 (older TensorRT
    and runtimes) goes through the TorchScript exporter: down-converting the dynamo graph breaks
    ops such as Split(num_outputs), which the checker rejects."""
    if opset >= 18:
        dynamic_shapes = None
        if dynamic_batch:
            bdim = torch.export.Dim("batch", min=1, max=4096)
            dynamic_shapes = {name: {0: bdim} for name in INPUT_NAMES}
        program = torch.onnx.export(
            wrapper, args, dynamo=True, opset_version=opset, input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), dynamic_shapes=dynamic_shapes,
            external_data=False, optimize=True, verbose=False)
        return program.model_proto
    buf = io.BytesIO()
    dynamic_axes = {n: {0: "batch"} for n in (*INPUT_NAMES, *OUTPUT_NAMES)} if dynamic_batch else None
    torch.onnx.export(wrapper, args, buf, dynamo=False, opset_version=opset,
                      input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                      dynamic_axes=dynamic_axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, **options: Any) -> Path:
    """``rmmss export``: a ``.pt`` checkpoint (rmmss-checkpoint-v1) -> ONNX. Options as export_model."""
    from rmmss_core.deploy.quality import quality_from_checkpoint

    ckpt = load_checkpoint(Path(checkpoint))  # CheckpointError naming the file if missing or corrupt
    model, spec, info = load_for_export(checkpoint, ckpt)
    table = quality_from_checkpoint(ckpt, f"checkpoint {checkpoint}")
    return export_model(model, spec, out, model_info=info, quality=table.to_dict() if table else None, **options)


def load_for_export(checkpoint: str | os.PathLike, ckpt: dict[str, Any] | None = None
                    ) -> tuple[nn.Module, PreprocessSpec, dict[str, Any]]:
    """(model in eval mode on CPU, spec, {"name", "config"}) from a checkpoint file (``ckpt``: its
    already loaded dict, to read it once)."""
    from rmmss_core.models.checkpoint import load_model  # the models area; imported on use

    path = Path(checkpoint)
    if ckpt is None:
        ckpt = load_checkpoint(path)  # CheckpointError naming the file if missing or corrupt
    try:
        model, spec = load_model(ckpt, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"checkpoint {path} cannot be loaded as a model: {e}") from e
    info = dict(ckpt.get("model") or {})
    info["source"] = path.name
    return model.eval(), spec, info


def read_onnx_metadata(path: str | os.PathLike) -> OnnxModelInfo:
    """Spec, model info, precision and shapes of an exported file (loads the graph, not weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"ONNX model {path} is corrupt or not an ONNX file: {e}") from e
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("rmmss.format") != FORMAT or "rmmss.spec" not in meta:
        raise ModelFileError(f"ONNX model {path} was not exported by rmmss export "
                             f"(no {FORMAT} metadata); re-export it with `rmmss export`")
    spec = PreprocessSpec.from_json(meta["rmmss.spec"])
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims[0].HasField("dim_value") else None
    opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return OnnxModelInfo(path=path, spec=spec, model=json.loads(meta.get("rmmss.model", "{}")),
                         precision=meta.get("rmmss.precision", "fp32"), batch=batch,
                         input_size=(dims[2].dim_value, dims[3].dim_value), opset=opset,
                         outputs=tuple(o.name for o in proto.graph.output))


def cached_export(checkpoint: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                  **options: Any) -> Path:
    """Export a checkpoint once into a cache and reuse it: the file name hashes the checkpoint's
    bytes and the export options, so a retrained checkpoint or new options give a new file.

    Cache folder: ``cache_dir``, else ``$RMMSS_CACHE_DIR/onnx``, else ``~/.cache/rmmss/onnx``.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    digest = hashlib.sha256(path.read_bytes())
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    digest.update(torch.__version__.encode())
    root = Path(cache_dir) if cache_dir else Path(os.environ.get(
        "RMMSS_CACHE_DIR", Path.home() / ".cache" / "rmmss")) / "onnx"
    out = root / f"{path.stem}-{digest.hexdigest()[:16]}.onnx"
    if not out.is_file():
        log.info("exporting %s to the ONNX cache %s", path, out)
        export_checkpoint(path, out, **options)
    return out


def random_inputs(batch: int, size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Normalised-looking float32 inputs ``B x 3 x H x W`` per modality (tests, bench, verify)."""
    rng = np.random.default_rng(seed)
    return {m: rng.standard_normal((batch, 3, *size), dtype=np.float32) for m in MODALITIES}


def _frozen_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy in eval mode without gradients, in ``dtype`` (the caller's model is untouched)."""
    copy = deepcopy(model)
    copy.eval().requires_grad_(False)
    return copy.to(dtype) if dtype != torch.float32 else copy


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs each stage at WARNING/INFO; keep the CLI output readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)
