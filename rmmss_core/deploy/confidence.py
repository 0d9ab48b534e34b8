"""Per-pixel confidence: the winning class's softmax probability, quantised to uint8.

One definition serves every backend (torch, the exported ONNX graph that ONNX Runtime and TensorRT
run) and every consumer (the ROS node's ``~/confidence`` image, ``output.min_confidence``, the
replay report's reliability diagram):

- ``p = max_k softmax(logits)_k = 1 / sum_k exp(l_k - max_j l_j)``, computed in float32 on the
  device right beside the argmax (``B x K x H x W`` logits -> ``B x H x W``): one ``max`` over the
  classes gives the class id and the top logit together, one subtract-exp-sum pass the normaliser
  (>= 1: the winner contributes exp(0)). On one CPU thread at 25 x 480 x 640 (the model's
  channels_last logits) ``max`` with its indices takes about what ``argmax`` alone does, and the
  normaliser about 20 ms, half of ``logsumexp``'s time (which finds the maximum again). Both ``max``
  and ``argmax`` return the first maximal index, so the masks are the same.
- ``confidence = floor(255 * p + 0.5)`` as uint8 (round half up; 0..255, 255 = certain). The
  quantisation error is at most 0.5/255. Since ``p >= 1/K`` and a uint8 mask has K <= 255
  classes, a pixel reads at least 1: 0 never occurs.
- ``min_confidence`` (a probability in [0, 1]) marks a pixel "unlabeled" (255 in the mask) when its
  *published* confidence is below ``min_confidence_level(min_confidence) = floor(255 * m + 0.5)``:
  a consumer that sees both images can check the rule exactly (mask == 255 wherever
  confidence < level, and nowhere else unless the model predicts nothing there). 0 = off.

The same numbers as the softmax in rmmss_core.eval (``torch.softmax(logits, 1).max(1)``) to float32
rounding; test/test_confidence.py checks every backend against it within 1/255.
"""
from __future__ import annotations

import numpy as np
import torch

SCALE = 255
UNLABELED = 255  # the mask value for "no class here" (outside the image after a crop, below the floor)


def mask_and_confidence(logits: torch.Tensor, inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``B x K x H x W`` logits (any float dtype) -> (class ids ``B x H x W`` uint8, confidence
    ``B x H x W`` uint8). Traceable: the ONNX export writes exactly these ops into the graph.
    ``inplace``: overwrite float32 ``logits`` with ``exp(l - max)`` instead of allocating a
    ``B x K x H x W`` temporary (the torch backend, whose logits are not needed afterwards: about
    30 ms less per 640 x 480 frame on one CPU thread); the same numbers."""
    logits = logits.float()
    top, ids = logits.max(dim=1)  # B x H x W each: top logit and the (first) winning class
    shifted = logits.sub_(top.unsqueeze(1)).exp_() if inplace else torch.exp(logits - top.unsqueeze(1))
    p = torch.reciprocal(shifted.sum(dim=1))  # in (0, 1]
    conf = torch.floor(p * float(SCALE) + 0.5).to(torch.uint8)
    return ids.to(torch.uint8), conf


def class_ids(logits: torch.Tensor) -> torch.Tensor:
    """``B x K x H x W`` logits -> class ids ``B x H x W`` uint8 (the first maximal class, as argmax)."""
    return logits.max(dim=1).indices.to(torch.uint8)


def softmax_max(logits: np.ndarray) -> np.ndarray:
    """Reference (host, float64): ``B x K x H x W`` logits -> the winning class's probability
    ``B x H x W`` float64, from a plain softmax (tests and the replay report)."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).max(axis=1)


def quantize(p: np.ndarray | float) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 confidence (round half up)."""
    return np.floor(np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0) * SCALE + 0.5).astype(np.uint8)


def dequantize(conf: np.ndarray) -> np.ndarray:
    """uint8 confidence -> the probability it stands for (float32, ``conf / 255``)."""
    return np.asarray(conf, dtype=np.float32) / np.float32(SCALE)


def check_min_confidence(value: float, name: str = "min_confidence") -> float:
    """``value`` as a float in [0, 1]; ValueError naming ``name`` otherwise."""
    v = float(value)
    if not 0.0 <= v <= 1.0 or v != v:
        raise ValueError(f"{name} must be a probability in [0, 1] (0 = off), got {value!r}")
    return v


def min_confidence_level(min_confidence: float) -> int:
    """The uint8 level below which a pixel is marked unlabeled (0 = nothing is marked)."""
    return int(quantize(check_min_confidence(min_confidence)))


def apply_min_confidence(mask: np.ndarray, conf: np.ndarray, min_confidence: float) -> np.ndarray:
    """``mask`` with :data:`UNLABELED` where ``conf < min_confidence_level(min_confidence)``
    (in place when it is a writable uint8 array, which backends' fresh host arrays are)."""
    level = min_confidence_level(min_confidence)
    if level == 0:
        return mask
    if mask.shape != conf.shape:
        raise ValueError(f"mask {mask.shape} and confidence {conf.shape} differ in shape")
    if not mask.flags.writeable:
        mask = mask.copy()
    mask[conf < level] = UNLABELED
    return mask
