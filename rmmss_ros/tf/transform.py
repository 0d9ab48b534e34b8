"""Rigid transforms as tf2 represents them: translation (x, y, z) + unit quaternion (x, y, z, w),
with the 4 x 4 matrix, composition, inverse and tf2's interpolation (lerp + shortest-path slerp,
ros2/geometry2 @04e7636:tf2/src/cache.cpp ``TimeCache::interpolate``;
tf2/include/tf2/LinearMath/Quaternion.hpp ``slerp``). No ROS imports.

Convention (REP 103/105, tf2): a transform stamped with parent frame ``P`` and child frame ``C``
maps points expressed in ``C`` to ``P``: ``p_P = R p_C + t``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Rigid:
    """``t`` float64 (3,), ``q`` float64 (4,) unit quaternion (x, y, z, w)."""

    t: np.ndarray
    q: np.ndarray

    @classmethod
    def of(cls, translation: Any, quaternion: Any, what: str = "transform") -> Rigid:
        """Validated: finite values, a quaternion of norm > 0 (normalised here, as tf2 does when
        it receives one; a norm far from 1 is refused as tf2's ``setTransform`` refuses it)."""
        t = np.asarray(translation, np.float64).reshape(-1)
        q = np.asarray(quaternion, np.float64).reshape(-1)
        if t.size != 3 or q.size != 4:
            raise ValueError(f"{what}: translation needs 3 values and rotation 4 (x, y, z, w), got {t.size} and {q.size}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
            raise ValueError(f"{what}: non-finite translation {t.tolist()} or rotation {q.tolist()}")
        n2 = float(q @ q)
        if abs(n2 - 1.0) > 1e-2:  # tf2 BufferCore::setTransformImpl's tolerance on the squared norm
            raise ValueError(f"{what}: rotation quaternion {q.tolist()} is not normalised (norm {np.sqrt(n2):.4g})")
        return cls(t, q / np.sqrt(n2))

    @classmethod
    def from_matrix(cls, T: np.ndarray) -> Rigid:
        """From a 4 x 4 rigid matrix (rotation part orthonormal to 1e-6)."""
        T = np.asarray(T, np.float64).reshape(4, 4)
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError(f"not a rigid transform (rotation part is not a rotation): {T.tolist()}")
        # Shepperd's method: the largest of w, x, y, z first (numerically stable)
        tr = np.trace(R)
        i = int(np.argmax([tr, R[0, 0], R[1, 1], R[2, 2]]))
        if i == 0:
            w = np.sqrt(1.0 + tr) / 2
            q = [(R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w), w]
        elif i == 1:
            x = np.sqrt(1.0 + 2 * R[0, 0] - tr) / 2
            q = [x, (R[0, 1] + R[1, 0]) / (4 * x), (R[0, 2] + R[2, 0]) / (4 * x), (R[2, 1] - R[1, 2]) / (4 * x)]
        elif i == 2:
            y = np.sqrt(1.0 + 2 * R[1, 1] - tr) / 2
            q = [(R[0, 1] + R[1, 0]) / (4 * y), y, (R[1, 2] + R[2, 1]) / (4 * y), (R[0, 2] - R[2, 0]) / (4 * y)]
        else:
            z = np.sqrt(1.0 + 2 * R[2, 2] - tr) / 2
            q = [(R[0, 2] + R[2, 0]) / (4 * z), (R[1, 2] + R[2, 1]) / (4 * z), z, (R[1, 0] - R[0, 1]) / (4 * z)]
        q = np.asarray(q)
        return cls(T[:3, 3].copy(), q / np.sqrt(q @ q))

    @classmethod
    def identity(cls) -> Rigid:
        return cls(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))

    def matrix(self) -> np.ndarray:
        """The 4 x 4 float64 homogeneous matrix."""
        x, y, z, w = self.q
        T = np.eye(4)
        T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        T[:3, 3] = self.t
        return T

    def __mul__(self, other: Rigid) -> Rigid:
        """``self * other``: apply ``other`` first (``T_ab * T_bc = T_ac``)."""
        return Rigid(self.t + quat_rotate(self.q, other.t), quat_mul(self.q, other.q))

    def inverse(self) -> Rigid:
        qi = np.array([-self.q[0], -self.q[1], -self.q[2], self.q[3]])
        return Rigid(-quat_rotate(qi, self.t), qi)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (x, y, z, w) quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate the 3-vector ``v`` by the unit quaternion ``q``."""
    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def slerp(q0: np.ndarray, q1: np.ndarray, ratio: float) -> np.ndarray:
    """tf2's quaternion slerp: along the shortest path (q1 negated when the dot product is
    negative); the two are returned as they are when (nearly) equal."""
    d = float(q0 @ q1)
    if d < 0.0:
        q1, d = -q1, -d
    if d > 1.0 - 1e-12:
        return q0 + (q1 - q0) * ratio
    theta = np.arccos(min(1.0, d))
    s = np.sin(theta)
    return (np.sin((1.0 - ratio) * theta) * q0 + np.sin(ratio * theta) * q1) / s


def interpolate(a: Rigid, b: Rigid, ratio: float) -> Rigid:
    """tf2 TimeCache::interpolate: translation lerp, rotation slerp at ``ratio`` in [0, 1]."""
    q = slerp(a.q, b.q, ratio)
    return Rigid(a.t + (b.t - a.t) * ratio, q / np.sqrt(q @ q))
