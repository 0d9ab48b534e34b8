"""LiDAR points projected into the camera image (the MUSES-style LiDAR image).

One implementation for training data (synthetic writer, MUSES reader) and for the ROS node.
"""
from __future__ import annotations

import numpy as np

from rmmss_core.encodings.camera import MIN_DEPTH_M, CameraModel
from rmmss_core.encodings.common import finish
from rmmss_core.spec import LidarEncoding


def transform_points(xyz: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Apply a 4 x 4 rigid transform to ``N x 3`` points -> ``N x 3`` float64."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"transform must be 4 x 4, got shape {T.shape}")
    return np.asarray(xyz, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]


def nearest_per_pixel(pixel: np.ndarray, depth: np.ndarray, num_pixels: int) -> np.ndarray:
    """Indices (into ``pixel``) of the nearest point for every pixel hit, ties -> lowest index.

    ``pixel`` int64 N flat pixel indices in ``[0, num_pixels)``, ``depth`` float N. Vectorised:
    a z-buffer with ``np.minimum.at``, then a second ``minimum.at`` over indices to break ties.
    """
    if pixel.size == 0:
        return np.zeros(0, dtype=np.int64)
    zbuf = np.full(num_pixels, np.inf)
    np.minimum.at(zbuf, pixel, depth)
    win = np.flatnonzero(zbuf[pixel] == depth)
    first = np.full(num_pixels, np.iinfo(np.int64).max)
    np.minimum.at(first, pixel[win], win)
    return win[first[pixel[win]] == win]


def project_lidar(points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel,
                  enc: LidarEncoding = LidarEncoding(), quantize: bool = True) -> np.ndarray:
    """Project LiDAR points into the camera and encode them as a 3-channel image.

    points: ``N x 4`` (x, y, z, intensity) in the LiDAR frame (``N x 3`` -> intensity 0; extra
    columns ignored). T_cam_lidar: 4 x 4, maps LiDAR-frame points into the camera optical frame.
    Points behind the camera, out of view, or non-finite are dropped; when several points hit one
    pixel the nearest (smallest camera z, depth_image_proc's rule) wins.

    Channels per ``enc.channels``: ``range`` = LiDAR-frame distance / max_range, ``intensity``
    clipped to [0, 1], ``height`` = (z_lidar - min_height) / (max_height - min_height), ``depth`` =
    camera z / max_range, all clipped to [0, 1]; pixels without a return are 0.
    Returns float32 ``H x W x 3`` (camera height x width), on the 1/255 grid if ``quantize``.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"lidar points must be N x 4 (x, y, z, intensity), got shape {pts.shape}")
    H, W = camera.height, camera.width
    out = np.zeros((H * W, 3), dtype=np.float32)
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_cam_lidar must be 4 x 4, got shape {T.shape}")
    xyz_all = np.asarray(pts[:, :3], dtype=np.float64)
    # cull points behind the camera first (most of a 360-degree scan); NaN z fails the test too
    front = np.flatnonzero(xyz_all @ T[2, :3] + T[2, 3] > MIN_DEPTH_M)
    xyz = xyz_all[front]
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        front, xyz = front[finite], xyz[finite]
    pts = pts[front]
    cam = transform_points(xyz, T)
    pix, valid = camera.pixel_indices(cam)
    keep = nearest_per_pixel(pix, cam[valid, 2], H * W)
    src = np.flatnonzero(valid)[keep]
    target = pix[keep]
    for c, name in enumerate(enc.channels):
        out[target, c] = _channel(name, pts, xyz, cam, src, enc)
    return finish(out.reshape(H, W, 3), quantize)


def _channel(name: str, pts: np.ndarray, xyz: np.ndarray, cam: np.ndarray, src: np.ndarray,
             enc: LidarEncoding) -> np.ndarray:
    if name == "range":
        v = np.sqrt((xyz[src] ** 2).sum(axis=1)) / enc.max_range
    elif name == "intensity":
        v = pts[src, 3].astype(np.float64) if pts.shape[1] > 3 else np.zeros(src.size)
        v = np.nan_to_num(v, nan=0.0)
    elif name == "height":
        v = (xyz[src, 2] - enc.min_height) / (enc.max_height - enc.min_height)
    elif name == "depth":
        v = cam[src, 2] / enc.max_range
    else:  # LidarEncoding validates names; kept for safety
        raise ValueError(f"unknown lidar channel {name!r}")
    return np.clip(v, 0.0, 1.0)
