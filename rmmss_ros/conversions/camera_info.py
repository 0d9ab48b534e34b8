"""sensor_msgs/CameraInfo -> the shared CameraModel (P for rectified images, K + D otherwise)."""
from __future__ import annotations

from typing import Any

import numpy as np

from rmmss_core.encodings import CameraModel
from rmmss_ros.conversions.common import ConversionError


def camera_from_info(msg: Any, rectified: bool = False, what: str = "camera_info") -> CameraModel:
    """CameraInfo (width, height, k[9], d[], p[12], distortion_model) -> CameraModel.

    ``rectified``: the image the data are projected into is rectified (use P, ignore D).
    Raises ConversionError naming the problem (zero size, all-zero K, non-finite values...).
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    p = np.asarray(msg.p, dtype=np.float64).reshape(-1)
    for name, v in (("k", k), ("d", d), ("p", p)):
        if not np.all(np.isfinite(v)):
            raise ConversionError(f"{what}: {name} has non-finite values {v.tolist()}")
    try:
        return CameraModel.from_camera_info_fields(
            int(msg.width), int(msg.height), k, d, p if np.any(p) else None,
            str(msg.distortion_model), rectified=rectified)
    except ValueError as e:
        raise ConversionError(f"{what}: {e}") from None
