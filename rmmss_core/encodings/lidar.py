"""LiDAR points projected into the camera image (the MUSES-style LiDAR image).

One implementation for training data (synthetic writer, MUSES reader) and for the ROS node.
"""
from __future__ import annotations

import numpy as np

from rmmss_core import kernels
from rmmss_core.encodings.camera import MIN_DEPTH_M, CameraModel
from rmmss_core.encodings.common import quantize as quantize_values
from rmmss_core.encodings.common import to_uint8
from rmmss_core.spec import LidarEncoding


def transform_points(xyz: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Apply a 4 x 4 rigid transform to ``N x 3`` points -> ``N x 3`` float64.

    Elementwise, ``x R[j,0] + y R[j,1] + z R[j,2] + t[j]`` added left to right, not a matrix
    product: BLAS evaluates that with fused multiply-adds in an order of its own (per CPU), which
    moves results by an ulp and, rarely, a point across a pixel border. This definition is the same
    on every machine, in the compiled kernel (rmmss_core.kernels.lidar) and here.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"transform must be 4 x 4, got shape {T.shape}")
    p = np.asarray(xyz, dtype=np.float64)
    out = np.empty((p.shape[0], 3))
    for j in range(3):
        out[:, j] = _row(p, T, j)
    return out


def _row(p: np.ndarray, T: np.ndarray, j: int) -> np.ndarray:
    """Coordinate ``j`` of ``T`` applied to float64 points ``p`` (N x >=3): ``x T[j,0] + y T[j,1] +
    z T[j,2] + T[j,3]``, left to right."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 in a dropped row: NaN, dropped
        return p[:, 0] * T[j, 0] + p[:, 1] * T[j, 1] + p[:, 2] * T[j, 2] + T[j, 3]


def nearest_per_pixel(pixel: np.ndarray, depth: np.ndarray, num_pixels: int) -> np.ndarray:
    """Indices (into ``pixel``) of the nearest point for every pixel hit, ties -> lowest index.

    ``pixel`` int64 N flat pixel indices in ``[0, num_pixels)``, ``depth`` float N. Vectorised:
    a z-buffer with ``np.minimum.at``, then a second ``minimum.at`` over indices to break ties.
    One ``num_pixels`` scratch buffer (uninitialised: only the cells hit are set and read), used
    as the float64 z-buffer and then, reinterpreted, as the int64 first-index buffer.
    """
    if pixel.size == 0:
        return np.zeros(0, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.float64)
    zbuf = np.empty(num_pixels, dtype=np.float64)
    zbuf[pixel] = np.inf
    np.minimum.at(zbuf, pixel, depth)
    win = np.flatnonzero(zbuf.take(pixel) == depth)
    pw = pixel.take(win)
    first = zbuf.view(np.int64)  # the z-buffer is no longer needed: reuse its memory
    first[pw] = np.iinfo(np.int64).max
    np.minimum.at(first, pw, win)
    return win.take(np.flatnonzero(first.take(pw) == win))


# A point closer than this to the LiDAR origin is a "no return" marker (Ouster and other
# organised clouds publish (0, 0, 0) for beams without an echo), never a measurement.
NO_RETURN_RADIUS_M = 1e-3
_LOG_COUNTS16 = np.float32(np.log1p(65535.0))


def intensity_units_for(dtype: np.dtype | str) -> str:
    """The intensity units a driver's field datatype implies (see rmmss_core.spec.INTENSITY_UNITS).

    uint8 -> ``byte``; 16/32-bit integers -> ``counts16`` (Ouster ``signal``/``reflectivity``
    are uint16 photon counts); float32/float64 -> ``byte`` (Velodyne, Hesai, Livox, RoboSense
    ROS drivers and nuScenes / KITTI dumps carry 0..255 as float). A float intensity from a
    counts-based driver needs the explicit ``counts16`` (node parameter ``lidar.intensity_units``).
    """
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        return "byte" if dt.itemsize == 1 else "counts16"
    if dt.kind == "f":
        return "byte"
    raise ValueError(f"lidar intensity datatype {dt} is not numeric")


def normalize_intensity(values: np.ndarray, units: str) -> np.ndarray:
    """Raw intensity (N) in ``units`` -> float32 N in [0, 1], the ``intensity`` channel's value.

    ``unit``: clip(v, 0, 1); ``byte``: clip(v / 255, 0, 1); ``counts16``:
    log1p(max(v, 0)) / log1p(65535), clipped (photon counts span 4 decades: a log keeps 100,
    1000, 3000 and 60000 counts apart). Non-finite values become 0. ``auto`` is not accepted here:
    resolve it with :func:`intensity_units_for` from the field datatype first.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if units == "unit":
        out = v
    elif units == "byte":
        out = v * np.float32(1.0 / 255.0)
    elif units == "counts16":
        out = np.log1p(np.maximum(v, np.float32(0.0))) / _LOG_COUNTS16
    else:
        raise ValueError(f"intensity units must be unit, byte or counts16 (resolve 'auto' from the field "
                         f"datatype), got {units!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def valid_points(xyz: np.ndarray) -> np.ndarray:
    """Bool N: finite x, y, z and not a no-return marker at the origin (see NO_RETURN_RADIUS_M).
    ``xyz``: N x >=3 float64; ``x x + y y + z z`` left to right (as the compiled kernel)."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / Inf -> non-finite
        r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1] + xyz[:, 2] * xyz[:, 2]
    return np.isfinite(r2) & (r2 > NO_RETURN_R2)


NO_RETURN_R2 = NO_RETURN_RADIUS_M ** 2


def project_lidar(points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel,
                  enc: LidarEncoding = LidarEncoding(), quantize: bool = True,
                  intensity_units: str = "unit") -> np.ndarray:
    """Project LiDAR points into the camera and encode them as a 3-channel image.

    points: ``N x 4`` (x, y, z, intensity) in the LiDAR frame (``N x 3`` -> intensity 0; extra
    columns ignored); intensity in ``intensity_units`` (unit / byte / counts16, see
    :func:`normalize_intensity`). T_cam_lidar: 4 x 4, maps LiDAR-frame points into the camera
    optical frame. Points behind the camera, out of view, non-finite or at the LiDAR origin (no
    return) are dropped; when several points hit one pixel the nearest (smallest camera z,
    depth_image_proc's rule) wins, ties -> the lowest point index.

    ``camera`` is the image grid to project into: the camera itself, or the network input's view
    of it (``rmmss_core.preprocess.InputGeometry.camera``), which keeps every return the input
    resolution can hold (projection at the network resolution).

    Channels per ``enc.channels``: ``range`` = LiDAR-frame distance sqrt(x^2 + y^2 + z^2) /
    max_range, ``intensity`` normalised per units, ``height`` = (z_lidar - min_height) /
    (max_height - min_height), ``depth`` = camera z / max_range, all clipped to [0, 1]; pixels
    without a return are 0. Returns float32 ``H x W x 3`` (camera height x width), on the 1/255
    grid (``round(v * 255) / 255``) if ``quantize``.
    """
    target, values = lidar_returns(points, T_cam_lidar, camera, enc, intensity_units)
    out = np.zeros((camera.height * camera.width, 3), dtype=np.float32)
    out[target] = quantize_values(values) if quantize else values
    return out.reshape(camera.height, camera.width, 3)  # pixels without a return stay exactly 0


def project_lidar_codes(points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel,
                        enc: LidarEncoding = LidarEncoding(),
                        intensity_units: str = "unit") -> tuple[np.ndarray, np.ndarray]:
    """:func:`project_lidar` with ``quantize=True`` as sparse 8-bit codes: (flat pixel index
    ``row * width + col`` int64 M, uint8 ``M x 3`` codes ``round(v * 255)``); every other pixel is
    0. ``from_uint8`` of the codes scattered into a zero image equals :func:`project_lidar`'s
    output exactly (same returns, same values). Returns in ascending point order.
    With the compiled kernels, geometry and codes both run there (rmmss_core.kernels.lidar)."""
    pts, T = _checked(points, T_cam_lidar)
    pix, rows, z = _returns(pts, T, camera)
    codes = None
    if kernels.enabled():
        from rmmss_core.kernels.lidar import return_codes
        codes = return_codes(pts, rows, z, enc, intensity_units)
    if codes is None:
        codes = to_uint8(_values(pts, rows, z, enc, intensity_units))
    return pix, codes


def _checked(points: np.ndarray, T_cam_lidar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"lidar points must be N x 4 (x, y, z, intensity), got shape {pts.shape}")
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_cam_lidar must be 4 x 4, got shape {T.shape}")
    return pts, T


def lidar_returns(points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel,
                  enc: LidarEncoding = LidarEncoding(),
                  intensity_units: str = "unit", precull: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The returns :func:`project_lidar` keeps: (flat pixel index int64 M, float32 ``M x 3``
    channel values clipped to [0, 1], not quantised), one per pixel hit, in float64 geometry, in
    ascending point order.

    The geometry runs in the compiled kernel (rmmss_core.kernels.lidar) when available, else in
    :func:`_nearest_returns_numpy`: the same returns bit for bit. ``precull`` (numpy path): run the
    exact stage only on :func:`view_candidates` (the same result; False runs it on every point,
    the reference the tests and the benchmark compare against).
    """
    pts, T = _checked(points, T_cam_lidar)
    pix, rows, z = _returns(pts, T, camera, precull)
    return pix, _values(pts, rows, z, enc, intensity_units)


def _returns(pts: np.ndarray, T: np.ndarray, camera: CameraModel,
             precull: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat pixel index, row of ``pts``, camera z) of the nearest return per pixel hit: the
    compiled kernel when available and applicable, else :func:`_nearest_returns_numpy`."""
    if kernels.enabled():
        from rmmss_core.kernels.lidar import nearest_returns
        found = nearest_returns(pts, T, camera, NO_RETURN_R2, MIN_DEPTH_M)
        if found is not None:
            return found
    return _nearest_returns_numpy(pts, T, camera, precull)


def _values(pts: np.ndarray, rows: np.ndarray, z: np.ndarray, enc: LidarEncoding, units: str) -> np.ndarray:
    """float32 ``M x 3`` channel values (clipped to [0, 1]) of the returns ``rows`` of ``pts`` with
    camera z ``z``."""
    xyz = np.asarray(pts.take(rows, axis=0)[:, :3], dtype=np.float64)
    values = np.empty((rows.size, 3), dtype=np.float32)
    for c, name in enumerate(enc.channels):  # values clipped to [0, 1] in _channel
        values[:, c] = _channel(name, pts, rows, xyz, z, enc, units)
    return values


def _nearest_returns_numpy(pts: np.ndarray, T: np.ndarray, camera: CameraModel,
                           precull: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numpy reference of the geometry: (flat pixel index int64 M, row of ``pts`` int64 M
    ascending, camera z float64 M) of the nearest return per pixel hit."""
    cand = view_candidates(pts, T, camera) if precull else None  # float32: a superset of the returns kept
    if cand is None:
        xyz_all = np.asarray(pts[:, :3], dtype=np.float64)
    else:  # the exact float64 stage below on the candidates only, in their original order
        xyz_all = np.asarray(pts.take(cand, axis=0)[:, :3], dtype=np.float64)
    # cull points behind the camera first (most of a 360-degree scan); NaN z fails the test too
    ok = valid_points(xyz_all)  # (NaN / origin); on all points: cheaper than gathering first
    ok &= _row(xyz_all, T, 2) > MIN_DEPTH_M
    if ok.all():
        front, xyz = np.arange(xyz_all.shape[0]), xyz_all
    else:
        front = np.flatnonzero(ok)
        xyz = xyz_all.take(front, axis=0)
    if cand is not None:
        front = cand.take(front)  # rows of pts
    cam = transform_points(xyz, T)
    pix, valid = _pixel_indices(camera, cam)
    vidx = np.flatnonzero(valid)
    keep = nearest_per_pixel(pix, cam[:, 2].take(vidx), camera.height * camera.width)
    src = vidx.take(keep)
    return pix.take(keep), front.take(src), cam[:, 2].take(src)


# Safety margin of the float32 pre-cull, relative to the largest possible magnitude of a plane's
# terms: float32 evaluation (inputs, coefficients, three products and three sums) errs by at most
# ~8 * 2^-24 = 4.8e-7 of it, so 1e-5 keeps every point the exact stage can keep with 20x to spare.
_CULL_REL_MARGIN = 1e-5
# Beyond this a plane's float32 terms could overflow (float32 max 3.4e38): no cull then (e.g. the
# garbage coordinates of a byte-swapped cloud), the exact stage alone decides.
_CULL_MAX_TERM = 1e30


def view_candidates(points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel) -> np.ndarray | None:
    """Rows of ``points`` (``N x >=3``, LiDAR frame) that may project into ``camera``: int64 M,
    ascending, or None when no cull is made (non-finite coordinates present, or no points).

    A conservative float32 pre-cull for :func:`lidar_returns`' exact float64 stage: a point the
    exact stage keeps has camera z > MIN_DEPTH_M and, for a pinhole camera projected with K,
    ``0 <= u + 0.5 < W`` and ``0 <= v + 0.5 < H``; multiplied by z > 0 these are five half-spaces
    ``c . p + d >= 0`` in the LiDAR frame (the image bounds only for an undistorted K camera; a
    distorted or P camera gets the z plane alone). Each is evaluated in float32 with a margin of
    ``_CULL_REL_MARGIN * (|c| . max|p| + |d|)`` (max|p| per coordinate over the cloud), far above float32's rounding error, so every
    point the exact stage keeps is a candidate (points it drops may be too: it drops them again).
    No cull either when that bound exceeds ``_CULL_MAX_TERM`` (float32 could overflow).
    Keeping the candidates' order keeps the nearest-return tie rule (lowest index) unchanged.
    """
    n = points.shape[0]
    if n == 0:
        return None
    with np.errstate(over="ignore"):  # a float64 beyond float32's range: inf, then no cull (below)
        xyz = np.asarray(points[:, :3], dtype=np.float32)  # a strided view for a float32 N x 4 cloud
    R, t = T_cam_lidar[:3, :3], T_cam_lidar[:3, 3]
    planes = [(np.array([0.0, 0.0, 1.0]), -MIN_DEPTH_M)]
    if not camera.use_p and not np.any(camera.D):
        K, W, H = camera.K, camera.width, camera.height
        planes += [(np.array([K[0, 0], K[0, 1], K[0, 2] + 0.5]), 0.0),        # u + 0.5 >= 0
                   (np.array([-K[0, 0], -K[0, 1], W - K[0, 2] - 0.5]), 0.0),  # u + 0.5 < W
                   (np.array([0.0, K[1, 1], K[1, 2] + 0.5]), 0.0),            # v + 0.5 >= 0
                   (np.array([0.0, -K[1, 1], H - K[1, 2] - 0.5]), 0.0)]       # v + 0.5 < H
    C = np.stack([a @ R for a, _ in planes])  # P x 3, float64
    cols = [xyz[:, 0], xyz[:, 1], xyz[:, 2]]
    with np.errstate(invalid="ignore", over="ignore"):
        p_max = np.array([max(c.max(), -c.min()) for c in cols], dtype=np.float64)  # NaN stays NaN
    if not np.all(np.isfinite(p_max)):
        return None
    d = np.array([a @ t + b for a, b in planes])
    bound = np.abs(C) @ p_max + np.abs(d)  # the largest magnitude any float32 term can reach
    if not np.all(bound < _CULL_MAX_TERM):  # float32 could overflow (inf - inf = NaN drops a point)
        return None
    d += _CULL_REL_MARGIN * bound
    C32, d32 = C.astype(np.float32), d.astype(np.float32)
    worst = tmp = None
    for k in range(len(planes)):  # elementwise float32: c0 x + c1 y + c2 z + d per plane
        v = np.multiply(cols[0], C32[k, 0], out=tmp)
        for j in (1, 2):
            if C32[k, j] != 0:
                v += cols[j] * C32[k, j]
        v += d32[k]
        if worst is None:
            worst, tmp = v, np.empty_like(v)
        else:
            np.minimum(worst, v, out=worst)
    return np.flatnonzero(worst >= 0)


def _pixel_indices(camera: CameraModel, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``camera.pixel_indices(cam)``; for a camera without distortion projected with K, the same
    arithmetic (``CameraModel.project``'s formulas, operation for operation) without its N x 2
    intermediates."""
    if camera.use_p or np.any(camera.D):
        return camera.pixel_indices(cam)
    z = cam[:, 2]
    front = z > MIN_DEPTH_M
    zs = np.where(front, z, 1.0)
    K = camera.K
    y = np.divide(cam[:, 1], zs)
    u = np.divide(cam[:, 0], zs)  # x, then u in place: same operations, fewer temporaries
    u *= K[0, 0]
    if K[0, 1] != 0.0:  # skipping a 0 * y term is exact (adding +-0 changes no sum but -0, and floor(-0 + 0.5) = 0)
        u += K[0, 1] * y
    u += K[0, 2]
    u += 0.5
    col = np.floor(u, out=u)
    y *= K[1, 1]
    y += K[1, 2]
    y += 0.5
    row = np.floor(y, out=y)
    valid = front & (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    idx = np.flatnonzero(valid)  # then take: 5x faster than boolean-mask indexing
    return row.take(idx).astype(np.int64) * camera.width + col.take(idx).astype(np.int64), valid


def _channel(name: str, pts: np.ndarray, rows: np.ndarray, xyz: np.ndarray, z: np.ndarray,
             enc: LidarEncoding, units: str) -> np.ndarray:
    """Channel ``name`` of the kept returns, clipped to [0, 1]: ``rows`` of ``pts``, their LiDAR-frame
    coordinates ``xyz`` (M x 3 float64) and camera z ``z`` (M float64)."""
    if name == "range":  # in the LiDAR frame: the sensor's own measurement; (x² + y²) + z²
        v = np.sqrt(xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1] + xyz[:, 2] * xyz[:, 2]) / enc.max_range
    elif name == "intensity":
        v = normalize_intensity(pts[:, 3].take(rows), units) if pts.shape[1] > 3 else np.zeros(rows.size)
    elif name == "height":
        v = (xyz[:, 2] - enc.min_height) / (enc.max_height - enc.min_height)
    elif name == "depth":
        v = z / enc.max_range
    else:  # LidarEncoding validates names; kept for safety
        raise ValueError(f"unknown lidar channel {name!r}")
    return np.clip(v, 0.0, 1.0)
