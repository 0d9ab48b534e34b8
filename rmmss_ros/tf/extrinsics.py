"""Where each sensor's extrinsic comes from (``extrinsics.source``), without ROS.

* ``parameters``: the 16-number parameter (``lidar.extrinsic``, ``event.extrinsic``,
  ``depth.extrinsic``), set or default;
* ``tf``: the chain from the sensor message's ``header.frame_id`` to the camera's, composed by
  the :class:`~rmmss_ros.tf.buffer.TransformBuffer` at the message stamp (static chains cached
  until /tf_static changes); no chain: the sensor is missing for the frame, the error naming both
  frames;
* ``auto``: the parameter when it was set (differs from its default), else TF when the chain
  exists, else the default parameter, said in the status ("lidar: lidar.extrinsic default (not
  set); no transform from os_lidar to camera_color_optical_frame"). A chain TF has but not at
  the message's stamp (a dynamic link outside its cached span) makes the sensor missing for that
  frame with either source: a default would be wrong, not missing.

:meth:`Extrinsics.status` says per sensor which source served the last frame and what is missing
(the node's diagnostics and ``rmmss replay`` print it).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rmmss_ros.tf.buffer import TransformBuffer, TransformError, TransformExtrapolationError, frame_name

SOURCES = ("auto", "tf", "parameters")
PARAMS = {"lidar": "lidar.extrinsic", "event": "event.extrinsic", "depth": "depth.extrinsic"}


@dataclass
class SensorStatus:
    source: str = ""  # "parameters" | "tf" | "" (not used yet)
    detail: str = ""  # e.g. "lidar.extrinsic (set)" or "camera_color_optical_frame <- os_lidar (static)"
    missing: str = ""  # what is missing ("" when nothing)
    level: int = 0  # 0 OK, 1 WARN (a default stands in), 2 ERROR (no extrinsic: sensor missing)

    def text(self, sensor: str) -> str:
        t = f"{sensor}: extrinsic from {self.source or 'nothing yet'}"
        t += f" ({self.detail})" if self.detail else ""
        return t + (f"; {self.missing}" if self.missing else "")


class Extrinsics:
    """``Extrinsics(source, params, defaults, buffer).matrix(sensor, sensor_frame, camera_frame,
    stamp_ns) -> T_camera_sensor`` (4 x 4 float64). ``params`` / ``defaults``: sensor -> 4 x 4 (the
    parameter's value and its default); ``buffer``: None when TF is unavailable (no tf2_msgs)."""

    def __init__(self, source: str, params: Mapping[str, np.ndarray], defaults: Mapping[str, np.ndarray],
                 buffer: TransformBuffer | None = None, tf_unavailable: str = ""):
        if source not in SOURCES:
            raise ValueError(f"extrinsics.source must be one of {SOURCES}, got {source!r}")
        self.source = source
        self.params = {k: np.asarray(v, np.float64).reshape(4, 4) for k, v in params.items()}
        self.defaults = {k: np.asarray(v, np.float64).reshape(4, 4) for k, v in defaults.items()}
        self.buffer = buffer
        self.tf_unavailable = tf_unavailable
        self._status: dict[str, SensorStatus] = {}
        self._static: dict[tuple[str, str], np.ndarray] = {}
        self._static_version = -1

    def is_set(self, sensor: str) -> bool:
        return not np.array_equal(self.params[sensor], self.defaults[sensor])

    def status(self) -> dict[str, SensorStatus]:
        return dict(self._status)

    def matrix(self, sensor: str, sensor_frame: str, camera_frame: str, stamp_ns: int | None) -> np.ndarray:
        """T_camera_sensor for one message. With source ``tf`` a missing chain raises TransformError
        naming both frames (the sensor is then missing for the frame); ``auto`` falls back to the
        default parameter and says so in :meth:`status`."""
        param = PARAMS[sensor]
        if self.source == "parameters" or (self.source == "auto" and self.is_set(sensor)):
            self._status[sensor] = SensorStatus("parameters", f"{param} ({'set' if self.is_set(sensor) else 'default'})")
            return self.params[sensor]
        try:
            T, detail = self._tf(sensor_frame, camera_frame, stamp_ns)
        except TransformExtrapolationError as e:  # TF has the chain but not at this stamp: missing now
            self._status[sensor] = SensorStatus("tf", "", str(e), 2)
            raise
        except TransformError as e:
            if self.source == "tf":
                self._status[sensor] = SensorStatus("tf", "", str(e), 2)
                raise
            self._status[sensor] = SensorStatus("parameters", f"{param} default (not set)", str(e), 1)
            return self.params[sensor]
        self._status[sensor] = SensorStatus("tf", detail)
        return T

    def _tf(self, sensor_frame: str, camera_frame: str, stamp_ns: int | None) -> tuple[np.ndarray, str]:
        src, dst = frame_name(sensor_frame), frame_name(camera_frame)
        if src and src == dst:  # the sensor is in the camera's frame: nothing to look up
            return np.eye(4), f"{dst} (same frame)"
        if self.buffer is None:
            raise TransformError(f"no transform from {src or '?'} to {dst or '?'}: "
                                 f"{self.tf_unavailable or 'TF is not available'}")
        if not src or not dst:
            raise TransformError(f"no transform from {src or '?'} to {dst or '?'}: the "
                                 f"{'sensor' if not src else 'camera'} message has an empty header.frame_id")
        version = self.buffer.static_version
        if version != self._static_version:
            self._static.clear()
            self._static_version = version
        key = (dst, src)
        T = self._static.get(key)
        if T is not None:
            return T, f"{dst} <- {src} (static)"
        T = self.buffer.lookup(dst, src, stamp_ns)
        if self.buffer.is_static_chain(dst, src):
            self._static[key] = T
            return T, f"{dst} <- {src} (static)"
        return T, f"{dst} <- {src} (at the message stamp)"
