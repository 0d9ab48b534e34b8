"""The per-frame sensor encodings in torch, on any device (CPU tensors in the tests, CUDA in the node).

One function per sensor, each the torch twin of a numpy encoder in :mod:`rmmss_core.encodings`
(the definition; this module must follow it) and equal to it within one 8-bit intensity level
per pixel (``test/test_preprocess_torch.py`` compares them on CPU tensors):

==========================  =====================================================
torch (here)                numpy definition
==========================  =====================================================
:func:`encode_rgb_t`        ``encodings.common.encode_rgb``
:func:`encode_depth_t`      ``encodings.depth.encode_depth`` (metric and HHA)
:func:`accumulate_events_t` ``encodings.events.accumulate_events``
:func:`project_lidar_t`     ``encodings.lidar.project_lidar`` (+ ``CameraModel.project``)
:func:`finish_t`            ``encodings.common.finish`` (clip, float32, 8-bit grid)
:func:`preprocess_t`        ``preprocess.preprocess`` (resize, normalise, zeros when absent)
==========================  =====================================================

Definitions that are being extended (the resize policy ``fit``, LiDAR intensity units and
no-return markers, OpenCV distortion models) are followed where the numpy side provides them:
``fit`` is used when :mod:`rmmss_core.preprocess` has it (else ``resize``), no-return points are
dropped when :mod:`rmmss_core.encodings.lidar` defines ``NO_RETURN_RADIUS_M``, and distortion
follows OpenCV's ``projectPoints`` (no skew; plumb_bob, rational_polynomial, equidistant) when
``CameraModel`` projects through OpenCV. Models this module cannot mirror (thin-prism / tilted
rational coefficients) are projected on the host by ``CameraModel.project`` and the pixel
coordinates uploaded.

Encoded images are float32 ``3 x H x W`` (channels first, ready for the network) in [0, 1].
Geometry (LiDAR transform and projection, depth back-projection) runs in float64 exactly as the
numpy path does, so a point lands on the same pixel on every device; the remaining differences
are float rounding of values, at most one 1/255 step after quantisation.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from rmmss_core import preprocess as _preprocess
from rmmss_core.encodings import lidar as _lidar
from rmmss_core.encodings.camera import _DISTORTION_MARGIN, MIN_DEPTH_M, CameraModel
from rmmss_core.encodings.depth import HHA_MAX_HEIGHT_M, HHA_MIN_DEPTH_M
from rmmss_core.modalities import MODALITIES
from rmmss_core.preprocess import normalize
from rmmss_core.spec import DepthEncoding, EventEncoding, LidarEncoding, PreprocessSpec

__all__ = ["accumulate_events_t", "encode_depth_t", "encode_rgb_t", "finish_t", "preprocess_t",
           "normalize_intensity_t", "project_lidar_t", "project_t", "quantize_t"]


def quantize_t(x: torch.Tensor) -> torch.Tensor:
    """``round(clip(x, 0, 1) * 255) / 255`` in float32, half to even like ``np.rint``."""
    return torch.round(x.float().clamp(0.0, 1.0) * 255.0) / 255.0


def finish_t(img: torch.Tensor, quantize_8bit: bool) -> torch.Tensor:
    """Clip to [0, 1], float32, and quantise on request (``encodings.common.finish``)."""
    out = img.clamp(0.0, 1.0).float()
    return quantize_t(out) if quantize_8bit else out


def encode_rgb_t(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 ``H x W x 3`` RGB (or ``H x W`` mono, repeated) -> float32 ``3 x H x W`` = value / 255."""
    if rgb.dtype != torch.uint8:
        raise ValueError(f"RGB image must be uint8, got dtype {rgb.dtype}")
    if rgb.dim() == 2:
        rgb = rgb[:, :, None].expand(-1, -1, 3)
    if rgb.dim() != 3 or rgb.shape[2] != 3:
        raise ValueError(f"RGB image must be H x W x 3 (or mono H x W), got shape {tuple(rgb.shape)}")
    return rgb.permute(2, 0, 1).float().div_(255.0)


# ------------------------------------------------------------------------------------------ depth
def depth_to_metres_t(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``H x W`` float metres (NaN / 0 / +-Inf invalid) -> (float64 metres, 0 where invalid; valid)."""
    if depth.dim() != 2:
        raise ValueError(f"depth image must be H x W, got shape {tuple(depth.shape)}")
    if not depth.is_floating_point():
        raise ValueError(f"depth must be float metres here, got dtype {depth.dtype}")
    m = depth.double()
    valid = torch.isfinite(m) & (m > 0)
    return torch.where(valid, m, torch.zeros((), dtype=m.dtype, device=m.device)), valid


def encode_depth_t(depth_m: torch.Tensor, enc: DepthEncoding = DepthEncoding(), quantize: bool = True,
                   camera: CameraModel | None = None) -> torch.Tensor:
    """``H x W`` depth in metres -> float32 ``3 x H x W`` in [0, 1] (``encodings.depth.encode_depth``).

    ``metric``: depth / max_depth, invalid pixels 0, repeated to 3 channels. ``hha``: see
    :func:`depth_to_hha_t`, needs ``camera``.
    """
    d, valid = depth_to_metres_t(depth_m)
    if enc.kind == "metric":
        x = torch.where(valid, d / enc.max_depth, torch.zeros((), dtype=d.dtype, device=d.device))
        return finish_t(x, quantize)[None].expand(3, -1, -1)
    if camera is None:
        raise ValueError("HHA depth encoding needs the camera model (intrinsics) of the depth image")
    return finish_t(depth_to_hha_t(d, valid, camera), quantize)


def depth_to_hha_t(depth: torch.Tensor, valid: torch.Tensor, camera: CameraModel) -> torch.Tensor:
    """HHA of ``H x W`` float64 metric depth -> float64 ``3 x H x W`` (``encodings.depth.depth_to_hha``:
    disparity, height above the lowest valid point, angle to gravity = camera +y)."""
    H, W = depth.shape
    K = camera.K
    dev, dt = depth.device, torch.float64
    v, u = torch.meshgrid(torch.arange(H, dtype=dt, device=dev), torch.arange(W, dtype=dt, device=dev),
                          indexing="ij")
    X = (u - K[0, 2]) * depth / K[0, 0]
    Y = (v - K[1, 2]) * depth / K[1, 1]
    P = torch.stack([X, Y, depth], dim=2)
    zero = torch.zeros((), dtype=dt, device=dev)
    disp = torch.where(valid, torch.clamp(HHA_MIN_DEPTH_M / torch.where(valid, depth, torch.ones_like(depth)),
                                          max=1.0), zero)
    if bool(valid.any()):
        height = torch.where(valid, (Y[valid].max() - Y) / HHA_MAX_HEIGHT_M, zero)
    else:
        height = torch.zeros_like(depth)
    # np.gradient: central differences inside, one-sided at the borders (edge_order=1)
    du = torch.gradient(P, dim=1)[0]
    dv = torch.gradient(P, dim=0)[0]
    n = torch.linalg.cross(du, dv, dim=2)
    n = torch.where(((n * P).sum(dim=2) > 0)[..., None], -n, n)
    norm = torch.linalg.vector_norm(n, dim=2)
    ok = valid & (norm > 1e-12)
    cos = torch.where(ok, -n[..., 1] / torch.where(ok, norm, torch.ones_like(norm)), torch.ones_like(norm))
    angle = torch.where(ok, torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0))) / 180.0, zero)
    return torch.stack([disp, height.clamp(0, 1), angle], dim=0)


# ----------------------------------------------------------------------------------------- events
def accumulate_events_t(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, t_end: float,
                        height: int, width: int, enc: EventEncoding = EventEncoding(),
                        quantize: bool = True) -> torch.Tensor:
    """Events (1-D tensors of length N: x, y integer pixels, t float64 seconds, p > 0 positive) in
    ``t_end - window_s < t <= t_end`` -> float32 ``3 x H x W`` (``encodings.events.accumulate_events``)."""
    n = x.numel()
    if not (y.numel() == n and t.numel() == n and p.numel() == n):
        raise ValueError(f"event arrays differ in length: x {n}, y {y.numel()}, t {t.numel()}, p {p.numel()}")
    if height <= 0 or width <= 0:
        raise ValueError(f"event image size must be positive, got {height} x {width}")
    xi, yi, tt = x.long(), y.long(), t.double()
    keep = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height) & (tt > t_end - enc.window_s) & (tt <= t_end)
    idx = (yi * width + xi)[keep]
    pos = (p[keep] > 0)
    npix = height * width
    out = torch.zeros(3, npix, dtype=torch.float64, device=x.device)
    for c, name in enumerate(enc.channels):
        if name == "pos":
            out[c] = torch.bincount(idx[pos], minlength=npix).double() / enc.count_scale
        elif name == "neg":
            out[c] = torch.bincount(idx[~pos], minlength=npix).double() / enc.count_scale
        elif name == "time_surface":
            last = torch.full((npix,), -float("inf"), dtype=torch.float64, device=x.device)
            last.scatter_reduce_(0, idx, tt[keep], reduce="amax")
            hit = torch.isfinite(last)
            out[c] = torch.where(hit, torch.exp(-(t_end - last) / enc.tau_s), torch.zeros_like(last))
    # the numpy encoder fills a float32 image, then clips and quantises it
    return finish_t(out.float().view(3, height, width), quantize)


# ------------------------------------------------------------------------------------------ lidar
_LOG_COUNTS16 = float(np.float32(np.log1p(65535.0)))


def _model(camera: CameraModel) -> str:
    return str(camera.model)


def _row_t(p: torch.Tensor, T: torch.Tensor, j: int) -> torch.Tensor:
    """Coordinate ``j`` of ``T`` applied to float64 points ``p`` (N x >=3), elementwise left to right
    as ``encodings.lidar.transform_points`` (no matrix product: BLAS / cuBLAS reorder and fuse)."""
    return p[:, 0] * T[j, 0] + p[:, 1] * T[j, 1] + p[:, 2] * T[j, 2] + T[j, 3]


def project_t(camera: CameraModel, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``CameraModel.project`` in torch: ``N x 3`` float64 optical-frame points -> (uv ``N x 2``
    float64, valid ``N`` bool: z > 1 mm, inside the distortion margin, on a pixel)."""
    z = pts[:, 2]
    front = z > MIN_DEPTH_M
    zs = torch.where(front, z, torch.ones_like(z))
    if camera.use_p:
        P = torch.as_tensor(camera.P, dtype=torch.float64, device=pts.device)
        h = pts @ P[:, :3].T + P[:, 3]
        hz = torch.where(h[:, 2].abs() > 1e-12, h[:, 2], torch.ones_like(h[:, 2]))
        uv = h[:, :2] / hz[:, None]
    else:
        x, y = pts[:, 0] / zs, pts[:, 1] / zs
        K = camera.K
        uv = torch.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], dim=1)
        if np.any(camera.D):
            mw, mh = _DISTORTION_MARGIN * camera.width, _DISTORTION_MARGIN * camera.height
            front = front & (uv[:, 0] > -mw) & (uv[:, 0] < camera.width + mw) \
                & (uv[:, 1] > -mh) & (uv[:, 1] < camera.height + mh)
            uv = _distorted_pixels(camera, x, y, front)
    col, row = torch.floor(uv[:, 0] + 0.5), torch.floor(uv[:, 1] + 0.5)
    valid = front & (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    return uv, valid


def _distorted_pixels(camera: CameraModel, x: torch.Tensor, y: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
    """Distorted pixel coordinates ``N x 2`` of normalised ``x``, ``y`` (the numpy definition:
    OpenCV's projectPoints / fisheye.projectPoints, or the plumb_bob polynomial with skew)."""
    K, D, model = camera.K, [float(v) for v in camera.D], _model(camera)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    r2 = x * x + y * y
    if model == "equidistant":  # OpenCV fisheye: theta_d = theta (1 + k1 t^2 + k2 t^4 + k3 t^6 + k4 t^8)
        r = torch.sqrt(r2)
        th = torch.atan(r)
        t2 = th * th
        thd = th * (1 + t2 * (D[0] + t2 * (D[1] + t2 * (D[2] + t2 * D[3]))))
        scale = torch.where(r > 1e-8, thd / torch.where(r > 1e-8, r, torch.ones_like(r)), torch.ones_like(r))
        xd, yd = x * scale, y * scale
    elif len(D) in (5, 8):
        k1, k2, p1, p2, k3 = D[:5]
        k4, k5, k6 = D[5:8] if len(D) == 8 else (0.0, 0.0, 0.0)
        radial = (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    else:  # thin prism / tilted sensor (12 / 14 coefficients): OpenCV on the host
        pts = torch.stack([x, y, torch.ones_like(x)], dim=1).cpu().numpy()
        uv, _ = camera.project(pts)
        out = torch.from_numpy(uv).to(x.device)
        return torch.where(use[:, None], out, torch.full_like(out, float("nan")))
    uv = torch.stack([fx * xd + cx, fy * yd + cy], dim=1)  # as cv2.projectPoints: the skew K[0, 1] is ignored
    return torch.where(use[:, None], uv, torch.full_like(uv, float("nan")))


def normalize_intensity_t(v: torch.Tensor, units: str) -> torch.Tensor:
    """Raw intensity (N) in ``units`` -> float32 [0, 1] (``encodings.lidar.normalize_intensity``):
    ``unit`` clip, ``byte`` v / 255, ``counts16`` log1p(max(v, 0)) / log1p(65535); non-finite -> 0."""
    v = torch.nan_to_num(v.float(), nan=0.0, posinf=0.0, neginf=0.0)
    if units == "unit":
        out = v
    elif units == "byte":
        out = v * float(np.float32(1.0 / 255.0))
    elif units == "counts16":
        out = torch.log1p(v.clamp(min=0.0)) / _LOG_COUNTS16
    else:
        raise ValueError(f"intensity units must be unit, byte or counts16, got {units!r}")
    return out.clamp(0.0, 1.0)


def nearest_per_pixel_t(pixel: torch.Tensor, depth: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Indices into ``pixel`` of the nearest point per pixel hit, ties -> lowest index
    (``encodings.lidar.nearest_per_pixel`` with ``scatter_reduce`` instead of ``minimum.at``)."""
    if pixel.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=pixel.device)
    zbuf = torch.full((num_pixels,), float("inf"), dtype=depth.dtype, device=depth.device)
    zbuf.scatter_reduce_(0, pixel, depth, reduce="amin")
    win = torch.nonzero(zbuf[pixel] == depth).squeeze(1)
    first = torch.full((num_pixels,), torch.iinfo(torch.long).max, dtype=torch.long, device=pixel.device)
    first.scatter_reduce_(0, pixel[win], win, reduce="amin")
    return win[first[pixel[win]] == win]


def project_lidar_t(points: torch.Tensor, T_cam_lidar: np.ndarray | torch.Tensor, camera: CameraModel,
                    enc: LidarEncoding = LidarEncoding(), quantize: bool = True,
                    intensity_units: str = "unit") -> torch.Tensor:
    """``N x 4`` (x, y, z, intensity) LiDAR-frame points -> float32 ``3 x H x W`` at the camera
    resolution (``encodings.lidar.project_lidar``: nearest point per pixel, channels per ``enc``,
    raw intensity in ``intensity_units``)."""
    if points.dim() != 2 or points.shape[1] < 3:
        raise ValueError(f"lidar points must be N x 4 (x, y, z, intensity), got shape {tuple(points.shape)}")
    dev = points.device
    T = torch.as_tensor(np.asarray(T_cam_lidar, dtype=np.float64) if not isinstance(T_cam_lidar, torch.Tensor)
                        else T_cam_lidar, dtype=torch.float64, device=dev)
    if tuple(T.shape) != (4, 4):
        raise ValueError(f"T_cam_lidar must be 4 x 4, got shape {tuple(T.shape)}")
    H, W = camera.height, camera.width
    xyz_all = points[:, :3].double()
    front = torch.nonzero(_row_t(xyz_all, T, 2) > MIN_DEPTH_M).squeeze(1)
    xyz = xyz_all[front]
    ok = torch.isfinite(xyz).all(dim=1)
    # drivers' (0, 0, 0) "no return" marker is not a point
    ok &= torch.where(ok[:, None], xyz, torch.zeros_like(xyz)).square().sum(dim=1) > _lidar.NO_RETURN_RADIUS_M ** 2
    front, xyz = front[ok], xyz[ok]
    pts = points[front]
    cam = torch.stack([_row_t(xyz, T, j) for j in range(3)], dim=1)
    uv, valid = project_t(camera, cam)
    pix = (torch.floor(uv[valid, 1] + 0.5).long() * W + torch.floor(uv[valid, 0] + 0.5).long())
    keep = nearest_per_pixel_t(pix, cam[valid, 2], H * W)
    src = torch.nonzero(valid).squeeze(1)[keep]
    target = pix[keep]
    out = torch.zeros(3, H * W, dtype=torch.float32, device=dev)
    for c, name in enumerate(enc.channels):
        if name == "range":
            v = torch.sqrt((xyz[src] ** 2).sum(dim=1)) / enc.max_range
        elif name == "intensity":
            v = normalize_intensity_t(pts[src, 3], intensity_units) if pts.shape[1] > 3 else \
                torch.zeros(src.numel(), dtype=torch.float64, device=dev)
        elif name == "height":
            v = (xyz[src, 2] - enc.min_height) / (enc.max_height - enc.min_height)
        elif name == "depth":
            v = cam[src, 2] / enc.max_range
        else:  # LidarEncoding validates names
            raise ValueError(f"unknown lidar channel {name!r}")
        out[c, target] = v.clamp(0.0, 1.0).float()
    return finish_t(out.view(3, H, W), quantize)


# ----------------------------------------------------------------------------------- preprocess
def preprocess_t(images: Mapping[str, torch.Tensor | None], spec: PreprocessSpec,
                 device: torch.device | str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Encoded ``3 x H x W`` float images -> (inputs ``{m: 3 x h x w}`` at ``spec.input_size``,
    available bool[4]) on the images' device: :func:`rmmss_core.preprocess.preprocess` without
    leaving the device (its ``fit`` when defined, else ``resize``; absent modalities are zeros
    after normalisation)."""
    unknown = sorted(set(images) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modality key(s) {unknown}; expected some of {MODALITIES}")
    size = tuple(spec.input_size)
    present = [x for x in images.values() if x is not None]
    dev = torch.device(device) if device is not None else (present[0].device if present else torch.device("cpu"))
    out: dict[str, torch.Tensor] = {}
    available = torch.zeros(len(MODALITIES), dtype=torch.bool)
    for i, m in enumerate(MODALITIES):
        img = images.get(m)
        if img is None:
            out[m] = torch.zeros(3, *size, device=dev)
            continue
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"{m}: expected a 3 x H x W tensor, got shape {tuple(img.shape)}")
        x = _preprocess.fit(img.float(), size, m, spec)
        out[m] = normalize(x, spec.normalization[m])
        available[i] = True
    return out, available
