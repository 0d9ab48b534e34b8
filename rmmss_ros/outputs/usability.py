""""Cannot use (yet)" is not "broken": which per-sensor problems are errors and which are waits.

The pipeline reports, per frame, a text for each enabled sensor it could not use. Some of those
are malformed input (a cloud without x/y/z, a NaN depth image, a bad CameraInfo): ``errors``. Others
say that a healthy sensor's data cannot be used *yet* because something it needs has not arrived:
a LiDAR cloud or an event stream before the first CameraInfo (the projection needs the
intrinsics). Those are listed under ``unusable`` with the reason, e.g.
``{"lidar": "waiting for camera_info"}``, and never counted as errors.

The pipeline writes those texts from :data:`WAITING` (``waiting_text``), so the split is exact, not
a guess over free text.
"""
from __future__ import annotations

from collections.abc import Mapping

WAITING_FOR_CAMERA_INFO = "waiting for camera_info"
WAITING_FOR_CAMERA = "waiting for a camera image or camera_info"
WAITING_FOR_DEPTH_CAMERA_INFO = "waiting for the depth camera_info (depth.camera_info_topic)"
# sensor -> the texts the pipeline gives when that sensor's data is fine but cannot be used yet
WAITING: dict[str, dict[str, str]] = {
    "lidar": {"lidar: no valid CameraInfo received yet; cannot project the cloud": WAITING_FOR_CAMERA_INFO},
    "event": {"event: no camera image or CameraInfo yet to size the event image": WAITING_FOR_CAMERA},
    "depth": {"depth: no depth CameraInfo received yet on depth.camera_info_topic; cannot reproject the "
              "unregistered depth into the camera": WAITING_FOR_DEPTH_CAMERA_INFO,
              "depth: no valid camera CameraInfo yet; cannot reproject the unregistered depth into the camera":
              WAITING_FOR_CAMERA_INFO},
}


def waiting_text(sensor: str, reason: str) -> str:
    """The pipeline's text for ``sensor`` waiting for ``reason`` (one of WAITING's reasons)."""
    for text, why in WAITING.get(sensor, {}).items():
        if why == reason:
            return text
    raise KeyError(f"no waiting text for {sensor!r} / {reason!r}")


def split_unusable(problems: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``{sensor: text}`` from the pipeline -> (``unusable`` {sensor: reason}, ``errors`` {sensor: text}).

    A sensor whose data is fine but waits for another input is unusable with the reason; while the
    CameraInfo itself is malformed (an ``errors["camera_info"]`` entry) the LiDAR waiting for it is
    unusable because of that, and the CameraInfo stays an error."""
    unusable: dict[str, str] = {}
    errors: dict[str, str] = {}
    for sensor, text in problems.items():
        reason = WAITING.get(sensor, {}).get(text)
        if reason is None:
            errors[sensor] = text
        elif "camera_info" in problems:
            unusable[sensor] = "no valid camera_info (see errors.camera_info)"
        else:
            unusable[sensor] = reason
    return unusable, errors
