"""Pinhole camera model as ROS CameraInfo describes it (no ROS import).

Two projection modes, following sensor_msgs/CameraInfo:

* raw images: intrinsics ``K`` (3 x 3) and plumb_bob distortion ``D = (k1, k2, p1, p2, k3)``;
* rectified images: the 3 x 4 projection matrix ``P`` (distortion already removed).

Optical frame: x right, y down, z forward. Pixel centres sit on integer coordinates (OpenCV /
ROS convention), so a point projecting to ``(u, v)`` lands in column ``floor(u + 0.5)`` and row
``floor(v + 0.5)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Points whose undistorted projection falls further than this fraction of the image size outside
# the image are dropped before distortion: the plumb_bob polynomial is not monotonic far outside
# the calibrated field of view and would fold such points back into the image.
_DISTORTION_MARGIN = 0.5
MIN_DEPTH_M = 1e-3


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A camera: image ``width`` x ``height``, ``K`` 3 x 3, ``D`` (5,) plumb_bob, optional ``P`` 3 x 4.

    With ``use_p=True`` (rectified images) projection uses ``P`` and ignores ``D``; otherwise ``K``
    and ``D`` (raw images).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    P: np.ndarray | None = None
    use_p: bool = False

    def __post_init__(self):
        K = np.asarray(self.K, dtype=np.float64).reshape(-1)
        if K.size != 9:
            raise ValueError(f"camera K must have 9 values (3 x 3), got {K.size}")
        D = np.zeros(5) if self.D is None else np.asarray(self.D, dtype=np.float64).reshape(-1)
        if D.size not in (0, 4, 5, 8):
            raise ValueError(f"camera D must have 4, 5 (plumb_bob) or 8 values, got {D.size}")
        if D.size == 8 and np.any(D[5:] != 0):
            raise ValueError(f"rational_polynomial distortion (k4..k6 = {D[5:]}) is not supported")
        D = np.concatenate([D, np.zeros(5)])[:5]
        P = None
        if self.P is not None:
            P = np.asarray(self.P, dtype=np.float64).reshape(-1)
            if P.size != 12:
                raise ValueError(f"camera P must have 12 values (3 x 4), got {P.size}")
            P = P.reshape(3, 4)
        if self.use_p and (P is None or not np.any(P)):
            raise ValueError("camera use_p=True (rectified image) but P is missing or all zero")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera size must be positive, got {self.width} x {self.height}")
        K = K.reshape(3, 3)
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"camera focal lengths must be > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_camera_info_fields(cls, width: int, height: int, k: Sequence[float],
                                d: Sequence[float] = (), p: Sequence[float] | None = None,
                                distortion_model: str = "plumb_bob",
                                rectified: bool = False) -> CameraModel:
        """Build from CameraInfo's plain fields (``k`` 9, ``d``, ``p`` 12, ``distortion_model``).

        ``rectified=True`` means the image the points are projected into is rectified: use ``P``.
        """
        if distortion_model not in ("plumb_bob", "", "none", "rational_polynomial"):
            raise ValueError(f"unsupported distortion model {distortion_model!r}; use plumb_bob")
        return cls(width=width, height=height, K=np.asarray(k), D=np.asarray(d, dtype=np.float64),
                   P=None if p is None else np.asarray(p), use_p=rectified)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CameraModel:
        """From ``{"width", "height", "K", "D"?, "P"?, "use_p"?}`` (as in ``calib.json``)."""
        missing = [k for k in ("width", "height", "K") if k not in d]
        if missing:
            raise ValueError(f"camera description lacks {missing}; has {sorted(d)}")
        return cls(width=d["width"], height=d["height"], K=np.asarray(d["K"]),
                   D=np.asarray(d.get("D") or np.zeros(5)),
                   P=None if d.get("P") is None else np.asarray(d["P"]), use_p=bool(d.get("use_p", False)))

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "K": self.K.tolist(),
                "D": self.D.tolist(), "P": None if self.P is None else self.P.tolist(),
                "use_p": self.use_p}

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        S = np.diag([sx, sy, 1.0])
        # pixel centres on integers: u' = (u + 0.5) * s - 0.5
        S[0, 2], S[1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
        P = None if self.P is None else S @ self.P
        return CameraModel(width, height, S @ self.K, self.D.copy(), P, self.use_p)

    def project(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project ``N x 3`` points (optical frame, metres) to pixel coordinates.

        Returns ``uv`` float64 ``N x 2`` and ``valid`` bool ``N``: in front of the camera (z > 1 mm)
        and landing on a pixel of the image. ``uv`` of invalid points is meaningless.
        """
        pts = np.asarray(points_cam, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points must be N x 3, got shape {pts.shape}")
        z = pts[:, 2]
        front = z > MIN_DEPTH_M
        zs = np.where(front, z, 1.0)
        if self.use_p:
            assert self.P is not None
            h = pts @ self.P[:, :3].T + self.P[:, 3]
            hz = np.where(np.abs(h[:, 2]) > 1e-12, h[:, 2], 1.0)
            uv = h[:, :2] / hz[:, None]
        else:
            x, y = pts[:, 0] / zs, pts[:, 1] / zs
            K = self.K
            if np.any(self.D):
                u0, v0 = K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]
                mw, mh = _DISTORTION_MARGIN * self.width, _DISTORTION_MARGIN * self.height
                front &= (u0 > -mw) & (u0 < self.width + mw) & (v0 > -mh) & (v0 < self.height + mh)
                x, y = self.distort(x, y)
            uv = np.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], axis=1)
        col, row = np.floor(uv[:, 0] + 0.5), np.floor(uv[:, 1] + 0.5)
        valid = front & (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        return uv, valid

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """plumb_bob distortion of normalised coordinates ``x = X/Z``, ``y = Y/Z`` (arrays, N)."""
        k1, k2, p1, p2, k3 = self.D
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        return xd, yd

    def pixel_indices(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat pixel index ``row * width + col`` (int64, M) of the valid points, and their mask (N)."""
        uv, valid = self.project(points_cam)
        col = np.floor(uv[valid, 0] + 0.5).astype(np.int64)
        row = np.floor(uv[valid, 1] + 0.5).astype(np.int64)
        return row * self.width + col, valid
