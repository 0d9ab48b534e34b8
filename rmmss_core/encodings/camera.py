"""Camera model as ROS CameraInfo describes it (no ROS import); distortion through OpenCV.

Two projection modes, following sensor_msgs/CameraInfo (REP 104):

* raw images: intrinsics ``K`` (3 x 3) and distortion ``D`` of ``model`` ``plumb_bob``
  (k1, k2, p1, p2, k3; OpenCV's 5-coefficient model), ``rational_polynomial`` (k1, k2, p1, p2,
  k3, k4, k5, k6; OpenCV's 8-coefficient model) or ``equidistant`` (k1..k4; OpenCV's fisheye
  model), projected with ``cv2.projectPoints`` / ``cv2.fisheye.projectPoints``;
* rectified images: the 3 x 4 projection matrix ``P`` (distortion already removed). ``P``'s
  fourth column (Tx = -fx' B, Ty) is applied as CameraInfo defines it: for the second camera of a
  stereo pair the points must then be in the rectified frame of the *first* camera (KITTI's
  ``R_rect_00 @ Tr_velo_to_cam``), exactly as KITTI's ``P_rect_02`` is used.

Optical frame: x right, y down, z forward. Pixel centres sit on integer coordinates (OpenCV /
ROS convention), so a point projecting to ``(u, v)`` lands in column ``floor(u + 0.5)`` and row
``floor(v + 0.5)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

# Points whose undistorted projection falls further than this fraction of the image size outside
# the image are dropped before distortion: the plumb_bob polynomial is not monotonic far outside
# the calibrated field of view and would fold such points back into the image.
_DISTORTION_MARGIN = 0.5
MIN_DEPTH_M = 1e-3
DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
# CameraInfo spellings of "no distortion"
_NO_DISTORTION = ("", "none")


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A camera: image ``width`` x ``height``, ``K`` 3 x 3, ``D`` of distortion ``model``, optional
    ``P`` 3 x 4.

    With ``use_p=True`` (rectified images) projection uses ``P`` and ignores ``D``; otherwise ``K``
    and ``D`` (raw images). ``D`` is kept at the model's length: 5 (plumb_bob; 4 or 8 values with
    zero k4..k6 are accepted), 8 (rational_polynomial), 4 (equidistant).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    P: np.ndarray | None = None
    use_p: bool = False
    model: str = "plumb_bob"

    def __post_init__(self):
        K = np.asarray(self.K, dtype=np.float64).reshape(-1)
        if K.size != 9:
            raise ValueError(f"camera K must have 9 values (3 x 3), got {K.size}")
        model = "plumb_bob" if self.model in _NO_DISTORTION else str(self.model)
        if model not in DISTORTION_MODELS:
            raise ValueError(f"unsupported distortion model {self.model!r}; supported: {sorted(DISTORTION_MODELS)}")
        D = np.zeros(0) if self.D is None else np.asarray(self.D, dtype=np.float64).reshape(-1)
        if model == "plumb_bob":
            if D.size not in (0, 4, 5, 8):
                raise ValueError(f"camera D must have 4, 5 (plumb_bob) or 8 values, got {D.size}")
            if D.size == 8 and np.any(D[5:] != 0):
                model = "rational_polynomial"  # 8 coefficients with k4..k6 are OpenCV's rational model
            else:
                D = np.concatenate([D, np.zeros(5)])[:5]
        elif model == "rational_polynomial":
            if D.size not in (5, 8, 12, 14):
                raise ValueError(f"rational_polynomial D must have 8 values (k1 k2 p1 p2 k3 k4 k5 k6), got {D.size}")
            D = np.concatenate([D, np.zeros(8)])[:max(8, D.size)]
        elif D.size != 4:
            raise ValueError(f"equidistant D must have 4 values (k1..k4), got {D.size}")
        if not np.all(np.isfinite(D)):
            raise ValueError(f"camera D has non-finite values {D.tolist()}")
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
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_camera_info_fields(cls, width: int, height: int, k: Sequence[float],
                                d: Sequence[float] = (), p: Sequence[float] | None = None,
                                distortion_model: str = "plumb_bob",
                                rectified: bool = False) -> CameraModel:
        """Build from CameraInfo's plain fields (``k`` 9, ``d``, ``p`` 12, ``distortion_model``).

        ``rectified=True`` means the image the points are projected into is rectified: use ``P``
        (the distortion model is then only checked for being known).
        """
        return cls(width=width, height=height, K=np.asarray(k), D=np.asarray(d, dtype=np.float64),
                   P=None if p is None else np.asarray(p), use_p=rectified, model=distortion_model)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CameraModel:
        """From ``{"width", "height", "K", "D"?, "P"?, "use_p"?, "model"?}`` (as in ``calib.json``)."""
        missing = [k for k in ("width", "height", "K") if k not in d]
        if missing:
            raise ValueError(f"camera description lacks {missing}; has {sorted(d)}")
        return cls(width=d["width"], height=d["height"], K=np.asarray(d["K"]),
                   D=np.asarray(d.get("D") or np.zeros(5)),
                   P=None if d.get("P") is None else np.asarray(d["P"]), use_p=bool(d.get("use_p", False)),
                   model=str(d.get("model", "plumb_bob")))

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "K": self.K.tolist(),
                "D": self.D.tolist(), "P": None if self.P is None else self.P.tolist(),
                "use_p": self.use_p, "model": self.model}

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        S = np.diag([sx, sy, 1.0])
        # pixel centres on integers: u' = (u + 0.5) * s - 0.5
        S[0, 2], S[1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
        P = None if self.P is None else S @ self.P
        return CameraModel(width, height, S @ self.K, self.D.copy(), P, self.use_p, self.model)

    def window(self, x0: float, y0: float, width: int, height: int) -> CameraModel:
        """The camera seen through a ``width`` x ``height`` window whose pixel (0, 0) is this
        camera's pixel (x0, y0): a crop (x0, y0 >= 0) or a padded canvas (negative offsets)."""
        S = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        P = None if self.P is None else S @ self.P
        return CameraModel(width, height, S @ self.K, self.D.copy(), P, self.use_p, self.model)

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
            uv = np.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], axis=1)
            if np.any(self.D):
                mw, mh = _DISTORTION_MARGIN * self.width, _DISTORTION_MARGIN * self.height
                front &= ((uv[:, 0] > -mw) & (uv[:, 0] < self.width + mw)
                          & (uv[:, 1] > -mh) & (uv[:, 1] < self.height + mh))
                uv = self._distorted_pixels(x, y, front)
        col, row = np.floor(uv[:, 0] + 0.5), np.floor(uv[:, 1] + 0.5)
        valid = front & (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        return uv, valid

    def _distorted_pixels(self, x: np.ndarray, y: np.ndarray, use: np.ndarray) -> np.ndarray:
        """OpenCV projection of normalised coordinates (N) -> pixel ``N x 2`` (rows not in ``use``
        are left at NaN)."""
        uv = np.full((x.size, 2), np.nan)
        idx = np.flatnonzero(use)
        if idx.size == 0:
            return uv
        obj = np.stack([x[idx], y[idx], np.ones(idx.size)], axis=1).reshape(-1, 1, 3)
        zero = np.zeros(3)
        if self.model == "equidistant":
            img, _ = cv2.fisheye.projectPoints(obj, zero, zero, self.K, self.D.reshape(4, 1))
        else:
            img, _ = cv2.projectPoints(obj, zero, zero, self.K, self.D)
        uv[idx] = img.reshape(-1, 2)
        return uv

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distorted normalised coordinates of ``x = X/Z``, ``y = Y/Z`` (arrays, N), by OpenCV."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        uv = self._distorted_pixels(x, y, np.ones(x.size, dtype=bool))
        K = self.K
        yd = (uv[:, 1] - K[1, 2]) / K[1, 1]
        xd = (uv[:, 0] - K[0, 2] - K[0, 1] * yd) / K[0, 0]
        return xd, yd

    def pixel_indices(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat pixel index ``row * width + col`` (int64, M) of the valid points, and their mask (N)."""
        uv, valid = self.project(points_cam)
        col = np.floor(uv[valid, 0] + 0.5).astype(np.int64)
        row = np.floor(uv[valid, 1] + 0.5).astype(np.int64)
        return row * self.width + col, valid
