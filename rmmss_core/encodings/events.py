"""Event accumulation into a 3-channel event image (MUSES-style polarity counts).

Timestamps are in seconds (any epoch, float64 recommended); the window is
``t_end - window_s < t <= t_end``. Polarity ``p > 0`` is positive, ``p <= 0`` negative
(0/1 and -1/+1 conventions both work).
"""
from __future__ import annotations

import numpy as np

from rmmss_core.encodings.camera import CameraModel
from rmmss_core.encodings.common import finish
from rmmss_core.spec import EventEncoding


def accumulate_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray, t_end: float,
                      height: int, width: int, enc: EventEncoding = EventEncoding(),
                      quantize: bool = True) -> np.ndarray:
    """Accumulate events (arrays of length N) in the window before ``t_end`` into ``H x W x 3``.

    Channels per ``enc.channels``: ``pos`` / ``neg`` = event count / count_scale clipped to 1,
    ``time_surface`` = exp(-(t_end - t_last) / tau_s) of the latest event per pixel (0 if none),
    ``zero``. Events outside the image or the window are ignored. Returns float32 ``H x W x 3``
    in [0, 1], on the 1/255 grid if ``quantize``.
    """
    n = len(x)
    if not (len(y) == n and len(t) == n and len(p) == n):
        raise ValueError(f"event arrays differ in length: x {n}, y {len(y)}, t {len(t)}, p {len(p)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"event image size must be positive, got {height} x {width}")
    xi = np.asarray(x).astype(np.int64, copy=False)
    yi = np.asarray(y).astype(np.int64, copy=False)
    tt = np.asarray(t, dtype=np.float64)
    keep = ((xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            & (tt > t_end - enc.window_s) & (tt <= t_end))
    idx = yi[keep] * width + xi[keep]
    pos = np.asarray(p)[keep] > 0
    npix = height * width
    out = np.zeros((npix, 3), dtype=np.float32)
    for c, name in enumerate(enc.channels):
        if name == "pos":
            out[:, c] = np.bincount(idx[pos], minlength=npix) / enc.count_scale
        elif name == "neg":
            out[:, c] = np.bincount(idx[~pos], minlength=npix) / enc.count_scale
        elif name == "time_surface":
            out[:, c] = _time_surface(idx, tt[keep], t_end, npix, enc.tau_s)
    return finish(out.reshape(height, width, 3), quantize)


def _time_surface(idx: np.ndarray, t: np.ndarray, t_end: float, npix: int, tau: float) -> np.ndarray:
    last = np.full(npix, -np.inf)
    np.maximum.at(last, idx, t)
    hit = np.isfinite(last)
    ts = np.zeros(npix)
    ts[hit] = np.exp(-(t_end - last[hit]) / tau)
    return ts


def map_event_points(x: np.ndarray, y: np.ndarray, event_camera: CameraModel, target: CameraModel,
                     R_target_event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event pixels (N, any coordinates) -> (flat target pixel index int64 N, valid bool N).

    Each event pixel is undistorted with the event camera's own calibration (``K``, ``D``, its
    distortion model; ``cv2.undistortPoints`` / ``cv2.fisheye.undistortPoints``), its ray rotated
    by ``R_target_event`` (3 x 3: event-camera frame -> target camera frame, the rotation of the
    4 x 4 ``T_target_event`` / MUSES' ``extrinsics.event2rgb``) and projected by ``target`` (with
    its distortion), pixel = ``floor(u + 0.5)``. The translation between the cameras is ignored:
    points are taken at infinity, the rotation-only homography ``K_t R K_e^-1`` the MUSES SDK's
    zero-disparity stereo rectification reduces to (timbroed/MUSES@fe892ca:
    processing/event_camera_processing.py: stereo_rectify, undistord_events); parallax of a
    baseline ``b`` at depth ``Z`` is ``f b / Z`` pixels (5 cm at 10 m with f = 1000 px: 5 px).
    """
    import cv2  # local: only calibrated event mapping needs OpenCV here

    pix = np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1).reshape(-1, 1, 2)
    if pix.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    if event_camera.use_p and event_camera.P is not None:  # rectified events: invert P's intrinsics
        norm = cv2.undistortPoints(pix, event_camera.P[:, :3], None)
    elif event_camera.model == "equidistant" and np.any(event_camera.D):
        norm = cv2.fisheye.undistortPoints(pix, event_camera.K, event_camera.D.reshape(4, 1))
    else:
        norm = cv2.undistortPoints(pix, event_camera.K, event_camera.D if np.any(event_camera.D) else None)
    norm = norm.reshape(-1, 2)
    rays = np.c_[norm, np.ones(len(norm))] @ np.asarray(R_target_event, dtype=np.float64)[:3, :3].T
    idx = np.full(len(norm), -1, dtype=np.int64)
    flat, valid = target.pixel_indices(rays)
    idx[valid] = flat
    return idx, valid


def event_pixel_map(event_camera: CameraModel, target: CameraModel, R_target_event: np.ndarray) -> np.ndarray:
    """Lookup table of :func:`map_event_points` over every event-camera pixel: flat target index
    ``row * W + col`` or -1 (int64, ``event H * event W``, indexed by ``y * event_width + x``)."""
    w, h = event_camera.width, event_camera.height
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return map_event_points(u.ravel(), v.ravel(), event_camera, target, R_target_event)[0]


def scaled_pixel_map(src_width: int, src_height: int, width: int, height: int) -> np.ndarray:
    """Lookup table (as :func:`event_pixel_map`) for an uncalibrated event sensor of another
    resolution assumed to share the target camera's field of view and optical axis: pixel
    centres scaled, ``u' = (u + 0.5) * W / w - 0.5``, rounded to the nearest pixel."""
    u = np.floor((np.arange(src_width) + 0.5) * width / src_width).astype(np.int64)
    v = np.floor((np.arange(src_height) + 0.5) * height / src_height).astype(np.int64)
    return (v[:, None] * width + u[None, :]).ravel()


def map_event_pixels(x: np.ndarray, y: np.ndarray, table: np.ndarray, src_width: int, src_height: int,
                     width: int) -> tuple[np.ndarray, np.ndarray]:
    """Event pixels (N) through a lookup table -> target (x, y) int64; -1 where off the target or
    outside the source sensor."""
    xi, yi = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    inside = (xi >= 0) & (xi < src_width) & (yi >= 0) & (yi < src_height)
    flat = np.where(inside, table[np.where(inside, yi * src_width + xi, 0)], -1)
    ok = flat >= 0
    return np.where(ok, flat % width, -1), np.where(ok, flat // width, -1)
