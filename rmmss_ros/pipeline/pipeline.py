"""Frame set -> masks, without ROS: decode the raw messages, encode each modality with the shared
encoders and the model's stored spec, preprocess, infer, colour. Used by the node and by bag replay.

How each sensor becomes a network input (one definition, the model's PreprocessSpec; the dataset
readers use the same encoders):

* camera: any sensor_msgs camera encoding -> RGB uint8 (OpenCV) -> /255 -> ``fit`` to the input
  (spec.resize_policy: stretch / crop / letterbox; bilinear) -> ImageNet normalisation;
* LiDAR: PointCloud2 -> x, y, z, intensity (units: ``lidar.intensity_units`` parameter, else the
  spec's, ``auto`` = by the field's datatype) -> invalid returns dropped (NaN, (0, 0, 0)) ->
  projected at the camera resolution (as the dataset files store it) -> ``fit`` with the
  density-preserving ``reduce_nearest_return`` (spec.lidar.resample): per input pixel the nearest
  return among the camera pixels it covers, so the input keeps (nearly) every return a projection
  at the input resolution would place (bench: rmmss_core.bench.encodings "density"), bit-identical
  to what training read from the files;
* events: every packet (PointCloud2 or EventPacket) is decoded into a per-sensor
  :class:`~rmmss_ros.sync.event_buffer.EventBuffer`; a frame takes all events of the spec's window
  ``(stamp - window_s, stamp]``, maps them into the camera's pixel grid (event CameraInfo +
  ``event.extrinsic`` rotation, or a same-field-of-view scaling when uncalibrated) and
  accumulates them with the shared encoder at the camera resolution, then ``fit`` (nearest);
* the mask goes back to the camera resolution through the inverse of the same geometry.

With ``quantize_8bit`` (every shipped spec) the quantised encoders hand over their 8-bit codes
(:class:`rmmss_core.preprocess.Codes`: the camera's RGB bytes, the metric depth codes, the event
frame's bytes, the LiDAR returns as sparse codes) and preprocessing normalises them with one table
lookup per channel, resampling on the codes where it only selects pixels: the same model input,
bit for bit, as encoding to float first (test/test_node_fastpath.py pins it against the old path),
at a fraction of the cost (docs/bench/node.md).

Each malformed input is caught here: whatever one modality's decoding, encoding or fitting to the
network input raises is reported in ``Result.errors`` and that modality counts as missing for the
frame; only inference can raise out of ``process``. :class:`~rmmss_ros.pipeline.worker.Worker` runs frames on a thread that
no exception can stop (caught per frame, counted, handed to a callback) and exposes a heartbeat for
a watchdog.
"""
from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rmmss_core import kernels
from rmmss_core.encodings import (
    CameraModel,
    accumulate_events,
    encode_depth,
    event_pixel_map,
    map_event_pixels,
    project_lidar,
    project_lidar_codes,
    scaled_pixel_map,
)
from rmmss_core.encodings.camera import MIN_DEPTH_M
from rmmss_core.encodings.lidar import NO_RETURN_R2
from rmmss_core.geometry import InputGeometry, resize_nearest_np
from rmmss_core.modalities import MODALITIES
from rmmss_core.preprocess import Codes, normalize_table, preprocess_one
from rmmss_core.spec import PreprocessSpec
from rmmss_ros.conversions import (
    ConversionError,
    camera_from_info,
    camera_info_key,
    camera_info_warnings,
    check_camera_info,
    cloud_to_xyzi,
    decode_event_message,
    depth_codes,
    event_image_codes,
    event_sensor_size,
    intensity_units_of,
    is_event_packet,
    rvl,
    stamp_to_ns,
    to_depth_m,
    to_rgb8,
    xyzi_view,
)
from rmmss_ros.conversions.event_packet import EventStreamState
from rmmss_ros.pipeline.extrinsics import DEFAULT_T_CAM_LIDAR, IDENTITY_4X4, matrix4
from rmmss_ros.pipeline.inputs import RobotInputs, camera_frame_of, intensity_warning
from rmmss_ros.pipeline.prepared import Prepared, Result, error_text, try_modality
from rmmss_ros.pipeline.side_thread import SideThread, run_now
from rmmss_ros.registration import register
from rmmss_ros.sync.event_buffer import EventBuffer


@dataclass(frozen=True)
class PipelineParams:
    """What the node's parameters say about processing (see rmmss_ros.node.params)."""

    enabled: tuple[str, ...] = MODALITIES
    event_format: str = "image"  # "image" | "cloud"
    T_cam_lidar: tuple[float, ...] = DEFAULT_T_CAM_LIDAR  # 16 values row-major
    camera_rectified: bool = False
    color: bool = True
    overlay: bool = False
    overlay_alpha: float = 0.5
    lidar_intensity_units: str = ""  # "" = the spec's (see rmmss_core.spec.INTENSITY_UNITS)
    T_cam_event: tuple[float, ...] = IDENTITY_4X4  # 16 values row-major
    preprocess_device: str = "cpu"  # "cpu" (numpy path) or a torch device: rmmss_ros.pipeline.gpu
    preprocess_threads: int = 2  # 2: the LiDAR branch of prepare() beside the images; 1: all in turn
    extrinsics_source: str = "auto"  # auto | tf | parameters (rmmss_ros.tf.extrinsics)
    T_cam_depth: tuple[float, ...] = IDENTITY_4X4  # 16 values row-major (unregistered depth)
    confidence: bool = False  # also compute the per-pixel confidence (Result.confidence)
    min_confidence: float = 0.0  # mark pixels below it 255 in the mask (rmmss_core.deploy.confidence)

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> PipelineParams:
        """From the flat node parameter dict (names as in rmmss_ros.node.params)."""
        return cls(enabled=tuple(m for m in MODALITIES if v.get(f"{m}.enabled", True)),
                   event_format=v.get("event.format", "image"),
                   T_cam_lidar=tuple(float(x) for x in v.get("lidar.extrinsic", DEFAULT_T_CAM_LIDAR)),
                   camera_rectified=bool(v.get("camera_info.rectified", False)),
                   color=bool(v.get("output.color", True)), overlay=bool(v.get("output.overlay", False)),
                   overlay_alpha=float(v.get("output.overlay_alpha", 0.5)),
                   lidar_intensity_units=str(v.get("lidar.intensity_units", "")),
                   T_cam_event=tuple(float(x) for x in v.get("event.extrinsic", IDENTITY_4X4)),
                   preprocess_device=str(v.get("preprocess.device", "cpu")),
                   preprocess_threads=int(v.get("preprocess.threads", 2)),
                   extrinsics_source=str(v.get("extrinsics.source", "auto")),
                   T_cam_depth=tuple(float(x) for x in v.get("depth.extrinsic", IDENTITY_4X4)),
                   confidence=bool(v.get("output.confidence", False)),
                   min_confidence=float(v.get("output.min_confidence", 0.0)))


class Pipeline:
    """``Pipeline(backend, params).process(frame_set, camera_info) -> Result``.

    ``backend``: an rmmss_core.deploy Backend (``spec``, ``infer``); ``frame_set``: anything with
    ``stamp_ns`` and ``messages`` {modality: message} (rmmss_ros.sync.synchronizer.FrameSet); ``camera_info``:
    the latest CameraInfo-like message or None.
    """

    def __init__(self, backend: Any, params: PipelineParams = PipelineParams()):
        self.backend = backend
        self.spec: PreprocessSpec = backend.spec
        self.params = params
        self.palette = np.zeros((256, 3), dtype=np.uint8)  # ids beyond the classes (e.g. 255) -> black
        self.palette[:len(self.spec.palette)] = np.asarray(self.spec.palette, dtype=np.uint8)
        self.T_cam_lidar = matrix4(params.T_cam_lidar, "T_cam_lidar")
        self._camera_key: tuple | None = None
        self._camera: CameraModel | None = None
        self.T_cam_event = matrix4(params.T_cam_event, "T_cam_event")
        self.event_buffer = EventBuffer(horizon_s=max(1.0, 4 * self.spec.event.window_s))
        self._evt3 = EventStreamState()
        self._bad_packets: dict[tuple, str] = {}  # undecodable packets stay malformed when seen again
        # robot inputs (#22): compressed images, extrinsics from TF, depth registration
        self.inputs = RobotInputs(params.extrinsics_source, {"lidar": params.T_cam_lidar, "event": params.T_cam_event,
                                                             "depth": params.T_cam_depth}, params.event_format, self._warn)
        self.event_camera_info: Any | None = None
        self._event_lut_key: tuple | None = None
        self._event_lut: np.ndarray | None = None
        self._warned: set[str] = set()
        self._pending_warnings: list[str] = []
        self._events_lock = threading.Lock()
        self._lidar_frames = 0
        self._camera_frame = ""
        self._device_prep = None  # preprocess.device != cpu: the torch twin of prepare()
        self._side = SideThread() if params.preprocess_threads > 1 else None
        if self._side is not None:  # a dropped Pipeline ends its side thread (the finaliser holds the thread only)
            weakref.finalize(self, self._side.close)
        if params.preprocess_device == "cpu":
            if kernels.warm_up():  # compile / load the numba kernels now, not on the first frame
                rvl.warm_up()  # and the robot-input ones (#22): compressedDepth's RVL, depth registration
                register.warm_up()
        else:
            from rmmss_ros.pipeline.gpu import DevicePreparer
            self._device_prep = DevicePreparer(self, params.preprocess_device)

    def close(self) -> None:
        """End the side thread of ``preprocess.threads: 2`` (also done when the Pipeline is garbage
        collected); a later :meth:`prepare` starts it again."""
        if self._side is not None:
            self._side.close()

    # ------------------------------------------------------------------------------ stages
    def camera(self, camera_info: Any | None) -> CameraModel | None:
        """CameraModel of the latest CameraInfo (cached while it does not change)."""
        if camera_info is None:
            return None
        key = camera_info_key(camera_info)
        if key != self._camera_key:
            self._camera = camera_from_info(camera_info, self.params.camera_rectified)
            self._camera_key = key
            for w in camera_info_warnings(camera_info, self.params.camera_rectified):
                self._warn(w)
        return self._camera

    def _warn(self, text: str) -> None:
        """Queue a configuration warning for the next Result (each text once)."""
        if text not in self._warned:
            self._warned.add(text)
            self._pending_warnings.append(text)

    # ------------------------------------------------------------------------------ events
    def set_event_camera_info(self, msg: Any) -> None:
        """The event camera's own CameraInfo (topic ``event.camera_info_topic``)."""
        self.event_camera_info = msg

    def add_event_message(self, msg: Any) -> str | None:
        """Decode one event packet (PointCloud2 or EventPacket) into the event buffer; the node
        calls it for every packet received, so a frame uses all events of its window. Returns the
        error text for a malformed packet (nothing is buffered from it), else None. A message
        already added (same stamp, size and sequence) is skipped."""
        key = (stamp_to_ns(msg.header.stamp), int(getattr(msg, "seq", 0)),
               len(msg.events) if is_event_packet(msg) else len(msg.data))
        with self._events_lock:
            if key in self._bad_packets:  # decoded before and failed: still malformed, never blank
                return self._bad_packets[key]
            if self.event_buffer.seen(key):
                return None
            try:
                self.event_buffer.add(decode_event_message(msg, self._evt3))
            except Exception as e:  # noqa: BLE001 - a bad packet costs only itself
                if len(self._bad_packets) > 256:
                    self._bad_packets.clear()
                self._bad_packets[key] = error_text("event", e)
                return self._bad_packets[key]
        return None

    def _event_table(self, sensor_hw: tuple[int, int] | None, size: tuple[int, int],
                     camera: CameraModel | None) -> tuple[np.ndarray, int, int] | None:
        """Lookup table event pixel -> camera pixel (cached), with the event sensor's (w, h);
        None when events are already camera pixels."""
        info = self.event_camera_info
        ev_cam = None
        if info is not None:
            ev_cam = camera_from_info(info, False, what="event camera_info")
            sensor_hw = (ev_cam.height, ev_cam.width)
        if sensor_hw is None or (ev_cam is None and tuple(sensor_hw) == tuple(size)):
            return None
        key = (sensor_hw, tuple(size), None if info is None else (tuple(info.k), tuple(info.d)),
               None if camera is None else self._camera_key, self.T_cam_event[:3, :3].tobytes())
        if key != self._event_lut_key:
            H, W = size
            if ev_cam is not None and camera is not None:
                target = camera if (camera.height, camera.width) == (H, W) else camera.scaled(W, H)
                self._event_lut = event_pixel_map(ev_cam, target, self.T_cam_event[:3, :3])
            else:
                self._warn(f"event: no event-camera calibration; the {sensor_hw[1]} x {sensor_hw[0]} event sensor "
                           f"is scaled onto the {W} x {H} camera assuming the same field of view "
                           "(set event.camera_info_topic and event.extrinsic)")
                self._event_lut = scaled_pixel_map(sensor_hw[1], sensor_hw[0], W, H)
            self._event_lut_key = key
        return self._event_lut, sensor_hw[1], sensor_hw[0]

    def encode_events(self, msg: Any, stamp_ns: int, size: tuple[int, int], camera: CameraModel | None) -> np.ndarray:
        """Accumulate every buffered event of the window ``(stamp - window_s, stamp]`` (the matched
        ``msg`` included) at the camera resolution ``size`` (H, W) -> ``H x W x 3`` float32."""
        err = self.add_event_message(msg)
        if err is not None:
            raise ConversionError(err)
        ev = self.event_buffer.window(stamp_ns, self.spec.event.window_s)
        H, W = size
        x, y = ev.x, ev.y
        table = self._event_table(event_sensor_size(msg), size, camera)
        if table is not None:
            x, y = map_event_pixels(x, y, table[0], table[1], table[2], W)
        elif self.event_camera_info is None and ev.x.size:
            self._check_event_pixels(msg, ev, size, camera)
        t_rel = (ev.t_ns - int(stamp_ns)).astype(np.float64) * 1e-9
        return accumulate_events(x, y, t_rel, ev.p, 0.0, H, W, self.spec.event, self.spec.quantize_8bit)

    def _check_event_pixels(self, msg: Any, ev: Any, size: tuple[int, int], camera: CameraModel | None) -> None:
        """Events without an event CameraInfo are taken as camera pixels: say so when they look like
        another sensor's (another frame_id, or pixels outside the camera image)."""
        H, W = size
        outside = float(np.mean((ev.x >= W) | (ev.y >= H) | (ev.x < 0) | (ev.y < 0)))
        ev_frame = str(getattr(msg.header, "frame_id", "") or "")
        cam_frame = self._camera_frame or ""
        if outside > 0 or (ev_frame and cam_frame and ev_frame != cam_frame):
            self._warn(f"event: the events (frame {ev_frame or '?'}) are taken as pixels of the {W} x {H} camera "
                       f"(frame {cam_frame or '?'}) because there is no event CameraInfo"
                       + (f"; {outside * 100:.0f}% fall outside it" if outside > 0 else "")
                       + ": set event.camera_info_topic (and event.extrinsic) for a separate event camera")

    def lidar_units(self, msg: Any) -> str:
        """The intensity units for this cloud: the parameter, else the spec's; ``auto`` resolved."""
        units = self.params.lidar_intensity_units or self.spec.lidar.intensity_units
        if units == "auto":
            units = intensity_units_of(msg) or "unit"
        return units

    def _lidar_points(self, msg: Any) -> tuple[np.ndarray, str]:
        """Cloud -> (``N x 4`` float32 x, y, z, intensity, its intensity units). A view of the message
        buffer for the common float32 x, y, z, intensity layout when the spec is quantised (its
        encoders drop the non-finite points a view keeps), else :func:`cloud_to_xyzi`'s copy."""
        units = self.lidar_units(msg)
        pts = xyzi_view(msg) if self.spec.quantize_8bit else None
        if pts is None:
            pts = cloud_to_xyzi(msg)
        self._lidar_frames += 1
        # the units checks (configuration hints, said once) on the first frames, then every 100th
        if pts.shape[0] and (self._lidar_frames <= 3 or self._lidar_frames % 100 == 0):
            vals = pts[:, 3]
            if not np.all(np.isfinite(vals)):  # a view keeps non-finite intensities (encoded as 0)
                vals = vals[np.isfinite(vals)]
            top = float(vals.max()) if vals.size else 0.0
            if units == "byte" and top > 255.0:
                self._warn(f"lidar: intensity up to {top:.0f} exceeds the byte scale 0..255; set "
                           "lidar.intensity_units to counts16 if this is a photon-count (Ouster-like) sensor")
            else:
                text = intensity_warning(vals, units, self.params.lidar_intensity_units,
                                         self.spec.lidar.intensity_units)
                if text:
                    self._warn(text)
        return pts, units

    def encode_lidar(self, msg: Any, camera: CameraModel, codes: bool = False) -> np.ndarray | Codes:
        """Cloud -> LiDAR image ``H x W x 3`` float32 at the camera resolution (preprocess then
        reduces it to the input with ``reduce_nearest_return``, as for the dataset files); with
        ``codes`` and ``quantize_8bit``: the same image as sparse :class:`Codes` (what prepare uses)."""
        pts, units = self._lidar_points(msg)
        return self._encode_points(msg, pts, units, camera, codes)

    def _encode_points(self, msg: Any, pts: np.ndarray, units: str, camera: CameraModel,
                       codes: bool) -> np.ndarray | Codes:
        if self.spec.quantize_8bit:  # codes: exactly project_lidar(quantize=True)'s image
            target, values = project_lidar_codes(pts, self.T_cam_lidar, camera, self.spec.lidar, units)
            if target.size == 0:  # raises, naming the input, when no point has finite x, y, z
                cloud_to_xyzi(msg)
            c = Codes.of_sparse((camera.height, camera.width), target, values)
            return c if codes else c.to_float()
        return project_lidar(pts, self.T_cam_lidar, camera, self.spec.lidar, False, intensity_units=units)

    def encode_depth(self, msg: Any, camera: CameraModel | None) -> np.ndarray | Codes:
        """Depth image -> encoded depth (``H x W x 3`` float32), or its :class:`Codes` for the
        quantised metric encoding."""
        spec = self.spec
        if spec.quantize_8bit and spec.depth.kind == "metric":
            return Codes.dense(depth_codes(msg, spec.depth))
        return encode_depth(to_depth_m(msg), spec.depth, spec.quantize_8bit, camera=camera)

    def begin(self, frame_set: Any, camera_info: Any | None) -> tuple[dict[str, Any], dict[str, str], CameraModel | None]:
        """The present, enabled messages of ``frame_set``, an empty error map, and the camera model
        (None, with an ``errors["camera_info"]`` entry, for a bad CameraInfo). Shared with the
        device path (rmmss_ros.pipeline.gpu)."""
        msgs = {m: msg for m, msg in frame_set.messages.items() if m in self.params.enabled and msg is not None}
        errors: dict[str, str] = {}
        try:
            camera = self.camera(camera_info)
        except Exception as e:  # noqa: BLE001 - any bad CameraInfo: no camera, reported
            camera = None
            errors["camera_info"] = error_text("camera_info", e)
        self.inputs.decode(msgs, errors)  # compressed images, once: the camera image's size is checked below
        rgb = msgs.get("rgb")
        why = None if camera is None or rgb is None else \
            check_camera_info(camera.width, camera.height, (int(rgb.height), int(rgb.width)), 0)
        if why:  # a calibration of another resolution would project LiDAR / register depth wrongly: unusable
            errors["camera_info"] = f"camera_info: {why}"
            self._warn(f"{errors['camera_info']}: nothing is projected with it (set camera_info.topic to the "
                       "calibration of this camera at this resolution)")
            camera = None
        self.inputs.adapt(self, msgs, errors, camera, camera_info)  # extrinsics, depth registration
        self._camera_frame = camera_frame_of(msgs, camera_info) or self._camera_frame
        return msgs, errors, camera

    def prepare(self, frame_set: Any, camera_info: Any | None = None) -> Prepared:
        """Decode + encode + preprocess every present, enabled modality (the node's per-frame
        overhead without inference). Malformed inputs land in ``errors`` and count as missing.

        With ``preprocess_threads`` 2 the LiDAR branch (decode, project, encode, normalise into
        its slice of the input batch) runs on a side thread while this thread does the images:
        GIL-free work on both (numba kernels, OpenCV, numpy), the same inputs bit for bit."""
        if self._device_prep is not None:
            return self._device_prep.prepare(frame_set, camera_info)
        t0 = time.perf_counter()
        spec = self.spec
        size_in = tuple(spec.input_size)
        msgs, errors, camera = self.begin(frame_set, camera_info)
        batch = torch.empty(len(MODALITIES), 3, *size_in)  # one allocation for the 4 inputs
        lidar = None
        if "lidar" in msgs:
            if camera is None:
                errors["lidar"] = "lidar: no valid CameraInfo received yet; cannot project the cloud"
            else:
                lidar = (self._side.submit if self._side is not None else run_now)(functools.partial(
                    self._lidar_input, msgs["lidar"], camera, batch[MODALITIES.index("lidar")]))
        encoded: dict[str, np.ndarray | Codes] = {}
        rgb = None
        if "rgb" in msgs:
            rgb = try_modality(errors, "rgb", lambda: to_rgb8(msgs["rgb"]))
            if rgb is not None:  # RGB8 bytes are the encoding's codes (encode_rgb = bytes / 255)
                encoded["rgb"] = Codes.dense(rgb)
        size = (rgb.shape[:2] if rgb is not None else (camera.height, camera.width) if camera is not None
                else None)
        if "depth" in msgs:
            d = try_modality(errors, "depth", lambda: self.encode_depth(msgs["depth"], camera))
            if d is not None:
                encoded["depth"] = d
                size = size or d.shape[:2]
        if "event" in msgs:
            msg = msgs["event"]
            if self.params.event_format in ("cloud", "packet"):
                size = size or event_sensor_size(msg)  # an EventPacket knows its sensor size
                if size is None:
                    errors["event"] = "event: no camera image or CameraInfo yet to size the event image"
                else:
                    e = try_modality(errors, "event", lambda: self.encode_events(msg, frame_set.stamp_ns, size, camera))
                    if e is not None:
                        encoded["event"] = e
            else:
                e = try_modality(errors, "event", lambda: Codes.dense(event_image_codes(msg)))
                if e is not None:
                    encoded["event"] = e
                    size = size or e.shape[:2]
        t1 = time.perf_counter()
        available = torch.zeros(len(MODALITIES), dtype=torch.bool)
        for i, m in enumerate(MODALITIES):
            if m in encoded:
                try:
                    preprocess_one(encoded[m], m, spec, size_in, batch[i])
                    available[i] = True
                except Exception as e:  # noqa: BLE001 - e.g. a 1-pixel image cropped to nothing: this modality only
                    errors[m] = error_text(m, e)
                    batch[i].zero_()
            elif m != "lidar":
                batch[i].zero_()
        t2 = time.perf_counter()
        timings = {"encode_ms": (t1 - t0) * 1e3, "preprocess_ms": (t2 - t1) * 1e3}
        i_lidar = MODALITIES.index("lidar")
        if lidar is not None:
            try:
                timings["lidar_ms"] = lidar.result()
                available[i_lidar] = True
                size = size or (camera.height, camera.width)
            except Exception as e:  # noqa: BLE001 - one bad message must only cost its own modality
                errors["lidar"] = error_text("lidar", e)
            timings["lidar_wait_ms"] = (time.perf_counter() - t2) * 1e3
        if not available[i_lidar]:
            batch[i_lidar].zero_()
        inputs = {m: batch[i:i + 1] for i, m in enumerate(MODALITIES)}
        out_size = tuple(size) if size is not None else size_in
        warnings, self._pending_warnings = self._pending_warnings, []
        return Prepared(int(frame_set.stamp_ns), inputs, available[None].numpy(), out_size, rgb, errors,
                        timings, warnings)

    def _lidar_input(self, msg: Any, camera: CameraModel, out: torch.Tensor) -> float:
        """The LiDAR branch of :meth:`prepare`: cloud -> normalised ``3 x h x w`` input written into
        ``out``. Returns its duration in ms; raises for a malformed cloud."""
        t = time.perf_counter()
        spec = self.spec
        if kernels.enabled() and spec.quantize_8bit and InputGeometry.of(
                (camera.height, camera.width), tuple(spec.input_size), spec.resize_policy).identity:
            # fused: projection, nearest return, codes and normalised planes in one compiled pass
            from rmmss_core.kernels.lidar import lidar_planes
            pts, units = self._lidar_points(msg)
            norm = spec.normalization["lidar"]
            n = lidar_planes(pts, self.T_cam_lidar, camera, spec.lidar, units,
                             normalize_table(tuple(norm.mean), tuple(norm.std)), out.numpy(), NO_RETURN_R2, MIN_DEPTH_M)
            if n is not None:
                if n == 0:  # raises, naming the input, when no point has finite x, y, z
                    cloud_to_xyzi(msg)
                return (time.perf_counter() - t) * 1e3
            enc = self._encode_points(msg, pts, units, camera, True)
        else:
            enc = self.encode_lidar(msg, camera, codes=True)
        if isinstance(enc, np.ndarray) and not np.all(np.isfinite(enc)):
            raise ConversionError("lidar: encoded image has NaN or Inf")
        preprocess_one(enc, "lidar", self.spec, tuple(self.spec.input_size), out)
        return (time.perf_counter() - t) * 1e3

    def process(self, frame_set: Any, camera_info: Any | None = None) -> Result:
        """One frame set -> Result (mask at the camera resolution, colour mask, used modalities)."""
        p = self.prepare(frame_set, camera_info)
        if not p.available.any():
            return Result(p.stamp_ns, None, None, (), p.errors, p.timings, p.warnings)
        t0 = time.perf_counter()
        conf = None
        if self.params.confidence or self.params.min_confidence > 0:  # both from the device, one pass
            small, small_conf = self.backend.infer_with_confidence(p.inputs, p.available, self.params.min_confidence)
            small, small_conf = np.asarray(small)[0], np.asarray(small_conf)[0]
        else:
            small = np.asarray(self.backend.infer(p.inputs, p.available))[0]
        t1 = time.perf_counter()
        geometry = InputGeometry.of(p.out_size, small.shape, self.spec.resize_policy)
        mask = geometry.mask_to_source(np.asarray(small, dtype=np.uint8), fill=self.spec.ignore_index)
        if self.params.confidence:
            conf = geometry.mask_to_source(np.asarray(small_conf, dtype=np.uint8), fill=0)
        color = None
        if self.params.color:
            color = self.palette[mask]
            if self.params.overlay and p.rgb is not None and p.rgb.shape[:2] == mask.shape:
                a = self.params.overlay_alpha
                color = (a * color + (1.0 - a) * p.rgb).round().astype(np.uint8)
        t2 = time.perf_counter()
        timings = {**p.timings, "infer_ms": (t1 - t0) * 1e3, "post_ms": (t2 - t1) * 1e3}
        return Result(p.stamp_ns, mask, color, p.used, p.errors, timings, p.warnings, conf)


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize of an ``h x w`` label map to ``size`` (H, W), torch's 'nearest' rule
    (source index = floor(dst * in / out))."""
    return resize_nearest_np(mask, size)


def header_stamp_ns(msg: Any) -> int:
    return stamp_to_ns(msg.header.stamp)
