"""Robot inputs as robots send them, turned into what the encoders take (issue #22), for the node
and ``rmmss replay`` alike (:meth:`RobotInputs.adapt`, called by ``Pipeline.begin``):

* ``sensor_msgs/CompressedImage`` (camera, depth, event frames; image_transport's ``compressed``
  and ``compressedDepth``) decoded with OpenCV (rmmss_ros.conversions.compressed); an
  undecodable packet is an error for that modality (missing), never a blank image;
* extrinsics per frame from ``extrinsics.source`` (rmmss_ros.tf.extrinsics): the LiDAR's and the
  event camera's from the parameters or TF (the chain from the message's ``frame_id`` to the
  camera's); with source ``tf`` a missing chain makes the sensor missing for the frame, the error
  naming both frames;
* depth not registered to the camera: reprojected with the depth CameraInfo
  (``depth.camera_info_topic``, or the one found in a bag) and ``T_camera_depth`` (``depth.extrinsic``
  or TF) by rmmss_ros.registration; without a depth CameraInfo, a depth image whose size differs
  from the camera's is refused for that frame (ERROR naming both sizes), never resized;
* configuration that makes the output wrong, said once (WARN, naming the parameter): LiDAR
  intensities that the units setting clips or zeroes (:func:`intensity_warning`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rmmss_core.encodings import CameraModel
from rmmss_ros.conversions.common import ConversionError, stamp_to_ns
from rmmss_ros.conversions.compressed import decode_compressed, is_compressed_image
from rmmss_ros.pipeline.extrinsics import DEFAULT_T_CAM_LIDAR, IDENTITY_4X4, matrix4
from rmmss_ros.pipeline.prepared import error_text
from rmmss_ros.registration.register import DepthRegistrar
from rmmss_ros.tf.buffer import TransformBuffer, TransformError, frame_name
from rmmss_ros.tf.extrinsics import Extrinsics

DEFAULTS = {"lidar": DEFAULT_T_CAM_LIDAR, "event": IDENTITY_4X4, "depth": IDENTITY_4X4}


def intensity_warning(values: np.ndarray, units: str, setting: str, spec_units: str) -> str | None:
    """What is wrong with reading LiDAR ``values`` (finite intensities of one cloud) in ``units``
    (resolved; ``setting`` = ``lidar.intensity_units`` as given, '' = the spec's ``spec_units``),
    or None. unit: values above 1 clip to 1.0; byte: a 0..1 cloud becomes ~0 after the /255."""
    if values.size == 0:
        return None
    top = float(values.max())
    how = (f"lidar.intensity_units '{setting}'" if setting and setting != "auto"
           else "lidar.intensity_units auto (by the field's datatype)" if setting == "auto"
           else f"the model's spec ('{spec_units}', lidar.intensity_units unset)")
    if units == "unit" and top > 1.0:  # (texts without per-cloud numbers: said once)
        scale = "counts16 (0..65535)" if top > 255.0 else "byte (0..255)"
        return (f"lidar: intensities above 1 are read as unit (0..1) by {how}: they clip to 1.0; "
                f"set lidar.intensity_units to {scale}")
    if units == "byte" and 0.0 < top <= 1.0:
        return (f"lidar: intensities are all within 0..1 but are read as byte (0..255) by {how}: they encode "
                "as ~0; set lidar.intensity_units to unit")
    if units == "counts16" and 0.0 < top <= 255.0:
        return (f"lidar: intensities are all within 0..255 but are read as counts16 (0..65535) by {how}: they "
                "encode near 0; set lidar.intensity_units to byte")
    return None


# texts of "waiting, not broken" (rmmss_ros.outputs.usability.WAITING lists them, word for word)
DEPTH_WAITS_FOR_ITS_CAMERA_INFO = ("depth: no depth CameraInfo received yet on depth.camera_info_topic; cannot "
                                   "reproject the unregistered depth into the camera")
DEPTH_WAITS_FOR_CAMERA_INFO = "depth: no valid camera CameraInfo yet; cannot reproject the unregistered depth into the camera"


class RobotInputs:
    """Per-pipeline state of the adaptations above (the TF buffer comes from the node or replay)."""

    def __init__(self, extrinsics_source: str, T: Mapping[str, Any], event_format: str,
                 warn: Callable[[str], None]):
        self._T = {k: matrix4(v, f"{k}.extrinsic") for k, v in T.items()}
        self.event_format = event_format
        self.warn = warn
        self.extrinsics = Extrinsics(extrinsics_source, self._T, {k: matrix4(v, k) for k, v in DEFAULTS.items()},
                                     None, "no TF: tf2_msgs is not available (the node runs on the parameters)")
        self.registrar = DepthRegistrar()
        self.depth_camera_info: Any | None = None
        # a depth CameraInfo is subscribed (node: depth.camera_info_topic; replay: one in the bag): until
        # it arrives an unregistered depth image waits for it (unusable), it is not a wrong setting
        self.depth_camera_info_expected = False

    def attach_tf(self, buffer: TransformBuffer | None, unavailable: str = "") -> None:
        """Use ``buffer`` for TF lookups (None: TF unavailable, ``unavailable`` says why)."""
        self.extrinsics.buffer = buffer
        if unavailable:
            self.extrinsics.tf_unavailable = unavailable

    def adapt(self, pipe: Any, msgs: dict[str, Any], errors: dict[str, str], camera: CameraModel | None,
              camera_info: Any | None) -> None:
        """Set ``pipe.T_cam_lidar`` / ``pipe.T_cam_event`` for this frame and bring depth into the
        camera's grid (``msgs`` already decoded: :meth:`decode`); a modality that fails is removed from
        ``msgs`` with its ``errors`` entry."""
        buf = self.extrinsics.buffer
        if buf is not None:  # transforms the buffer refused: said (node WARN, replay report), not only dropped
            for text in buf.take_warnings():
                self.warn(f"TF: {text} (extrinsics.source)")
        camera_frame = camera_frame_of(msgs, camera_info)
        for m, attr in (("lidar", "T_cam_lidar"), ("event", "T_cam_event")):
            msg = msgs.get(m)
            if msg is None or (m == "event" and self.event_format == "image"):
                continue
            try:
                setattr(pipe, attr, self.extrinsics.matrix(m, _frame(msg), camera_frame, stamp_to_ns(msg.header.stamp)))
            except TransformError as e:
                errors[m] = f"{m}: {e}"
                del msgs[m]
        if "depth" in msgs:
            try:
                msgs["depth"] = self.depth_in_camera(msgs["depth"], camera, camera_frame, msgs.get("rgb"))
            except (ConversionError, TransformError, ValueError) as e:
                errors["depth"] = error_text("depth", e) if not isinstance(e, TransformError) else f"depth: {e}"
                del msgs["depth"]

    @staticmethod
    def decode(msgs: dict[str, Any], errors: dict[str, str]) -> None:
        """Decode the CompressedImage messages of ``msgs`` in place (an undecodable one is removed,
        with its ``errors`` entry); Image messages are left as they are."""
        for m in ("rgb", "depth", "event"):
            msg = msgs.get(m)
            if msg is not None and is_compressed_image(msg):
                try:
                    msgs[m] = decode_compressed(msg, m)
                except Exception as e:  # noqa: BLE001 - an undecodable packet: this modality is missing
                    errors[m] = error_text(m, e)
                    del msgs[m]

    def depth_in_camera(self, msg: Any, camera: CameraModel | None, camera_frame: str, rgb: Any | None) -> Any:
        """The depth image in the camera's pixel grid: as it is when registered, reprojected when a
        depth CameraInfo says it is not, refused (ConversionError naming both sizes) otherwise."""
        hw = (int(msg.height), int(msg.width))
        cam_hw = (camera.height, camera.width) if camera is not None else \
            (int(rgb.height), int(rgb.width)) if rgb is not None else None
        info = self.depth_camera_info
        if info is None:
            if cam_hw is not None and hw != cam_hw and self.depth_camera_info_expected:
                raise ConversionError(DEPTH_WAITS_FOR_ITS_CAMERA_INFO)
            if cam_hw is not None and hw != cam_hw:
                raise ConversionError(
                    f"depth: the {hw[1]} x {hw[0]} depth image is not registered to the {cam_hw[1]} x {cam_hw[0]} "
                    "camera (sizes differ) and is refused, not resized: set depth.camera_info_topic to the depth "
                    "camera's CameraInfo to reproject it, or subscribe depth registered to the camera "
                    "(e.g. RealSense aligned_depth_to_color)")
            return msg
        depth_frame = _frame(msg) or frame_name(getattr(info.header, "frame_id", ""))
        same_frame = not depth_frame or not camera_frame or depth_frame == camera_frame
        if same_frame and cam_hw is not None and hw == cam_hw:
            return msg  # registered already (aligned depth carries the camera's frame and size)
        if camera is None:
            raise ConversionError(DEPTH_WAITS_FOR_CAMERA_INFO)
        T = self.extrinsics.matrix("depth", depth_frame, camera_frame, stamp_to_ns(msg.header.stamp)) \
            if not same_frame else np.eye(4)
        return self.registrar.register(msg, info, camera, T, "depth")


def _frame(msg: Any) -> str:
    return frame_name(getattr(getattr(msg, "header", None), "frame_id", "") or "")


def camera_frame_of(msgs: Mapping[str, Any], camera_info: Any | None) -> str:
    """The camera's optical frame: its CameraInfo's frame_id, else its image's."""
    if camera_info is not None and _frame(camera_info):
        return _frame(camera_info)
    rgb = msgs.get("rgb")
    return _frame(rgb) if rgb is not None else ""

