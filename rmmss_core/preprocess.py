"""Encoded [0, 1] images -> network inputs, one implementation for datasets, replay and the node.

Steps per modality: ``H x W x 3`` (numpy, channels last) or ``3 x H x W`` (torch) float in [0, 1]
-> :func:`fit` to ``spec.input_size`` under ``spec.resize_policy`` (rmmss_core.geometry: stretch,
centre crop or letterbox; bilinear for RGB, nearest for depth / event, whose pixels are
measurements that must not be blended with empty pixels, and for LiDAR the density-preserving
``nearest_return`` reduction of :func:`reduce_nearest_return` unless the spec says ``nearest``)
-> ``(x - mean) / std``. A modality that is absent becomes zeros *after* normalisation and is
flagged unavailable. An image already at ``input_size`` (e.g. LiDAR projected at the network
resolution by the node) passes through unchanged.

Fast path (issue #14, the node): an encoder may hand over :class:`Codes`, its 8-bit values
``round(x * 255)`` instead of the float image ``x / 255`` (every quantised encoder's output is on
that grid). Resampling that only selects pixels (identity, crop, nearest, letterbox padding) is
done on the codes, and normalisation is a 256-entry table per channel built with
:func:`normalize` itself (``cv2.LUT``), so the result is bit-identical to the float path while
touching a quarter of the bytes; bilinear RGB and the ``nearest_return`` LiDAR reduction at another
size go through the float path unchanged.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rmmss_core import kernels
from rmmss_core.geometry import InputGeometry
from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import LidarEncoding, Normalization, PreprocessSpec


@dataclass(frozen=True)
class Codes:
    """An encoded image as its 8-bit codes: value = ``code / 255`` exactly (float32).

    ``planes``: uint8 ``H x W x 3`` (channels last, any row stride; a reversed-channel view such as
    a bgr8 message read as RGB is fine), or ``H x W`` (one plane standing for all 3 channels, e.g.
    metric depth). ``sparse``: optional ``(index, values)`` - flat pixel indices (int, M) and their
    uint8 ``M x 3`` codes on an otherwise all-zero ``H x W x 3`` image of shape ``shape`` (then
    ``planes`` is None), as a projected LiDAR image is.
    """

    planes: np.ndarray | None
    shape: tuple[int, int]
    sparse: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def dense(cls, planes: np.ndarray) -> Codes:
        a = np.asarray(planes)
        if a.dtype != np.uint8 or not (a.ndim == 2 or a.ndim == 3 and a.shape[2] == 3):
            raise ValueError(f"codes must be uint8 H x W or H x W x 3, got {a.dtype} {a.shape}")
        return cls(a, (int(a.shape[0]), int(a.shape[1])))

    @classmethod
    def of_sparse(cls, shape: tuple[int, int], index: np.ndarray, values: np.ndarray) -> Codes:
        return cls(None, (int(shape[0]), int(shape[1])), (np.asarray(index), np.asarray(values, dtype=np.uint8)))

    def to_uint8(self) -> np.ndarray:
        """Dense uint8 ``H x W x 3``."""
        if self.sparse is not None:
            out = np.zeros((self.shape[0] * self.shape[1], 3), np.uint8)
            out[self.sparse[0]] = self.sparse[1]
            return out.reshape(*self.shape, 3)
        a = self.planes
        return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a

    def to_float(self) -> np.ndarray:
        """The float32 ``H x W x 3`` image in [0, 1] these codes stand for (``code / 255``)."""
        out = self.to_uint8().astype(np.float32)
        return np.divide(out, np.float32(255.0), out=out)

    def channel_planes(self, scratch: np.ndarray | None = None) -> list[np.ndarray]:
        """Three uint8 ``H x W`` planes (shared for a single-plane image), each OpenCV-readable.
        ``scratch``: optional C-contiguous uint8 ``3 x H x W`` buffer the planes of an interleaved
        image are split into (a fresh 3-plane allocation per frame costs page faults: ~4x slower at
        640 x 480); the planes returned are then views of it, valid until it is reused."""
        a = self.to_uint8() if self.sparse is not None else self.planes
        if a.ndim == 2:
            return [a] * 3
        if scratch is not None and (scratch.shape != (3, *a.shape[:2]) or scratch.dtype != np.uint8
                                    or not scratch.flags.c_contiguous):
            raise ValueError(f"channel_planes: scratch must be a contiguous uint8 3 x {a.shape[0]} x "
                             f"{a.shape[1]} array, got {scratch.dtype} {scratch.shape}")
        mv = None if scratch is None else [scratch[0], scratch[1], scratch[2]]
        if a.strides[2] == -1 and a[:, :, ::-1].strides[1:] == (3, 1):  # bgr read as rgb: split as stored
            return list(cv2.split(a[:, :, ::-1], None if mv is None else mv[::-1]))[::-1]
        if a.strides[1:] != (3, 1):
            a = np.ascontiguousarray(a)
        return list(cv2.split(a, mv))


ImageLike = np.ndarray | torch.Tensor | Codes


def to_chw(img: ImageLike, name: str = "image") -> torch.Tensor:
    """``H x W x 3`` numpy, ``3 x H x W`` tensor or :class:`Codes` -> float32 tensor ``3 x H x W``."""
    if isinstance(img, Codes):
        img = img.to_float()
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
    if mode == "bilinear":  # channels-last: torch's vectorised kernel, 4x faster, the same values
        xb = xb.contiguous(memory_format=torch.channels_last)  # (test_kernels.py checks equality)
        out = F.interpolate(xb, size=size, mode="bilinear", align_corners=False).contiguous()
    else:
        out = F.interpolate(xb, size=size, mode="nearest")
    return out if batched else out[0]


def lidar_key_channel(spec: PreprocessSpec | LidarEncoding | None) -> int | None:
    """Index of the LiDAR channel that orders returns (``range`` or ``depth``: nearest wins), or None.
    ``spec``: a PreprocessSpec or its LidarEncoding."""
    if spec is None:
        return None
    lidar = spec.lidar if isinstance(spec, PreprocessSpec) else spec
    for name in ("depth", "range"):
        if name in lidar.channels:
            return lidar.channels.index(name)
    return None


def reduce_nearest_return(x: torch.Tensor, size: tuple[int, int], key: int | None = None) -> torch.Tensor:
    """Density-preserving reduction of a sparse image ``3 x H x W`` / ``B x 3 x H x W`` to ``size``.

    Source pixel (r, c) belongs to input cell ``(((2r + 1) h) // (2H), ((2c + 1) w) // (2W))``:
    the cell its centre falls in, the same rule a point projected at the input resolution follows
    (``CameraModel.scaled``). Per cell, among the source pixels with a return (any channel != 0),
    the one with the smallest ``key`` channel wins (nearest return; ``key=None``: first in
    row-major order), ties -> first in row-major order; cells without a return are 0. Only for
    downscaling (``h <= H`` and ``w <= W``); otherwise nearest resampling. Float32 in, same out.
    """
    H, W = x.shape[-2:]
    h, w = size
    if (H, W) == (h, w):
        return x
    if h > H or w > W:
        return resize(x, size, "depth")
    batched = x.dim() == 4
    xb = x if batched else x[None]
    B, C = xb.shape[:2]
    dev = xb.device
    rows = ((2 * torch.arange(H, device=dev) + 1) * h) // (2 * H)
    cols = ((2 * torch.arange(W, device=dev) + 1) * w) // (2 * W)
    flat = xb.reshape(B, C, H * W)
    # sparse: only pixels with a return take part (a few % of a camera-resolution LiDAR image)
    b, src = (flat != 0).any(dim=1).nonzero(as_tuple=True)  # row-major order within each image
    out = torch.zeros(B, C, h * w, dtype=flat.dtype, device=dev)
    if src.numel():
        cell = rows[src // W] * w + cols[src % W]
        group = b * (h * w) + cell
        if key is None:  # row-major order already groups nothing: sort by cell, stable
            order = torch.argsort(group, stable=True)
        else:  # one stable sort on (cell, key): 2 * cell + key with key in [0, 1] (float64: exact
            # ordering for any image size); equal keys keep row-major order
            kv = flat[b, key, src].to(torch.float64).clamp(0.0, 1.0)
            order = torch.argsort(group.to(torch.float64) * 2.0 + kv, stable=True)
        g = group[order]
        first = torch.ones_like(g, dtype=torch.bool)
        first[1:] = g[1:] != g[:-1]
        win = order[first]
        out[b[win], :, cell[win]] = flat[b[win], :, src[win]]
    out = out.reshape(B, C, h, w)
    return out if batched else out[0]


def fit(x: torch.Tensor, size: tuple[int, int], modality: str, spec: PreprocessSpec | None = None) -> torch.Tensor:
    """``3 x H x W`` / ``B x 3 x H x W`` -> ``size`` under ``spec.resize_policy`` (stretch if no spec):
    crop the geometry's source window, resample it with the modality's rule (bilinear RGB, nearest
    depth / event, LiDAR per ``spec.lidar.resample``), pad the letterbox border with 0."""
    geo = InputGeometry.of(tuple(x.shape[-2:]), size, spec.resize_policy if spec is not None else "stretch")
    if geo.identity:
        return x
    x0, y0, ws, hs = geo.window
    if (ws, hs) != (geo.src_w, geo.src_h):
        x = x[..., y0:y0 + hs, x0:x0 + ws]
    px, py, bw, bh = geo.box
    if modality == "lidar" and spec is not None and spec.lidar.resample == "nearest_return":
        x = reduce_nearest_return(x, (bh, bw), lidar_key_channel(spec))
    else:
        x = resize(x, (bh, bw), modality)
    if (bw, bh) != (geo.dst_w, geo.dst_h):
        x = F.pad(x, (px, geo.dst_w - bw - px, py, geo.dst_h - bh - py))
    return x


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


@lru_cache(maxsize=64)
def normalize_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """float32 ``3 x 256``: :func:`normalize` of ``code / 255`` for every code, per channel (the
    values the float path computes, so a table lookup is bit-identical to it)."""
    grid = torch.from_numpy(np.arange(256, dtype=np.uint8).astype(np.float32) / np.float32(255.0))
    x = grid.view(1, 1, 256).expand(3, 1, 256)
    return normalize(x, Normalization(tuple(mean), tuple(std)))[:, 0].numpy().copy()


def _nearest_only(modality: str, spec: PreprocessSpec) -> bool:
    """True when resampling this modality only selects pixels (so it commutes with the 8-bit codes)."""
    if modality == "rgb":
        return False
    return not (modality == "lidar" and spec.lidar.resample == "nearest_return")


def _reduce_codes_nearest_return(codes: Codes, geo: InputGeometry, key: int | None) -> Codes:
    """:func:`reduce_nearest_return` (with the geometry's crop and letterbox) on sparse codes:
    the same winner per input cell - smallest key code (codes order like the quantised values
    they stand for), ties -> first source pixel in row-major order - as sparse codes at the input
    size. Only pixels with a nonzero code take part, as in the dense version."""
    if codes.sparse is None:
        codes = Codes.of_sparse(codes.shape, *_dense_to_sparse(codes.to_uint8()))
    if kernels.enabled():  # the same winners, compiled
        from rmmss_core.kernels.lidar import reduce_nearest_return_codes
        return Codes.of_sparse((geo.dst_h, geo.dst_w), *reduce_nearest_return_codes(*codes.sparse, codes.shape, geo, key))
    idx, vals = codes.sparse
    W = codes.shape[1]
    x0, y0, ws, hs = geo.window
    px, py, bw, bh = geo.box
    r, c = np.divmod(np.asarray(idx, dtype=np.int64), W)
    sel = np.flatnonzero((r >= y0) & (r < y0 + hs) & (c >= x0) & (c < x0 + ws)
                         & ((vals[:, 0] | vals[:, 1] | vals[:, 2]) != 0))
    r, c, vals = r.take(sel) - y0, c.take(sel) - x0, vals.take(sel, axis=0)
    cell = (((2 * r + 1) * bh) // (2 * hs) + py) * geo.dst_w + ((2 * c + 1) * bw) // (2 * ws) + px
    src = r * ws + c  # row-major order in the window
    k = vals[:, key].astype(np.int64) if key is not None else np.zeros(src.size, np.int64)
    order = (k << 40) | src  # per cell: smallest key, then first in row-major order (src < 2^40)
    best = np.full(geo.dst_h * geo.dst_w, np.iinfo(np.int64).max)
    np.minimum.at(best, cell, order)
    win = np.flatnonzero(best.take(cell) == order)
    return Codes.of_sparse((geo.dst_h, geo.dst_w), cell.take(win), vals.take(win, axis=0))


def _dense_to_sparse(u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = u8.reshape(-1, 3)
    idx = np.flatnonzero(flat.any(axis=1))
    return idx, flat[idx]


def fit_normalize_codes(codes: Codes, size: tuple[int, int], modality: str,
                        spec: PreprocessSpec, out: torch.Tensor | None = None) -> torch.Tensor:
    """:class:`Codes` -> normalised network input ``3 x h x w`` float32, bit-identical to
    ``normalize(fit(to_chw(codes.to_float())))``: geometry on the codes when it only selects
    pixels, then one table lookup per channel; otherwise the float path. ``out``: a contiguous
    ``3 x h x w`` float32 tensor to write into (returned)."""
    norm = spec.normalization[modality]
    geo = InputGeometry.of(codes.shape, size, spec.resize_policy)
    if min(geo.window[2:]) <= 0 or min(geo.box[2:]) <= 0:
        raise ValueError(f"{modality}: a {codes.shape[1]} x {codes.shape[0]} image has no pixels left for the "
                         f"{size[1]} x {size[0]} input under resize_policy {spec.resize_policy!r}")
    h, w = size
    out = torch.empty(3, h, w) if out is None else out
    table = normalize_table(tuple(norm.mean), tuple(norm.std))
    o = out.numpy()
    if not geo.identity and modality == "lidar" and spec.lidar.resample == "nearest_return" \
            and geo.box[2] <= geo.window[2] and geo.box[3] <= geo.window[3]:
        codes = _reduce_codes_nearest_return(codes, geo, lidar_key_channel(spec))
        geo = InputGeometry.of(size, size, spec.resize_policy)
    if not geo.identity and not _nearest_only(modality, spec):
        # float path (bilinear RGB, LiDAR upscaled): the float image built channel-first (same
        # values as to_chw's channels-last view, read by interpolate in one contiguous pass)
        unit = normalize_table((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # code / 255
        if codes.planes is not None and codes.planes.ndim == 3:
            # channels-last float image in one lookup (the layout bilinear resizing is fastest on)
            a = codes.planes
            if a.strides[2] == -1 and a[:, :, ::-1].flags.c_contiguous:  # bgr read as rgb: swap with OpenCV
                a = cv2.cvtColor(a[:, :, ::-1], cv2.COLOR_BGR2RGB)
            hwc = cv2.LUT(np.ascontiguousarray(a), unit[0])
            x = torch.from_numpy(hwc).permute(2, 0, 1)
        else:
            x = torch.empty(3, *codes.shape)
            xn = x.numpy()
            for c, plane in enumerate(codes.channel_planes()):
                r = cv2.LUT(plane, unit[c], dst=xn[c])
                if not np.shares_memory(r, xn):
                    xn[c] = r
        out.copy_(normalize(fit(x, size, modality, spec), norm))
        return out
    if geo.identity and codes.sparse is not None:  # mostly empty: fill with code 0, scatter the rest
        idx, vals = codes.sparse
        if kernels.enabled():
            from rmmss_core.kernels.planes import fill_scatter
            fill_scatter(o.reshape(3, -1), table, idx, vals)
            return out
        for c in range(3):
            plane = o[c].reshape(-1)
            plane.fill(table[c, 0])
            plane[idx] = table[c][vals[:, c]]
        return out
    if not geo.identity and codes.planes is not None and kernels.enabled() and o.flags.c_contiguous:
        from rmmss_core.kernels.planes import remap_lut
        x0, y0, ws, hs = geo.window
        px, py, bw, bh = geo.box
        rows, cols = nearest_index_map(hs, bh), nearest_index_map(ws, bw)
        remap_lut(codes.planes, rows + y0, cols + x0, px, py, table, o)
        return out
    planes = codes.channel_planes(_scratch_planes(codes.shape) if codes.planes is not None
                                  and codes.planes.ndim == 3 else None)
    if not geo.identity:
        x0, y0, ws, hs = geo.window
        px, py, bw, bh = geo.box
        src = np.stack([p[y0:y0 + hs, x0:x0 + ws] for p in planes]) if planes[0] is not planes[1] else \
            planes[0][None, y0:y0 + hs, x0:x0 + ws]
        t = torch.from_numpy(np.ascontiguousarray(src))[None]
        if (bh, bw) != (hs, ws):
            t = F.interpolate(t, size=(bh, bw), mode="nearest")
        if (bw, bh) != (w, h):
            t = F.pad(t, (px, w - bw - px, py, h - bh - py))
        small = t[0].numpy()
        planes = [small[0]] * 3 if small.shape[0] == 1 else [small[0], small[1], small[2]]
    for c in range(3):
        if c and planes[c] is planes[c - 1] and np.array_equal(table[c], table[c - 1]):
            o[c] = o[c - 1]  # same plane, same table (depth's single plane): a copy, not a lookup
            continue
        r = cv2.LUT(planes[c], table[c], dst=o[c])
        if not np.shares_memory(r, o):  # OpenCV allocated instead of writing in place
            o[c] = r
    return out


@lru_cache(maxsize=64)
def nearest_index_map(size_in: int, size_out: int) -> np.ndarray:
    """int64 ``size_out``: the source index of each output index under ``F.interpolate(mode="nearest")``
    along one axis, taken from torch itself (an index ramp resampled), so it follows torch's rule
    (``floor(dst * (float)in / out)`` in float32, clamped) exactly. Read-only (cached)."""
    ramp = torch.arange(size_in, dtype=torch.float32).view(1, 1, size_in, 1)
    out = F.interpolate(ramp, size=(size_out, 1), mode="nearest").view(-1).to(torch.int64).numpy()
    out.flags.writeable = False
    return out


_SCRATCH = threading.local()


def _scratch_planes(shape: tuple[int, ...]) -> np.ndarray:
    """A per-thread uint8 ``3 x H x W`` buffer reused across frames for splitting interleaved codes
    (``Codes.channel_planes``); its planes are consumed within one ``fit_normalize_codes`` call."""
    h, w = shape[:2]
    buf = getattr(_SCRATCH, "planes", None)
    if buf is None or buf.shape != (3, h, w):
        buf = _SCRATCH.planes = np.empty((3, h, w), dtype=np.uint8)
    return buf


def denormalize(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Inverse of :func:`normalize`: back to the encoded [0, 1] image."""
    mean, std = _stats(norm, x)
    return x * std + mean


def preprocess(images: Mapping[str, ImageLike | None], spec: PreprocessSpec,
               size: tuple[int, int] | None = None,
               out: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Encoded images (missing / None = absent) -> (inputs ``{m: 3 x H x W}``, available bool[4]).

    ``size`` defaults to ``spec.input_size``; pass the native size to skip resizing.
    ``out``: optional contiguous float32 ``4 x 3 x H x W`` tensor (modalities in MODALITIES order)
    the inputs are written into and returned as views of - one allocation per frame instead of
    four (fresh multi-megabyte buffers cost page faults: 4x slower at 640 x 480).
    Unknown keys raise ValueError.
    """
    unknown = sorted(set(images) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modality key(s) {unknown}; expected some of {MODALITIES}")
    size = tuple(spec.input_size if size is None else size)
    if out is not None and (tuple(out.shape) != (len(MODALITIES), 3, *size) or out.dtype != torch.float32
                            or not out.is_contiguous()):
        raise ValueError(f"preprocess: out must be a contiguous float32 {len(MODALITIES)} x 3 x {size[0]} x "
                         f"{size[1]} tensor, got {out.dtype} {tuple(out.shape)}")
    res: dict[str, torch.Tensor] = {}
    available = torch.zeros(len(MODALITIES), dtype=torch.bool)
    for i, m in enumerate(MODALITIES):
        img = images.get(m)
        if img is None:
            res[m] = torch.zeros(3, *size) if out is None else out[i].zero_()
            continue
        available[i] = True
        res[m] = preprocess_one(img, m, spec, size, None if out is None else out[i])
    return res, available


def preprocess_one(img: ImageLike, modality: str, spec: PreprocessSpec, size: tuple[int, int],
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """One present modality of :func:`preprocess`: encoded image -> normalised ``3 x h x w``
    float32 (written into ``out``, a contiguous ``3 x h x w`` tensor, when given)."""
    if isinstance(img, Codes):
        return fit_normalize_codes(img, size, modality, spec, out)
    x = normalize(fit(to_chw(img, modality), size, modality, spec), spec.normalization[modality])
    return x if out is None else out.copy_(x)


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
