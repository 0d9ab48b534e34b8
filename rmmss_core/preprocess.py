"""Encoded [0, 1] images -> network inputs, one implementation for datasets, replay and the node.

Steps per modality: ``H x W x 3`` (numpy, channels last) or ``3 x H x W`` (torch) float in [0, 1]
-> resize to ``spec.input_size`` (bilinear for RGB, nearest for depth / event / lidar, whose pixels
are measurements that must not be blended with empty pixels) -> ``(x - mean) / std``.
A modality that is absent becomes zeros *after* normalisation and is flagged unavailable.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import Normalization, PreprocessSpec

ImageLike = np.ndarray | torch.Tensor


def to_chw(img: ImageLike, name: str = "image") -> torch.Tensor:
    """``H x W x 3`` numpy or ``3 x H x W`` tensor -> float32 tensor ``3 x H x W``."""
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name}: expected an H x W x 3 array, got shape {img.shape}")
        return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"{name}: expected a 3 x H x W tensor, got shape {tuple(img.shape)}")
    return img.float()


def interpolation_for(modality: str) -> str:
    """``bilinear`` for rgb, ``nearest`` for every other modality."""
    return "bilinear" if modality == "rgb" else "nearest"


def resize(x: torch.Tensor, size: tuple[int, int], modality: str) -> torch.Tensor:
    """Resize ``3 x H x W`` or ``B x 3 x H x W`` to ``size`` (H, W) with the modality's rule."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    batched = x.dim() == 4
    xb = x if batched else x[None]
    mode = interpolation_for(modality)
    if mode == "bilinear":
        out = F.interpolate(xb, size=size, mode="bilinear", align_corners=False)
    else:
        out = F.interpolate(xb, size=size, mode="nearest")
    return out if batched else out[0]


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of a label map ``H x W`` or ``B x H x W`` (int64 kept)."""
    if tuple(label.shape[-2:]) == tuple(size):
        return label
    batched = label.dim() == 3
    lb = (label if batched else label[None])[:, None].float()
    out = F.interpolate(lb, size=size, mode="nearest")[:, 0].long()
    return out if batched else out[0]


def _stats(norm: Normalization, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    mean = torch.tensor(norm.mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(norm.std, dtype=x.dtype, device=x.device).view(shape)
    return mean, std


def normalize(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``3 x H x W`` or ``B x 3 x H x W``; contiguous result.

    One pass per channel: an ``H x W x 3`` image viewed as ``3 x H x W`` (as :func:`to_chw`
    returns it) is read once and written channel-first, 5x faster at 640 x 480 than broadcasting
    over the strided view, with identical values.
    """
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"normalize: expected 3 x H x W or B x 3 x H x W, got {tuple(x.shape)}")
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for c in range(3):
        torch.sub(x.select(-3, c), norm.mean[c], out=out.select(-3, c))
        out.select(-3, c).div_(norm.std[c])
    return out


def denormalize(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Inverse of :func:`normalize`: back to the encoded [0, 1] image."""
    mean, std = _stats(norm, x)
    return x * std + mean


def preprocess(images: Mapping[str, ImageLike | None], spec: PreprocessSpec,
               size: tuple[int, int] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Encoded images (missing / None = absent) -> (inputs ``{m: 3 x H x W}``, available bool[4]).

    ``size`` defaults to ``spec.input_size``; pass the native size to skip resizing.
    Unknown keys raise ValueError.
    """
    unknown = sorted(set(images) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modality key(s) {unknown}; expected some of {MODALITIES}")
    size = tuple(spec.input_size if size is None else size)
    out: dict[str, torch.Tensor] = {}
    available = torch.zeros(len(MODALITIES), dtype=torch.bool)
    for i, m in enumerate(MODALITIES):
        img = images.get(m)
        if img is None:
            out[m] = torch.zeros(3, *size)
            continue
        x = resize(to_chw(img, m), size, m)
        out[m] = normalize(x, spec.normalization[m])
        available[i] = True
    return out, available


def preprocess_batch(frames: Sequence[Mapping[str, ImageLike | None]], spec: PreprocessSpec,
                     size: tuple[int, int] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A list of frame dicts -> (inputs ``{m: B x 3 x H x W}``, available ``B x 4``)."""
    if not frames:
        raise ValueError("preprocess_batch needs at least one frame")
    items = [preprocess(f, spec, size) for f in frames]
    inputs = {m: torch.stack([it[0][m] for it in items]) for m in MODALITIES}
    return inputs, torch.stack([it[1] for it in items])


def to_display(x: torch.Tensor, modality: str, spec: PreprocessSpec) -> np.ndarray:
    """Normalised ``3 x H x W`` -> uint8 ``H x W x 3`` image for visualisation."""
    enc = denormalize(x.detach().float().cpu(), spec.normalization[modality]).clamp(0, 1)
    return (enc.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
