"""ONNX Runtime vs PyTorch on all 15 modality subsets (``rmmss export --verify``)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from rmmss_core.deploy.backends.onnxruntime_backend import OnnxRuntimeBackend
from rmmss_core.deploy.confidence import quantize, softmax_max
from rmmss_core.deploy.export import random_inputs, read_onnx_metadata
from rmmss_core.modalities import SUBSETS, subset_mask, subset_name


@torch.inference_mode()
def compare_with_torch(model: nn.Module, onnx_path: str | os.PathLike, seed: int = 0) -> list[dict[str, Any]]:
    """Per subset: max |logit difference|, the fraction of pixels with the same argmax and the
    largest difference (in uint8 levels) between the graph's ``confidence`` and PyTorch's softmax
    maximum (None for a graph without it), with the same random inputs (batch = the graph's batch,
    or 2 for a dynamic one)."""
    info = read_onnx_metadata(onnx_path)
    batch = info.batch or 2
    inputs = random_inputs(batch, info.input_size, seed)
    tin = {k: torch.from_numpy(v) for k, v in inputs.items()}
    model = model.eval()
    rows = []
    with OnnxRuntimeBackend(onnx_path, precision=info.precision) as backend:
        for subset in SUBSETS:
            available = subset_mask(subset, batch)
            ref = model(tin, available).logits.float().numpy()
            got = backend.infer_logits(inputs, available.numpy())
            conf_diff = None
            if backend.provides_confidence:
                mask, conf = backend.infer_with_confidence(inputs, available.numpy())
                conf_diff = int(np.abs(conf.astype(np.int16) - quantize(softmax_max(ref)).astype(np.int16)).max())
            else:
                mask = backend.infer(inputs, available.numpy())
            rows.append({"subset": subset_name(subset),
                         "max_abs_diff": float(np.abs(got - ref).max()),
                         "argmax_agreement": float((mask == ref.argmax(1)).mean()),
                         "confidence_max_diff": conf_diff})
    return rows
