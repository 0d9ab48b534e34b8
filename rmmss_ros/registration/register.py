"""Reproject a depth image that is not registered to the colour camera into the colour camera's
pixel grid, the way depth_image_proc's register node does (ros-perception/image_pipeline
@7e03ec8:depth_image_proc/src/register.cpp, ``RegisterNode::imageCb`` / ``convert``; read, not
copied):

* every valid depth pixel (u, v, d) (16UC1: d = mm / 1000, 0 invalid; 32FC1: finite) is
  back-projected with the depth camera's model: ``X = ((u - cx) d - Tx) / fx``,
  ``Y = ((v - cy) d - Ty) / fy``, ``Z = d`` (P's entries, as the node's PinholeCameraModel on
  ``depth/image_rect``);
* moved into the colour camera with ``T_rgb_depth`` (tf2 ``lookupTransform(rgb frame, depth
  frame, depth stamp)``: maps depth-frame points into the colour optical frame);
* projected into the colour camera and written at its pixel, the nearest surface winning
  (z-buffer); pixels no depth lands on stay invalid (0 / NaN). The output has the colour
  camera's size and the input's encoding (16UC1: ``(uint16)(Z * 1000 + 0.5)``).

Differences, on purpose: a depth camera calibrated *raw* (nonzero D: Azure Kinect) is
back-projected through OpenCV's undistortion instead of being taken as rectified; the colour
camera is projected with the node's own :class:`rmmss_core.encodings.CameraModel` (K + D for a
raw image, P for a rectified one: the same model the LiDAR uses), whose pixel rule is
``floor(u + 0.5)`` (the node's ``int(u + 0.5)`` also puts points up to half a pixel left of /
above the image into column / row 0); points behind the colour camera (Z <= 1 mm) are dropped
(the node would project them through a negative 1 / Z). A depth camera coarser than the colour
camera (848 x 480 at fx 424 into 1280 x 720 at fx 910: one depth pixel spans 2.1 colour pixels)
leaves the node's output mostly holes (its "@todo ... rasterizing depth triangles"): with
``splat`` (default ``auto``: that span rounded up to an odd number, 1 when the depth is as
dense as the colour image) each depth pixel is written to the ``splat x splat`` colour pixels
centred on the one it lands in, the nearest surface still winning in every pixel. ``splat=1``
is the node's rule.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from rmmss_core.encodings import CameraModel
from rmmss_core.encodings.lidar import transform_points
from rmmss_ros.conversions.camera_info import camera_from_info, camera_info_key
from rmmss_ros.conversions.common import ConversionError
from rmmss_ros.conversions.compressed import DecodedImage
from rmmss_ros.conversions.image import image_to_numpy

DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


def depth_camera_from_info(info: Any, what: str = "depth camera_info") -> CameraModel:
    """The depth camera's model: rectified (P) when D is zero and P is set (depth_image_proc's
    assumption, ``depth/image_rect``), else raw (K + D)."""
    d = np.asarray(info.d, np.float64).reshape(-1)
    p = np.asarray(info.p, np.float64).reshape(-1)
    rectified = not np.any(d) and p.size == 12 and bool(np.any(p))
    return camera_from_info(info, rectified, what)


class DepthRays:
    """Per-pixel back-projection of one depth camera (cached: built once per calibration)."""

    def __init__(self, cam: CameraModel):
        self.cam = cam
        h, w = cam.height, cam.width
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        if cam.use_p:
            P = cam.P
            self.fx, self.fy, self.cx, self.cy = P[0, 0], P[1, 1], P[0, 2], P[1, 2]
            self.tx, self.ty = P[0, 3], P[1, 3]
            self.xn = ((u - self.cx) / self.fx).reshape(-1)
            self.yn = ((v - self.cy) / self.fy).reshape(-1)
        else:
            pix = np.stack([u.reshape(-1), v.reshape(-1)], axis=1).reshape(-1, 1, 2)
            if cam.model == "equidistant":
                nrm = cv2.fisheye.undistortPoints(pix, cam.K, cam.D.reshape(4, 1))
            else:
                nrm = cv2.undistortPoints(pix, cam.K, cam.D)
            nrm = nrm.reshape(-1, 2).astype(np.float64)
            self.xn, self.yn = nrm[:, 0], nrm[:, 1]
            self.tx = self.ty = 0.0
            self.fx, self.fy = cam.K[0, 0], cam.K[1, 1]

    def points(self, depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``H x W`` metres -> (``M x 3`` float64 points of the valid pixels, their flat indices)."""
        d = depth_m.reshape(-1).astype(np.float64)
        idx = np.flatnonzero(np.isfinite(d) & (d > 0))
        dv = d[idx]
        pts = np.empty((idx.size, 3))
        pts[:, 0] = self.xn[idx] * dv - self.tx / self.fx
        pts[:, 1] = self.yn[idx] * dv - self.ty / self.fy
        pts[:, 2] = dv
        return pts, idx


def auto_splat(depth_cam: CameraModel, rgb: CameraModel) -> int:
    """The odd footprint (in colour pixels) that covers one depth pixel: the focal-length ratio
    rounded up to an odd integer (1 when the depth is at least as dense as the colour image)."""
    fd = depth_cam.P[0, 0] if depth_cam.use_p else depth_cam.K[0, 0]
    fr = rgb.P[0, 0] if rgb.use_p else rgb.K[0, 0]
    fdy = depth_cam.P[1, 1] if depth_cam.use_p else depth_cam.K[1, 1]
    fry = rgb.P[1, 1] if rgb.use_p else rgb.K[1, 1]
    k = max(1, int(np.ceil(max(fr / fd, fry / fdy) - 1e-6)))
    return k if k % 2 else k + 1


def register_depth(depth: np.ndarray, rays: DepthRays, T_rgb_depth: np.ndarray, rgb: CameraModel,
                   splat: int | str = "auto") -> np.ndarray:
    """``H x W`` depth (uint16 mm, 0 invalid; or float32 m, non-finite / <= 0 invalid) in the depth
    camera -> the same encoding at the colour camera's ``height x width``, nearest surface winning,
    unreached pixels 0 / NaN. ``splat``: the odd footprint in colour pixels (see the module doc;
    an even number is rounded up): a z-buffer on the colour grid padded by ``splat // 2``, then
    its ``splat x splat`` minimum filter, i.e. every point written to the footprint centred on
    the pixel it lands in, the nearest surface winning in each pixel."""
    if depth.shape != (rays.cam.height, rays.cam.width):
        raise ValueError(f"depth image {depth.shape[1]} x {depth.shape[0]} does not match its camera_info "
                         f"{rays.cam.width} x {rays.cam.height}")
    k = auto_splat(rays.cam, rgb) if splat == "auto" else int(splat)
    if k < 1:
        raise ValueError(f"splat must be >= 1 or 'auto', got {splat!r}")
    k += 1 - k % 2
    pad = k // 2
    mm = depth.dtype == np.uint16
    W, H = rgb.width + 2 * pad, rgb.height + 2 * pad
    grid = rgb.window(-pad, -pad, W, H) if pad else rgb
    T = np.asarray(T_rgb_depth, np.float64)
    zbuf = _zbuffer_compiled(depth, rays, T, grid)
    if zbuf is None:  # the numpy reference (a distorted or rectified colour camera, or no numba)
        d_m = depth.astype(np.float64) * 0.001 if mm else depth.astype(np.float64)
        if mm:
            d_m[depth == 0] = np.nan
        pts, _ = rays.points(d_m)
        cam = transform_points(pts, T)
        pix, valid = grid.pixel_indices(cam)
        zbuf = np.full(W * H, np.inf)
        np.minimum.at(zbuf, pix, cam[valid, 2])
    zbuf = zbuf.reshape(H, W)
    if pad:
        zbuf = cv2.erode(zbuf, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT,
                         borderValue=np.inf)[pad:-pad, pad:-pad]
    if mm:  # (uint16)(Z * 1000 + 0.5); unreached (inf) and beyond 65.5 m (not representable) -> 0
        mmv = np.floor(zbuf * 1000.0 + 0.5)
        mmv[~(mmv <= 65535.0)] = 0.0
        return mmv.astype(np.uint16)
    out = zbuf.astype(np.float32)
    out[np.isinf(out)] = np.nan
    return out


_KERNEL: Any = None


def _zbuffer_compiled(depth: np.ndarray, rays: DepthRays, T: np.ndarray, grid: CameraModel) -> np.ndarray | None:
    """The z-buffer of :func:`register_depth` in one compiled pass (numba, when
    ``rmmss_core.kernels`` is enabled) for a colour camera projected with K and no distortion:
    the numpy path's float64 operations in its order (back-projection, ``transform_points``' left
    to right sums, ``CameraModel.project``'s pinhole arithmetic and pixel rule), so the same pixels
    and depths bit for bit. None where it does not apply."""
    from rmmss_core import kernels
    if not kernels.enabled() or grid.use_p or np.any(grid.D):
        return None
    global _KERNEL
    if _KERNEL is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def zbuffer(depth, scale, xn, yn, tx_fx, ty_fy, T, K, W, H, min_z, out):
            flat = depth.reshape(-1)
            for i in range(flat.size):
                d = flat[i] * scale
                if not (d > 0.0) or d == np.inf:  # 0 / NaN / Inf: no depth
                    continue
                X = xn[i] * d - tx_fx
                Y = yn[i] * d - ty_fy
                Z = d
                x = X * T[0, 0] + Y * T[0, 1] + Z * T[0, 2] + T[0, 3]
                y = X * T[1, 0] + Y * T[1, 1] + Z * T[1, 2] + T[1, 3]
                z = X * T[2, 0] + Y * T[2, 1] + Z * T[2, 2] + T[2, 3]
                if not (z > min_z):
                    continue
                xx, yy = x / z, y / z
                u = K[0, 0] * xx + K[0, 1] * yy + K[0, 2]
                v = K[1, 1] * yy + K[1, 2]
                col, row = np.floor(u + 0.5), np.floor(v + 0.5)
                if col < 0 or col >= W or row < 0 or row >= H:
                    continue
                j = int(row) * W + int(col)
                if z < out[j]:
                    out[j] = z
            return out

        _KERNEL = zbuffer
    from rmmss_core.encodings.camera import MIN_DEPTH_M
    out = np.full(grid.width * grid.height, np.inf)
    scale = 0.001 if depth.dtype == np.uint16 else 1.0
    d = depth if depth.dtype == np.uint16 else depth.astype(np.float64)
    return _KERNEL(np.ascontiguousarray(d), scale, rays.xn, rays.yn, rays.tx / rays.fx, rays.ty / rays.fy,
                   np.ascontiguousarray(T), np.ascontiguousarray(grid.K), grid.width, grid.height, MIN_DEPTH_M, out)


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the registration z-buffer for both depth
    encodings (uint16 mm and float32 m) now, so that the first unregistered depth frame does
    not pay for it; nothing without the kernels."""
    from rmmss_core import kernels
    if not kernels.enabled():
        return
    K = np.array([[4.0, 0.0, 2.0], [0.0, 4.0, 2.0], [0.0, 0.0, 1.0]])
    cam = CameraModel(4, 4, K)
    rays = DepthRays(cam)
    for depth in (np.full((4, 4), 1000, np.uint16), np.ones((4, 4), np.float32)):
        register_depth(depth, rays, np.eye(4), cam, splat=1)


class DepthRegistrar:
    """Registers depth messages into the colour camera; caches the depth rays per calibration."""

    def __init__(self, splat: int | str = "auto"):
        self.splat = splat
        self._key: tuple | None = None
        self._rays: DepthRays | None = None

    def rays(self, depth_info: Any) -> DepthRays:
        key = camera_info_key(depth_info)
        if key != self._key:
            self._rays = DepthRays(depth_camera_from_info(depth_info))
            self._key = key
        assert self._rays is not None
        return self._rays

    def register(self, msg: Any, depth_info: Any, rgb: CameraModel, T_rgb_depth: np.ndarray,
                 what: str = "depth") -> DecodedImage:
        """A depth Image (or decoded CompressedImage) -> an Image-shaped registered depth at the
        colour camera's size, same encoding. Raises ConversionError naming what does not fit."""
        enc = str(msg.encoding)
        if enc not in DEPTH_ENCODINGS:
            raise ConversionError(f"{what}: depth must be 16UC1 or 32FC1 to be registered, got {enc!r}")
        a = image_to_numpy(msg, what)
        rays = self.rays(depth_info)
        if a.shape != (rays.cam.height, rays.cam.width):
            raise ConversionError(f"{what}: depth image is {a.shape[1]} x {a.shape[0]} but its camera_info says "
                                  f"{rays.cam.width} x {rays.cam.height}")
        out = register_depth(np.ascontiguousarray(a), rays, T_rgb_depth, rgb, self.splat)
        return DecodedImage.of(msg.header, out, enc, "registered")
