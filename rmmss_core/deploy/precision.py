"""Numerically safe reduced precision for exported graphs.

TensorRT 11 builds strongly typed networks only (``BuilderFlag.FP16`` is gone): the precision of
every layer is the precision written in the ONNX graph. An fp16 graph is therefore exported from
an fp16 model, with the two operations that overflow or lose too much in fp16 kept in fp32:

- LayerNorm / GroupNorm: the variance of activations of a few hundred can exceed 65504;
- softmax: exp() of large attention scores, and the sum over a long row. Fused attention
  (``F.scaled_dot_product_attention``) is written out as ``softmax((q * scale) @ k^T) @ v`` with
  the two matmuls in fp16 (q pre-scaled to keep scores in range) and the softmax in fp32.

``FP32SafeOps`` is a ``TorchFunctionMode``: inside it those functions upcast their input to fp32,
run, and cast the result back. It works for eager PyTorch and under ``torch.export`` (the ONNX
exporter), so the graph carries explicit Casts around ``LayerNormalization`` and ``Softmax``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_REDUCED = (torch.float16, torch.bfloat16)
_SOFTMAX = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax,
            torch.Tensor.softmax, torch.Tensor.log_softmax}
_SDPA = {F.scaled_dot_product_attention}
_NORMS = {F.layer_norm, torch.layer_norm, F.group_norm, torch.group_norm, F.rms_norm}


def _up(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in _REDUCED else x


class FP32SafeOps(TorchFunctionMode):
    """Run softmax and LayerNorm/GroupNorm/RMSNorm in fp32 when their input is fp16/bf16."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SDPA and args and args[0].dtype in _REDUCED:
            return _safe_attention(*args, **kwargs)
        if (func in _SOFTMAX or func in _NORMS) and args and isinstance(args[0], torch.Tensor) \
                and args[0].dtype in _REDUCED:
            dtype = args[0].dtype
            if func in _SOFTMAX:  # the optional dtype argument would defeat the upcast
                kwargs.pop("dtype", None)
                args = (args[0].float(), *args[1:])
            else:
                args = tuple(_up(a) for a in args)
                kwargs = {k: _up(v) for k, v in kwargs.items()}
            return func(*args, **kwargs).to(dtype)
        return func(*args, **kwargs)


def _safe_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask=None,
                    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                    enable_gqa: bool = False) -> torch.Tensor:
    """Inference attention ``... x L x E`` with an fp32 softmax (dropout is an eval no-op)."""
    if is_causal or enable_gqa:
        raise NotImplementedError("FP32SafeOps: causal / grouped-query attention is not handled")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)  # ... x L x S, fp16
    if attn_mask is not None:
        scores = scores.float().masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else scores.float() + attn_mask
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


def torch_dtype(precision: str) -> torch.dtype:
    """"fp32" / "fp16" / "bf16" -> the torch dtype; ValueError naming the valid choices."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in table:
        raise ValueError(f"unknown precision {precision!r}; valid: {list(table)}")
    return table[precision]
