"""A PNG montage of one frame: rows = conditions, columns = RGB, depth, events, LiDAR, label."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from rmmss_core.classes import DELIVER
from rmmss_core.data.layout import FrameKey, frame_path
from rmmss_core.utils.io import atomic_write_bytes

_PALETTE = np.zeros((256, 3), np.uint8)
_PALETTE[1:26] = np.asarray(DELIVER.palette, np.uint8)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _dilate(a: np.ndarray) -> np.ndarray:
    """3x3 max filter per channel (sparse LiDAR pixels become visible)."""
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)))
    H, W = a.shape[:2]
    return np.max([p[i:i + H, j:j + W] for i in range(3) for j in range(3)], axis=0)


def frame_tiles(root: Path, key: FrameKey) -> list[np.ndarray]:
    """The five ``H x W x 3`` uint8 tiles of a frame, coloured for viewing."""
    rgb = _read(frame_path(root, key, "rgb"))
    depth = _read(frame_path(root, key, "depth", "depth"))[..., 0].astype(np.float32) / 255
    depth_vis = np.where(depth > 0, 1 - depth, 0)  # near = bright, invalid = black
    ev = _read(frame_path(root, key, "event")).astype(np.int32)
    ev_vis = np.full(rgb.shape, 255, np.int32)
    ev_vis[..., 1] -= np.minimum(255, (ev[..., 0] + ev[..., 1]) * 4)
    ev_vis[..., 2] -= np.minimum(255, ev[..., 0] * 4)
    ev_vis[..., 0] -= np.minimum(255, ev[..., 1] * 4)
    lidar = _dilate(_read(frame_path(root, key, "lidar")))
    lid_vis = np.zeros_like(rgb)
    hit = lidar[..., 0] > 0
    lid_vis[..., 0] = np.where(hit, 255 - lidar[..., 0], 0)
    lid_vis[..., 1] = np.where(hit, np.minimum(255, lidar[..., 1].astype(int) * 3), 0)
    lid_vis[..., 2] = np.where(hit, lidar[..., 2], 0)
    label = _PALETTE[_read(frame_path(root, key, "semantic"))[..., 0]]
    gray = (np.clip(depth_vis, 0, 1) ** 0.5 * 255).astype(np.uint8)
    return [rgb, np.repeat(gray[..., None], 3, 2), np.clip(ev_vis, 0, 255).astype(np.uint8), lid_vis, label]


def write_montage(root: str | Path, keys: list[FrameKey], out: str | Path, scale: float = 1.0,
                  colors: int | None = None) -> None:
    """One row per key (e.g. the same frame under each condition), written atomically as PNG;
    ``scale`` resizes, ``colors`` quantises to a palette (small files for the docs)."""
    root = Path(root)
    rows = [np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255)
                            for t in frame_tiles(root, k)], 1) for k in keys]
    im = Image.fromarray(np.concatenate(rows, 0))
    if scale != 1.0:
        im = im.resize((int(im.width * scale), int(im.height * scale)), Image.BILINEAR)
    if colors is not None:
        im = im.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(out, buf.getvalue())
