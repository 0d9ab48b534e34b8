"""Building the sample every reader returns, from encoded [0, 1] images and a label.

    {"rgb", "depth", "event", "lidar": FloatTensor 3 x H x W (normalised per the spec),
     "label": LongTensor H x W (255 = ignore), "available": BoolTensor[4], "name": str}

A transform (``rmmss_core.data.augment``) sees encoded tensors before normalisation:
``{"rgb", "depth", "event", "lidar": 3 x H x W in [0, 1] or None, "label": H x W int64}``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from rmmss_core.geometry import InputGeometry
from rmmss_core.modalities import MODALITIES
from rmmss_core.preprocess import fit, normalize, resize_label, to_chw
from rmmss_core.spec import PreprocessSpec

Transform = Callable[[dict[str, Any]], dict[str, Any]]


def fit_label(label: torch.Tensor, size: tuple[int, int], spec: PreprocessSpec) -> torch.Tensor:
    """The label map under the spec's resize policy (nearest; letterbox border = ignore)."""
    geo = InputGeometry.of(tuple(label.shape[-2:]), size, spec.resize_policy)
    if geo.policy == "stretch" or geo.identity:
        return resize_label(label, size)
    x0, y0, ws, hs = geo.window
    px, py, bw, bh = geo.box
    inner = resize_label(label[..., y0:y0 + hs, x0:x0 + ws], (bh, bw))
    out = torch.full((*label.shape[:-2], *size), spec.ignore_index, dtype=inner.dtype)
    out[..., py:py + bh, px:px + bw] = inner
    return out


def make_sample(encoded: Mapping[str, np.ndarray | torch.Tensor | None], label: np.ndarray | torch.Tensor,
                name: str, spec: PreprocessSpec, transform: Transform | None = None,
                resize_to_input: bool = True) -> dict[str, Any]:
    """Encoded images (``H x W x 3`` numpy or ``3 x H x W`` tensors, None = absent) + label ``H x W``
    -> the reader sample. ``resize_to_input``: resize to ``spec.input_size`` after the transform
    (nearest for labels); otherwise keep the (transformed) native size."""
    d: dict[str, Any] = {m: None if encoded.get(m) is None else to_chw(encoded[m], f"{name} {m}")
                         for m in MODALITIES}
    d["label"] = torch.as_tensor(np.asarray(label) if not torch.is_tensor(label) else label).long()
    if transform is not None:
        d = transform(d)
    size = tuple(spec.input_size) if resize_to_input else tuple(d["label"].shape[-2:])
    sample: dict[str, Any] = {}
    available = torch.zeros(len(MODALITIES), dtype=torch.bool)
    for i, m in enumerate(MODALITIES):
        x = d[m]
        if x is None:
            sample[m] = torch.zeros(3, *size)
            continue
        sample[m] = normalize(fit(x, size, m, spec), spec.normalization[m])
        available[i] = True
    sample["label"] = fit_label(d["label"], size, spec)
    sample["available"] = available
    sample["name"] = name
    return sample
