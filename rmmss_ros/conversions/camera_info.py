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


def binning_and_roi(msg: Any) -> tuple[int, int, int, int, int, int]:
    """``(binning_x, binning_y, x_offset, y_offset, roi_width, roi_height)`` of a CameraInfo, with
    REP 104's defaults: binning 0 = 1, an all-zero ROI = the full ``width`` x ``height``. Messages
    without these fields (plain objects in tests) count as unbinned and uncropped."""
    bx = int(getattr(msg, "binning_x", 0) or 0) or 1
    by = int(getattr(msg, "binning_y", 0) or 0) or 1
    roi = getattr(msg, "roi", None)
    x0, y0, rw, rh = ((int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
                      if roi is not None else (0, 0, 0, 0))
    if (x0, y0, rw, rh) == (0, 0, 0, 0):
        rw, rh = int(msg.width), int(msg.height)
    return bx, by, x0, y0, rw, rh


def image_size_of_info(msg: Any) -> tuple[int, int]:
    """``(width, height)`` of the image a CameraInfo describes: its ROI binned (REP 104), which is
    ``(msg.width, msg.height)`` for an unbinned, uncropped camera."""
    bx, by, _, _, rw, rh = binning_and_roi(msg)
    return rw // bx, rh // by


def check_camera_info(width: int, height: int, image_size: tuple[int, int] | None, max_pixels: int) -> str | None:
    """Why a CameraInfo of ``width`` x ``height`` is unusable, or None. It must match the camera
    image (``image_size`` = (H, W) of the last camera image, None before one was seen) or, before
    any image, stay within ``max_pixels``: a bogus 30000 x 30000 CameraInfo would otherwise make
    the LiDAR projection allocate gigabytes."""
    if width <= 0 or height <= 0:
        return f"CameraInfo size {width}x{height} is empty"
    if image_size is not None and (height, width) != tuple(image_size):
        return (f"CameraInfo size {width}x{height} does not match the camera image "
                f"{image_size[1]}x{image_size[0]}; ignored")
    if image_size is None and width * height > max_pixels:
        return (f"CameraInfo size {width}x{height} exceeds camera_info.max_pixels={max_pixels} "
                "(no camera image yet to check it against); ignored")
    return None


def camera_info_key(msg: Any) -> tuple:
    """What a CameraModel built from ``msg`` depends on (for caches that rebuild it only when it changes)."""
    return (int(msg.width), int(msg.height), tuple(msg.k), tuple(msg.d), tuple(msg.p), str(msg.distortion_model),
            binning_and_roi(msg))


def camera_from_info(msg: Any, rectified: bool = False, what: str = "camera_info") -> CameraModel:
    """CameraInfo (width, height, k[9], d[], p[12], distortion_model, binning, roi) -> CameraModel
    of the image the driver publishes.

    ``rectified``: the image the data are projected into is rectified (use P, ignore D).
    Binning and ROI (REP 104: K, D and P describe the full-resolution sensor; the image is the ROI
    binned) give the camera of the reduced image, as image_geometry's PinholeCameraModel does
    (ros-perception/vision_opencv@51ca543:image_geometry/src/pinhole_camera_model.cpp,
    ``fromCameraInfo`` and ``reducedResolution``; read, not copied): principal points moved by the
    ROI offset, then the first row of K and P divided by ``binning_x``, the second by
    ``binning_y``; size = ROI size // binning. A pixel of the reduced image is then
    ``((u - x_offset) / binning_x, (v - y_offset) / binning_y)`` of the full one.
    Raises ConversionError naming the problem (zero size, all-zero K, non-finite values, an ROI
    outside the sensor...).
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    p = np.asarray(msg.p, dtype=np.float64).reshape(-1)
    for name, v in (("k", k), ("d", d), ("p", p)):
        if not np.all(np.isfinite(v)):
            raise ConversionError(f"{what}: {name} has non-finite values {v.tolist()}")
    bx, by, x0, y0, rw, rh = binning_and_roi(msg)
    if x0 + rw > int(msg.width) or y0 + rh > int(msg.height) or rw // bx == 0 or rh // by == 0:
        raise ConversionError(f"{what}: roi {rw}x{rh} at ({x0}, {y0}) with binning {bx}x{by} leaves no image "
                              f"inside the {int(msg.width)}x{int(msg.height)} sensor")
    try:
        cam = CameraModel.from_camera_info_fields(
            int(msg.width), int(msg.height), k, d, p if np.any(p) else None,
            str(msg.distortion_model), rectified=rectified)
    except ValueError as e:
        raise ConversionError(f"{what}: {e}") from None
    if (bx, by, x0, y0, rw, rh) == (1, 1, 0, 0, int(msg.width), int(msg.height)):
        return cam
    S = np.array([[1.0 / bx, 0.0, -x0 / bx], [0.0, 1.0 / by, -y0 / by], [0.0, 0.0, 1.0]])
    P = None if cam.P is None else S @ cam.P
    return CameraModel(rw // bx, rh // by, S @ cam.K, cam.D.copy(), P, cam.use_p, cam.model)
