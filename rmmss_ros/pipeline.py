"""Frame set -> masks, without ROS: decode the raw messages, encode each modality with the shared
encoders and the model's stored spec, preprocess, infer, colour. Used by the node and by bag replay.

Each malformed input is caught here: whatever one modality's decoding or encoding raises is reported
in ``Result.errors`` and that modality counts as missing for the frame; only the shared stages
(preprocess, inference) can raise out of ``process``. :class:`Worker` runs frames on a thread that
no exception can stop (caught per frame, counted, handed to a callback) and exposes a heartbeat for
a watchdog.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmmss_core.encodings import CameraModel, encode_depth, encode_rgb, project_lidar
from rmmss_core.modalities import MODALITIES
from rmmss_core.preprocess import preprocess
from rmmss_core.spec import PreprocessSpec
from rmmss_ros.conversions import (
    ConversionError,
    camera_from_info,
    cloud_to_xyzi,
    encode_event_cloud,
    encode_event_image,
    stamp_to_ns,
    to_depth_m,
    to_rgb8,
)
from rmmss_ros.params import DEFAULT_T_CAM_LIDAR


@dataclass(frozen=True)
class PipelineParams:
    """What the node's parameters say about processing (see rmmss_ros.params)."""

    enabled: tuple[str, ...] = MODALITIES
    event_format: str = "image"  # "image" | "cloud"
    T_cam_lidar: tuple[float, ...] = DEFAULT_T_CAM_LIDAR  # 16 values row-major
    camera_rectified: bool = False
    color: bool = True
    overlay: bool = False
    overlay_alpha: float = 0.5
    preprocess_device: str = "cpu"  # "cpu" (numpy path) or a torch device: rmmss_ros.gpu_pipeline

    @classmethod
    def from_values(cls, v: Mapping[str, Any]) -> PipelineParams:
        """From the flat node parameter dict (names as in rmmss_ros.params)."""
        return cls(enabled=tuple(m for m in MODALITIES if v.get(f"{m}.enabled", True)),
                   event_format=v.get("event.format", "image"),
                   T_cam_lidar=tuple(float(x) for x in v.get("lidar.extrinsic", DEFAULT_T_CAM_LIDAR)),
                   camera_rectified=bool(v.get("camera_info.rectified", False)),
                   color=bool(v.get("output.color", True)), overlay=bool(v.get("output.overlay", False)),
                   overlay_alpha=float(v.get("output.overlay_alpha", 0.5)),
                   preprocess_device=str(v.get("preprocess.device", "cpu")))


@dataclass
class Prepared:
    """Network inputs for one frame: ``inputs`` {m: 1 x 3 x h x w}, ``available`` bool 1 x 4."""

    stamp_ns: int
    inputs: dict[str, Any]
    available: np.ndarray
    out_size: tuple[int, int]  # (H, W) of the published mask: the camera resolution
    rgb: np.ndarray | None
    errors: dict[str, str]
    timings: dict[str, float]

    @property
    def used(self) -> tuple[str, ...]:
        return tuple(m for m, a in zip(MODALITIES, self.available[0], strict=True) if a)


@dataclass
class Result:
    """mask ``H x W`` uint8 class ids (None if no modality was usable), color ``H x W x 3`` uint8 or
    None, the modalities used, per-modality errors (malformed input), timings in ms."""

    stamp_ns: int
    mask: np.ndarray | None
    color: np.ndarray | None
    used_modalities: tuple[str, ...]
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """``Pipeline(backend, params).process(frame_set, camera_info) -> Result``.

    ``backend``: an rmmss_core.deploy Backend (``spec``, ``infer``); ``frame_set``: anything with
    ``stamp_ns`` and ``messages`` {modality: message} (rmmss_ros.sync.FrameSet); ``camera_info``:
    the latest CameraInfo-like message or None.
    """

    def __init__(self, backend: Any, params: PipelineParams = PipelineParams()):
        self.backend = backend
        self.spec: PreprocessSpec = backend.spec
        self.params = params
        self.palette = np.zeros((256, 3), dtype=np.uint8)  # ids beyond the classes (e.g. 255) -> black
        self.palette[:len(self.spec.palette)] = np.asarray(self.spec.palette, dtype=np.uint8)
        T = np.asarray(params.T_cam_lidar, dtype=np.float64)
        if T.size != 16:
            raise ValueError(f"T_cam_lidar must have 16 values, got {T.size}")
        self.T_cam_lidar = T.reshape(4, 4)
        self._camera_key: tuple | None = None
        self._camera: CameraModel | None = None
        self._device_prep = None  # preprocess.device != cpu: the torch twin of prepare()
        if params.preprocess_device != "cpu":
            from rmmss_ros.gpu_pipeline import DevicePreparer
            self._device_prep = DevicePreparer(self, params.preprocess_device)

    # ------------------------------------------------------------------------------ stages
    def camera(self, camera_info: Any | None) -> CameraModel | None:
        """CameraModel of the latest CameraInfo (cached while it does not change)."""
        if camera_info is None:
            return None
        key = (int(camera_info.width), int(camera_info.height), tuple(camera_info.k), tuple(camera_info.d),
               tuple(camera_info.p), str(camera_info.distortion_model))
        if key != self._camera_key:
            self._camera = camera_from_info(camera_info, self.params.camera_rectified)
            self._camera_key = key
        return self._camera

    def prepare(self, frame_set: Any, camera_info: Any | None = None) -> Prepared:
        """Decode + encode + preprocess every present, enabled modality (the node's per-frame
        overhead without inference). Malformed inputs land in ``errors`` and count as missing."""
        if self._device_prep is not None:
            return self._device_prep.prepare(frame_set, camera_info)
        t0 = time.perf_counter()
        spec, q = self.spec, self.spec.quantize_8bit
        msgs = {m: msg for m, msg in frame_set.messages.items() if m in self.params.enabled and msg is not None}
        errors: dict[str, str] = {}
        try:
            camera = self.camera(camera_info)
        except Exception as e:  # noqa: BLE001 - any bad CameraInfo: no camera, reported
            camera = None
            errors["camera_info"] = str(e) if isinstance(e, ConversionError) else \
                f"camera_info: {type(e).__name__}: {e}"
        encoded: dict[str, np.ndarray] = {}
        rgb = None
        if "rgb" in msgs:
            rgb = self._try(errors, "rgb", lambda: to_rgb8(msgs["rgb"]))
            if rgb is not None:
                encoded["rgb"] = encode_rgb(np.ascontiguousarray(rgb))
        size = (rgb.shape[:2] if rgb is not None else (camera.height, camera.width) if camera is not None
                else None)
        if "depth" in msgs:
            d = self._try(errors, "depth", lambda: encode_depth(to_depth_m(msgs["depth"]), spec.depth, q,
                                                                camera=camera))
            if d is not None:
                encoded["depth"] = d
                size = size or d.shape[:2]
        if "event" in msgs:
            msg = msgs["event"]
            if self.params.event_format == "cloud":
                if size is None:
                    errors["event"] = "event cloud: no camera image or CameraInfo yet to size the event image"
                else:
                    e = self._try(errors, "event", lambda: encode_event_cloud(
                        msg, frame_set.stamp_ns, size[0], size[1], spec.event, q))
                    if e is not None:
                        encoded["event"] = e
            else:
                e = self._try(errors, "event", lambda: encode_event_image(msg))
                if e is not None:
                    encoded["event"] = e
                    size = size or e.shape[:2]
        if "lidar" in msgs:
            if camera is None:
                errors["lidar"] = "lidar: no valid CameraInfo received yet; cannot project the cloud"
            else:
                li = self._try(errors, "lidar", lambda: project_lidar(
                    cloud_to_xyzi(msgs["lidar"]), self.T_cam_lidar, camera, spec.lidar, q))
                if li is not None:
                    encoded["lidar"] = li
        t1 = time.perf_counter()
        tensors, available = preprocess(encoded, spec)
        inputs = {m: x[None] for m, x in tensors.items()}
        t2 = time.perf_counter()
        out_size = tuple(size) if size is not None else tuple(spec.input_size)
        return Prepared(int(frame_set.stamp_ns), inputs, available[None].numpy(), out_size, rgb, errors,
                        {"encode_ms": (t1 - t0) * 1e3, "preprocess_ms": (t2 - t1) * 1e3})

    def process(self, frame_set: Any, camera_info: Any | None = None) -> Result:
        """One frame set -> Result (mask at the camera resolution, colour mask, used modalities)."""
        p = self.prepare(frame_set, camera_info)
        if not p.available.any():
            return Result(p.stamp_ns, None, None, (), p.errors, p.timings)
        t0 = time.perf_counter()
        small = np.asarray(self.backend.infer(p.inputs, p.available))[0]
        t1 = time.perf_counter()
        mask = resize_nearest(small, p.out_size)
        color = None
        if self.params.color:
            color = self.palette[mask]
            if self.params.overlay and p.rgb is not None and p.rgb.shape[:2] == mask.shape:
                a = self.params.overlay_alpha
                color = (a * color + (1.0 - a) * p.rgb).round().astype(np.uint8)
        t2 = time.perf_counter()
        timings = {**p.timings, "infer_ms": (t1 - t0) * 1e3, "post_ms": (t2 - t1) * 1e3}
        return Result(p.stamp_ns, mask, color, p.used, p.errors, timings)

    @staticmethod
    def _try(errors: dict[str, str], name: str, fn) -> Any:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - one bad message must only cost its own modality
            errors[name] = str(e) if isinstance(e, ConversionError) else f"{name}: {type(e).__name__}: {e}"
            return None
        if isinstance(out, np.ndarray) and out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            errors[name] = f"{name}: encoded image has NaN or Inf"
            return None
        return out


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize of an ``h x w`` label map to ``size`` (H, W), torch's 'nearest' rule
    (source index = floor(dst * in / out))."""
    h, w = mask.shape
    H, W = size
    if (h, w) == (H, W):
        return np.ascontiguousarray(mask, dtype=np.uint8)
    rows = (np.arange(H) * h) // H
    cols = (np.arange(W) * w) // W
    return np.ascontiguousarray(mask[rows[:, None], cols[None, :]], dtype=np.uint8)


def header_stamp_ns(msg: Any) -> int:
    return stamp_to_ns(msg.header.stamp)


class LatestQueue:
    """Drop-oldest queue of one item between the executor and the inference worker."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``, replacing (dropping) any waiting one. Returns True if one was dropped."""
        with self._cond:
            dropped = self._has
            self.dropped += dropped
            self._item, self._has = item, True
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The waiting item, or None after ``timeout`` s or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._has or self._closed, timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Worker:
    """Runs ``handle(item)`` for every item of a :class:`LatestQueue` on a daemon thread.

    An exception from one item never ends the thread: it is counted in ``failures``, kept in
    ``last_error`` and passed to ``on_error(item, exc)`` (itself guarded), and the worker goes on
    with the next item. ``heartbeat`` (time.monotonic) is refreshed at least every ``poll_s`` while
    idle and after every item; :meth:`watchdog` reports a stopped or stuck thread and restarts a
    stopped one, so a supervisor (the node's diagnostics timer) can keep it alive and say so.
    """

    def __init__(self, queue: LatestQueue, handle: Callable[[Any], None],
                 on_error: Callable[[Any, BaseException], None] | None = None, name: str = "rmmss-inference",
                 poll_s: float = 0.1):
        self.queue, self.handle, self.on_error = queue, handle, on_error
        self.name, self.poll_s = name, poll_s
        self.processed = 0
        self.failures = 0
        self.restarts = 0
        self.last_error = ""
        self.busy_since: float | None = None  # monotonic start of the item in progress
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Worker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                item = self.queue.get(timeout=self.poll_s)
                if item is None:
                    continue
                self.busy_since = time.monotonic()
                try:
                    self.handle(item)
                    self.processed += 1
                except Exception as e:  # noqa: BLE001 - the worker must survive any frame
                    self.failures += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                    if self.on_error is not None:
                        try:
                            self.on_error(item, e)
                        except Exception:  # noqa: BLE001 - a failing reporter must not stop it either
                            traceback.print_exc()
                finally:
                    self.busy_since = None
        except BaseException as e:  # noqa: BLE001 - e.g. SystemExit from a handler: record why it ended
            self.last_error = f"worker stopped: {type(e).__name__}: {e}"
            raise

    def watchdog(self, now_s: float | None = None, stuck_s: float = 10.0) -> str | None:
        """None while healthy; else what is wrong. A stopped thread (not asked to stop) is restarted
        and counted in ``restarts``; an item running for longer than ``stuck_s`` is reported."""
        now_s = time.monotonic() if now_s is None else now_s
        if self._stop.is_set():
            return None
        if not self.alive:
            why = self.last_error or "no error recorded"
            self.restarts += 1
            self.start()
            return f"inference worker had stopped ({why}); restarted ({self.restarts} restart(s))"
        busy = self.busy_since
        if busy is not None and now_s - busy > stuck_s:
            return f"inference worker busy with one frame set for {now_s - busy:.1f} s"
        return None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
