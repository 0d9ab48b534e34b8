"""Paired augmentation: one random draw applied identically to every modality and the label.

Transforms take and return the dict a reader hands over before normalisation::

    {"rgb", "depth", "event", "lidar": FloatTensor 3 x H x W in [0, 1] or None, "label": LongTensor H x W}

Geometry (resize, crop, flip) is shared; RGB is resized bilinearly, depth, events and the label
with nearest, and LiDAR as the serving path does (``rmmss_core.preprocess.fit``): per the spec's
``lidar.resample`` - ``nearest_return`` shrinks with the density-preserving
:func:`~rmmss_core.preprocess.reduce_nearest_return` (nearest return per cell), so training sees
LiDAR as dense as the node feeds it, ``nearest`` (specs from older checkpoints) plain nearest;
padding is 0 for images and ``ignore_index`` (255) for the label. Photometric jitter touches RGB
only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.modalities import MODALITIES
from rmmss_core.preprocess import lidar_key_channel, reduce_nearest_return, resize, resize_label
from rmmss_core.spec import LidarEncoding

Sample = dict[str, Any]


def _uniform(lo: float, hi: float, g: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, d: Sample) -> Sample:
        for t in self.transforms:
            d = t(d)
        return d


class RandomResizedCrop:
    """Rescale by ``s * min(tH / H, tW / W)`` with ``s ~ U(scale)``, then a random ``size`` crop;
    regions outside the rescaled image are padded (0 for images, ``ignore_index`` for the label).
    ``lidar``: the spec's LiDAR encoding, whose ``resample`` rule shrinks the LiDAR image
    (default: ``nearest_return`` on the default channels, as a new spec serves it)."""

    def __init__(self, size: tuple[int, int], scale: tuple[float, float] = (0.5, 2.0),
                 ignore_index: int = IGNORE_INDEX, generator: torch.Generator | None = None,
                 lidar: LidarEncoding | None = None):
        if len(size) != 2 or min(size) <= 0 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomResizedCrop needs size (H, W) > 0 and 0 < scale min <= max, got {size}, {scale}")
        self.size, self.scale, self.ignore, self.g = tuple(size), scale, ignore_index, generator
        self.lidar = lidar if lidar is not None else LidarEncoding()

    def _rescale(self, x: torch.Tensor, size: tuple[int, int], modality: str) -> torch.Tensor:
        if modality == "lidar" and self.lidar.resample == "nearest_return":
            return reduce_nearest_return(x, size, lidar_key_channel(self.lidar))  # nearest when enlarging
        return resize(x, size, modality)

    def __call__(self, d: Sample) -> Sample:
        H, W = d["label"].shape[-2:]
        tH, tW = self.size
        f = _uniform(*self.scale, self.g) * min(tH / H, tW / W)
        nH, nW = max(1, int(H * f + 0.5)), max(1, int(W * f + 0.5))
        y0 = int(torch.randint(0, max(nH - tH, 0) + 1, (), generator=self.g))
        x0 = int(torch.randint(0, max(nW - tW, 0) + 1, (), generator=self.g))
        out = dict(d)
        for m in MODALITIES:
            if d.get(m) is not None:
                out[m] = self._crop_pad(self._rescale(d[m], (nH, nW), m), y0, x0, 0.0)
        out["label"] = self._crop_pad(resize_label(d["label"], (nH, nW)), y0, x0, self.ignore)
        return out

    def _crop_pad(self, x: torch.Tensor, y0: int, x0: int, fill: float) -> torch.Tensor:
        tH, tW = self.size
        x = x[..., y0:y0 + tH, x0:x0 + tW]
        ph, pw = tH - x.shape[-2], tW - x.shape[-1]
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), value=fill)
        return x


class RandomHorizontalFlip:
    """Flip every modality and the label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p, self.g = p, generator

    def __call__(self, d: Sample) -> Sample:
        if float(torch.rand((), generator=self.g)) >= self.p:
            return d
        out = dict(d)
        for k in (*MODALITIES, "label"):
            if d.get(k) is not None:
                out[k] = d[k].flip(-1)
        return out


class PhotometricJitter:
    """Brightness, contrast and saturation jitter on RGB only (factors ``1 +- amount``), clamped to [0, 1]."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 p: float = 0.5, generator: torch.Generator | None = None):
        self.b, self.c, self.s, self.p, self.g = brightness, contrast, saturation, p, generator

    def __call__(self, d: Sample) -> Sample:
        rgb = d.get("rgb")
        if rgb is None or float(torch.rand((), generator=self.g)) >= self.p:
            return d
        x = rgb * _uniform(1 - self.b, 1 + self.b, self.g)
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        x = (x - mean) * _uniform(1 - self.c, 1 + self.c, self.g) + mean
        gray = (0.299 * x[..., 0:1, :, :] + 0.587 * x[..., 1:2, :, :] + 0.114 * x[..., 2:3, :, :])
        x = (x - gray) * _uniform(1 - self.s, 1 + self.s, self.g) + gray
        return dict(d, rgb=x.clamp(0.0, 1.0))


def train_transform(size: tuple[int, int], scale: tuple[float, float] = (0.5, 2.0),
                    generator: torch.Generator | None = None, lidar: LidarEncoding | None = None) -> Compose:
    """The DELIVER training recipe: random resized crop (scale 0.5..2), flip, RGB photometric jitter.
    ``lidar``: the model spec's LiDAR encoding (its ``resample`` rule shrinks LiDAR)."""
    return Compose([RandomResizedCrop(size, scale, generator=generator, lidar=lidar),
                    RandomHorizontalFlip(0.5, generator=generator),
                    PhotometricJitter(generator=generator)])
