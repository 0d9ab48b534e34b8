"""Writes synthetic frames in DELIVER's layout plus the raw sensor streams (all writes atomic).

Per frame (``key`` = condition/split/sequence/frame, see :mod:`rmmss_core.data.layout`):
``img/..._rgb_front.png`` (uint8 RGB), ``depth/..._depth_front.png`` = ``encode_depth(raw depth)``,
``event/..._event_front.png`` = ``accumulate_events(raw events, t_frame)``,
``lidar/..._lidar_front.png`` = ``project_lidar(raw points, T_cam_lidar, camera)`` (all with the
dataset spec's encodings, quantised to 8 bits), ``semantic/..._semantic_front.png`` (channel 0 =
class id + 1, 0 = unlabeled), and in ``raw/<condition>/<split>/<sequence>/``:
``<frame>_points.npy`` (N x 4 float32 x, y, z, intensity, LiDAR frame), ``<frame>_events.npz``
(x, y uint16; t float64 s; p int8 +1/-1), ``<frame>_depth.npy`` (H x W float32 m, NaN invalid).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from rmmss_core.data.layout import FrameKey, frame_path, raw_path
from rmmss_core.data.synth.event_sim import Events
from rmmss_core.encodings import (
    CameraModel,
    accumulate_events,
    encode_depth,
    encode_to_png_uint8,
    project_lidar,
)
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import atomic_write_bytes

PNG_COMPRESS_LEVEL = 3


def write_png(path: Path, array: np.ndarray) -> None:
    """uint8 ``H x W x 3`` array -> PNG, atomically."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    atomic_write_bytes(path, buf.getvalue())


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def label_png(cls: np.ndarray) -> np.ndarray:
    """Class ids ``H x W`` (0..24, 255 = unlabeled) -> DELIVER semantic ``H x W x 3`` uint8."""
    out = np.zeros(cls.shape + (3,), np.uint8)
    out[..., 0] = np.where(cls == 255, 0, cls.astype(np.int64) + 1).astype(np.uint8)
    return out


def encode_modalities(spec: PreprocessSpec, camera: CameraModel, T_cam_lidar: np.ndarray,
                      depth_m: np.ndarray, events: Events, points: np.ndarray,
                      t_frame: float) -> dict[str, np.ndarray]:
    """The uint8 ``H x W x 3`` PNG arrays of depth, event and lidar, from the raw data, through
    the shared encoders (exactly what the ROS node computes from the raw streams)."""
    q = spec.quantize_8bit
    return {
        "depth": encode_to_png_uint8(encode_depth(depth_m, spec.depth, quantize=q)),
        "event": encode_to_png_uint8(accumulate_events(events.x, events.y, events.t, events.p, t_frame,
                                                       camera.height, camera.width, spec.event,
                                                       quantize=q)),
        "lidar": encode_to_png_uint8(project_lidar(points, T_cam_lidar, camera, spec.lidar, quantize=q)),
    }


def write_frame(root: Path, key: FrameKey, spec: PreprocessSpec, camera: CameraModel,
                T_cam_lidar: np.ndarray, t_frame: float, rgb: np.ndarray, depth_m: np.ndarray,
                events: Events, points: np.ndarray, cls: np.ndarray) -> None:
    """Write one frame's five PNGs and three raw files (shapes in the module docstring)."""
    H, W = camera.height, camera.width
    if rgb.shape != (H, W, 3) or depth_m.shape != (H, W) or cls.shape != (H, W):
        raise ValueError(f"frame {key.name}: rgb {rgb.shape}, depth {depth_m.shape}, label "
                         f"{cls.shape} must match the camera {H} x {W}")
    pngs = encode_modalities(spec, camera, T_cam_lidar, depth_m, events, points, t_frame)
    pngs["rgb"], pngs["semantic"] = rgb, label_png(cls)
    for modality, arr in pngs.items():
        write_png(frame_path(root, key, modality, depth_folder="depth"), arr)
    atomic_write_bytes(raw_path(root, key, "points"), _npy_bytes(points.astype(np.float32)))
    atomic_write_bytes(raw_path(root, key, "depth"), _npy_bytes(depth_m.astype(np.float32)))
    buf = io.BytesIO()
    np.savez_compressed(buf, x=events.x.astype(np.uint16), y=events.y.astype(np.uint16),
                        t=events.t.astype(np.float64), p=events.p.astype(np.int8))
    atomic_write_bytes(raw_path(root, key, "events"), buf.getvalue())


def read_events(path: str | Path) -> Events:
    """Load a ``<frame>_events.npz`` written by :func:`write_frame`."""
    with np.load(path) as z:
        missing = {"x", "y", "t", "p"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: events file lacks arrays {sorted(missing)}")
        return Events(z["x"], z["y"], z["t"], z["p"])
