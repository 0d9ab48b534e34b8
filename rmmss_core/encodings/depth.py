"""Depth image encodings: metric depth normalised (default) or HHA.

Input conventions (ROS REP 117/118): float depth in metres with NaN / 0 / +-Inf invalid, or
uint16 depth in millimetres with 0 invalid.
"""
from __future__ import annotations

import numpy as np

from rmmss_core.encodings.camera import CameraModel
from rmmss_core.encodings.common import finish
from rmmss_core.spec import DepthEncoding

HHA_MIN_DEPTH_M = 0.5     # disparity channel = min(1, HHA_MIN_DEPTH_M / depth)
HHA_MAX_HEIGHT_M = 10.0   # height channel = height above the lowest valid point / this


def depth_to_metres(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``H x W`` depth (float metres or uint16 millimetres) -> (float64 metres, valid bool mask).

    Valid means finite and > 0; invalid pixels are set to 0 in the returned depth.
    """
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        raise ValueError(f"depth image must be H x W, got shape {np.shape(depth)}")
    if d.dtype == np.uint16:
        m = d.astype(np.float64) / 1000.0
    elif np.issubdtype(d.dtype, np.floating):
        m = d.astype(np.float64)
    else:
        raise ValueError(f"depth must be float metres or uint16 millimetres, got dtype {d.dtype}")
    valid = np.isfinite(m) & (m > 0)
    return np.where(valid, m, 0.0), valid


def encode_depth(depth_m: np.ndarray, enc: DepthEncoding = DepthEncoding(), quantize: bool = True,
                 camera: CameraModel | None = None) -> np.ndarray:
    """Encode an ``H x W`` depth image as float32 ``H x W x 3`` in [0, 1].

    ``metric``: depth / max_depth clipped to [0, 1], repeated to 3 channels; invalid pixels
    (NaN, 0, +-Inf: "no return" carries no metric value) are 0.
    ``hha``: see :func:`depth_to_hha`; needs the ``camera`` (intrinsics K of this image).
    """
    d, valid = depth_to_metres(depth_m)
    if enc.kind == "metric":
        x = np.where(valid, d / enc.max_depth, 0.0)
        img = np.repeat(x[:, :, None], 3, axis=2)
    else:
        if camera is None:
            raise ValueError("HHA depth encoding needs the camera model (intrinsics) of the depth image")
        img = depth_to_hha(d, valid, camera)
    return finish(img, quantize)


def metric_depth_codes(depth_m: np.ndarray, enc: DepthEncoding = DepthEncoding()) -> np.ndarray:
    """The 8-bit codes of :func:`encode_depth` (``metric``, ``quantize=True``) of float depth in
    metres: uint8 ``H x W`` with ``from_uint8(code)`` equal, in every channel, to its output.

    One single-channel float32 pass instead of float64 x 3 channels: when ``max_depth`` is a
    float32 number the float32 quotient equals the float64 quotient rounded to float32 (double
    rounding is innocuous for a division computed with >= 2 * 24 + 2 bits), clipping commutes with
    that rounding, and the code is ``rint(x * 255)`` of the same float32 as before; otherwise the
    float64 route is taken. Invalid pixels (NaN, <= 0, +-Inf) are 0.
    """
    if enc.kind != "metric":
        raise ValueError(f"metric_depth_codes is for the metric encoding, got {enc.kind!r}")
    d = np.asarray(depth_m)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
        raise ValueError(f"depth must be H x W float metres, got {d.dtype} {np.shape(depth_m)}")
    md = float(enc.max_depth)
    if d.dtype == np.float32 and float(np.float32(md)) == md:
        x = np.divide(d, np.float32(md))
    else:
        x = (d.astype(np.float64) / md).astype(np.float32)
    np.copyto(x, np.float32(0.0), where=~((d > 0) & (d != np.inf)))  # invalid (NaN, <= 0, +-Inf) -> 0
    np.minimum(x, np.float32(1.0), out=x)
    np.multiply(x, np.float32(255.0), out=x)
    return np.rint(x, out=x).astype(np.uint8)


def depth_to_hha(depth: np.ndarray, valid: np.ndarray, camera: CameraModel) -> np.ndarray:
    """HHA (Gupta et al., ECCV 2014) of ``H x W`` metric depth -> ``H x W x 3`` float in [0, 1].

    Channels: horizontal disparity ``min(1, 0.5 m / depth)``; height above the lowest valid point
    / 10 m; angle between the surface normal and gravity / 180 deg. Simplification, documented:
    gravity is taken as the camera's +y axis (a level camera, as on DELIVER's car rig) instead of
    being estimated iteratively from the normals. Invalid pixels are 0 in every channel.
    """
    H, W = depth.shape
    K = camera.K
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    X = (u - K[0, 2]) * depth / K[0, 0]
    Y = (v - K[1, 2]) * depth / K[1, 1]
    P = np.stack([X, Y, depth], axis=2)
    disp = np.where(valid, np.minimum(1.0, HHA_MIN_DEPTH_M / np.where(valid, depth, 1.0)), 0.0)
    height = np.zeros_like(depth)
    if valid.any():
        height = np.where(valid, (Y[valid].max() - Y) / HHA_MAX_HEIGHT_M, 0.0)
    du = np.gradient(P, axis=1)
    dv = np.gradient(P, axis=0)
    n = np.cross(du, dv)
    n = np.where(((n * P).sum(axis=2) > 0)[..., None], -n, n)  # normals face the camera
    norm = np.linalg.norm(n, axis=2)
    ok = valid & (norm > 1e-12)
    up = np.array([0.0, -1.0, 0.0])
    cos = np.where(ok, (n @ up) / np.where(ok, norm, 1.0), 1.0)
    angle = np.where(ok, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))) / 180.0, 0.0)
    return np.stack([disp, np.clip(height, 0, 1), angle], axis=2)
