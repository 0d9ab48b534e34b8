"""sensor_msgs/CameraInfo -> the shared CameraModel (P for rectified images, K + D otherwise)."""
from __future__ import annotations

from typing import Any

import numpy as np

from rmmss_core.encodings import CameraModel
from rmmss_ros.conversions.common import ConversionError


def camera_info_warnings(msg: Any, rectified: bool) -> list[str]:
    """What looks inconsistent between a CameraInfo and the ``camera_info.rectified`` setting.

    Raw images are projected with K + D, rectified ones with P (REP 104). Signs of a mismatch:
    ``rectified=false`` while P carries a stereo baseline (Tx, Ty != 0: KITTI's P_rect_02 /
    P_rect_03, a stereo driver's right camera), or while D is zero but P's intrinsics differ
    from K by more than a pixel (a rectified-only calibration); ``rectified=true`` while D is
    nonzero and P equals [K | 0] (the calibration of an unrectified image). Empty if consistent.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    p = np.asarray(msg.p, dtype=np.float64).reshape(-1)
    if p.size != 12 or not np.any(p):
        return []
    p = p.reshape(3, 4)
    hint = " (camera_info.rectified)"
    out = []
    if not rectified and (abs(p[0, 3]) > 1e-9 or abs(p[1, 3]) > 1e-9):
        out.append(f"camera_info: P has a stereo baseline (Tx = {p[0, 3]:.4g}, Ty = {p[1, 3]:.4g}) but the "
                   f"image is treated as raw (K + D){hint}=false; if it is rectified, set it to true and "
                   "give the extrinsic to the stereo reference camera's rectified frame")
    elif not rectified and not np.any(d) and np.max(np.abs(p[:, :3] - k)) > 1.0:
        out.append("camera_info: D is zero but P's intrinsics differ from K by "
                   f"{np.max(np.abs(p[:, :3] - k)):.1f} px; the image looks rectified: set{hint} to true")
    if rectified and np.any(d) and np.max(np.abs(p[:, :3] - k)) < 1e-6 and not np.any(p[:, 3]):
        out.append(f"camera_info: {hint[2:-1]}=true but D is nonzero and P = [K | 0]: the calibration is of "
                   "an unrectified (raw) image; set it to false unless this topic is image_rect")
    return out


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
