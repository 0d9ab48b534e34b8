"""Sensor extrinsics as the node's parameters give them: 16 numbers, row-major, mapping a sensor's
frame into the camera's optical frame (x right, y down, z forward; REP 103 / REP 105).

Light on purpose (numpy only): the parameter table (rmmss_ros.node.params) reads the defaults
without importing the pipeline.
"""
from __future__ import annotations

from typing import Any

import numpy as np

IDENTITY_4X4 = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
# LiDAR (x forward, y left, z up) -> camera optical frame (x right, y down, z forward), row-major.
DEFAULT_T_CAM_LIDAR = (0.0, -1.0, 0.0, 0.0,
                       0.0, 0.0, -1.0, 0.0,
                       1.0, 0.0, 0.0, 0.0,
                       0.0, 0.0, 0.0, 1.0)


def matrix4(values: Any, name: str) -> np.ndarray:
    """16 row-major values -> float64 4 x 4; ValueError naming ``name`` for another count or a
    non-finite value."""
    T = np.asarray(values, dtype=np.float64)
    if T.size != 16:
        raise ValueError(f"{name} must have 16 values, got {T.size}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name} has non-finite values {T.tolist()}")
    return T.reshape(4, 4)
