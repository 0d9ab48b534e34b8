"""``perception_node``: the robot's segmentation node, a thin rclpy shell over ROS-free modules.

Subscribes to the enabled sensors with QoS matched to their publishers (rmmss_ros.node.qos_policy;
camera_info latched or volatile), synchronises them with the missing-aware ``Synchronizer``
(rmmss_ros.sync.synchronizer), hands frame sets to an inference worker thread through a bounded
``FrameSetQueue`` (rmmss_ros.node.frame_queue), and publishes ``~/mask`` (mono8 class ids),
``~/mask_color`` (rgb8), ``~/confidence`` (mono8), ``~/used_modalities`` (std_msgs/String JSON) in
the camera's optical frame, ``~/label_info`` (vision_msgs/LabelInfo, latched) and ``/diagnostics``
(rmmss_ros.node.diagnostics); results leave in stamp order and carry the expected quality of the
sensors used (rmmss_ros.outputs). Parameters: rmmss_ros.node.params. The start-up work is split into
``configure`` / ``activate`` (and ``deactivate`` / ``cleanup``) blocks: the plain node runs the
first two at once, the managed node (rmmss_ros.lifecycle) from its transitions. Shutdown: nothing is
published once closing or once the context is gone; SIGINT/SIGTERM end with exit code 0.
"""
from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from functools import partial
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

from rmmss_core import early_stop
from rmmss_core.modalities import MODALITIES
from rmmss_ros.conversions import check_camera_info, fill_image, image_size_of_info, stamp_to_ns
from rmmss_ros.conversions.transport import (
    COMPRESSED_IMAGE,
    resolve_transport,
    transport_mismatch,
    type_mismatch,
)
from rmmss_ros.node.diagnostics import OK, WARN, NodeDiagnostics
from rmmss_ros.node.frame_queue import FrameSetQueue
from rmmss_ros.node.input_diagnostics import inputs_status
from rmmss_ros.node.params import BY_NAME, PARAMS, Param, check_value, validate
from rmmss_ros.node.qos_policy import RELIABLE, TRANSIENT_LOCAL, camera_info_profiles, sensor_profiles
from rmmss_ros.outputs.node_outputs import NodeOutputs, confidence_problem
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
from rmmss_ros.pipeline.worker import Worker
from rmmss_ros.sync.synchronizer import NS, make_synchronizer
from rmmss_ros.tf.buffer import TF_QOS_DEPTH, TF_STATIC_TOPIC, TF_TOPIC, TransformBuffer, frame_name

_GRAPH_CHECK_S = 0.5  # how often publishers' QoS is re-read (qos.reliability: auto, camera_info)
LABEL_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)  # latched, as Nav2's layer reads it


def _label_types() -> tuple[Any, Any] | None:
    """(LabelInfo, VisionClass) from vision_msgs, or None when it is not installed."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


def with_prefix(name: str, error: str) -> str:
    """``error`` led by the input's name once: the pipeline's texts mostly carry it already
    ('lidar: no valid CameraInfo ...', 'event cloud: ...'), so 'lidar: lidar: ...' never shows."""
    return error if error.startswith(name) else f"{name}: {error}"


class StartupError(RuntimeError):
    """The node cannot start: bad parameters or an unusable model file (the text says which)."""


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description)
    if p.choices:
        d.additional_constraints = f"one of {list(p.choices)}"
    if p.range is not None and isinstance(p.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]), to_value=float(p.range[1]),
                                                     step=0.0)]
    elif p.range is not None and isinstance(p.default, int):
        d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
    return d


class PerceptionNode(Node):
    """The node. ``start`` True (the plain node): configure and activate at once, as always;
    False: the managed node (rmmss_ros.lifecycle) drives :meth:`configure`, :meth:`activate`,
    :meth:`deactivate`, :meth:`cleanup` from its lifecycle transitions."""

    def __init__(self, *, start: bool = True, **kwargs: Any):
        super().__init__("perception_node", **kwargs)
        self.values = self._declare_parameters()
        self._last_log: dict[str, float] = {}
        self._closing = threading.Event()
        self._active = False
        self.pipeline: Pipeline | None = None
        self.outputs: NodeOutputs | None = None
        self._timers: list[Any] = []
        self._processing_ns: int | None = None  # stamp of the frame set the worker is on
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if start:
            self.configure()
            self.activate()

    # ------------------------------------------------- lifecycle blocks (plain node: both at start)
    def configure(self) -> None:
        """Read and check the parameters, load the model, create the publishers. Raises
        StartupError naming the problem (nothing stays loaded then)."""
        v = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        reasons = validate(v)
        if reasons:
            raise StartupError("invalid parameters:\n  - " + "\n  - ".join(reasons))
        self.values = v
        self.enabled = tuple(m for m in MODALITIES if v[f"{m}.enabled"])
        sensor_types = {m: (self._sensor_msg_class(m, v), self._sensor_callback(m, v)) for m in self.enabled}
        backend = self._load_backend(v)
        try:
            outputs = NodeOutputs(v, backend.spec, self.enabled, self.get_logger(), _label_types(), self._in_flight)
            problem = confidence_problem(v, backend, v["model_path"])
            if problem:
                raise ValueError(problem)
        except ValueError as e:
            backend.close()
            raise StartupError(str(e)) from None
        self.pipeline = Pipeline(backend, PipelineParams.from_values(v))
        self.outputs = outputs
        self._sub_cb: dict[str, tuple[Any, Any]] = dict(sensor_types)  # key -> (message type, callback)
        self._subs: dict[str, dict[tuple[str, str], Any]] = {}  # key -> {profile: subscription}
        self._topics: dict[str, str] = {}  # key -> resolved topic name
        topics = {m: self._resolve(m, v[f"{m}.topic"]) for m in self.enabled}
        self.camera_info: CameraInfo | None = None
        self._camera_size: tuple[int, int] | None = None  # (H, W) of the last camera image
        self._camera_frame = ""  # the camera optical frame, from its Image / CameraInfo headers
        self._sub_cb["camera_info"] = (CameraInfo, self._on_camera_info)
        self._resolve("camera_info", v["camera_info.topic"])
        if "event" in self.enabled and v["event.camera_info_topic"]:  # the event camera's own calibration
            self._sub_cb["event_camera_info"] = (CameraInfo, self.pipeline.set_event_camera_info)
            self._resolve("event_camera_info", v["event.camera_info_topic"])
        self._start_robot_inputs(v)  # #22: image transports, /tf_static + /tf, the depth CameraInfo
        self.pub_mask = self.create_publisher(Image, v["output.mask_topic"], 5)
        self.pub_color = self.create_publisher(Image, v["output.color_topic"], 5)
        self.pub_used = self.create_publisher(String, v["output.used_topic"], 5)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if outputs.confidence:  # same QoS as the mask: a consumer pairs them by stamp
            outputs.pub_confidence = self.create_publisher(Image, v["output.confidence_topic"], 5)
        if outputs.label_types is not None:
            outputs.pub_label_info = self.create_publisher(outputs.label_types[0], v["output.label_info_topic"],
                                                           LABEL_INFO_QOS)
        self.diag = NodeDiagnostics(self.enabled, topics, self.get_name(),
                                    camera_info_topic=self._topics["camera_info"])
        self._sync_lock = threading.Lock()
        self._publish_lock = threading.Lock()  # releases leave in stamp order from either thread
        self.get_logger().info(
            f"serving {v['model_path']} ({v['backend']}, {v['device']}, {v['precision']}); sensors "
            f"{list(self.enabled)}, reference {v['reference']}; topics {topics}; qos.reliability {v['qos.reliability']}")

    def activate(self) -> None:
        """Subscribe, start the worker and the timers, publish ~/label_info (latched)."""
        v = self.values
        self._closing.clear()
        self.sync = make_synchronizer(v, lambda: self.get_clock().now().nanoseconds)
        on = tuple(m for m in self.enabled if v[f"{m}.enabled"])  # <sensor>.enabled may have changed while inactive
        self.pipeline.params = replace(self.pipeline.params, enabled=on)
        self.queue = FrameSetQueue(v["sync.queue_depth"])
        self._worker = Worker(self.queue, self._handle, self._on_frame_error).start()
        self._active = True
        self._timers = [self.create_timer(v["sync.poll_period_s"], self._poll),
                        self.create_timer(v["diagnostics.period_s"], self._publish_diagnostics),
                        self.create_timer(_GRAPH_CHECK_S, self._update_subscriptions)]
        self._update_subscriptions()
        self.outputs.publish_label_info(self.get_clock().now().to_msg(), self.frame_id())

    def deactivate(self) -> None:
        """Stop output without unloading: stop the worker, unsubscribe, stop the timers, forget held
        results. The worker stops first: it must not run on while the model is unloaded."""
        if not self._active:
            return
        self._active = False
        self._closing.set()  # nothing is published from here
        self.queue.close()
        self._worker.stop(timeout=5.0)
        self.outputs.release.clear()
        for t in self._timers:
            self._destroy(self.destroy_timer, t)
        self._timers = []
        for subs in self._subs.values():
            for sub in subs.values():
                self._destroy(self.destroy_subscription, sub)
            subs.clear()

    def _destroy(self, destroy: Any, entity: Any) -> None:
        """``destroy(entity)``; a failure because the context is already gone (SIGTERM) is no error."""
        try:
            destroy(entity)
        except Exception:
            if self.context.ok():
                raise

    def cleanup(self) -> None:
        """Unload the model and destroy the publishers (back to unconfigured)."""
        self.deactivate()
        if self.pipeline is None:
            return
        close = getattr(self.pipeline.backend, "close", None)
        for pub in (self.pub_mask, self.pub_color, self.pub_used, self.pub_diag, self.outputs.pub_confidence,
                    self.outputs.pub_label_info):
            if pub is not None:
                self._destroy(self.destroy_publisher, pub)
        for sub in getattr(self, "_tf_subs", []):  # #22's /tf_static + /tf, made at configure
            self._destroy(self.destroy_subscription, sub)
        self._tf_subs = []
        if close is not None:
            close()
        self.pipeline = None
        self.outputs = None

    # ------------------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> dict[str, Any]:
        values = {}
        for p in PARAMS:
            try:
                values[p.name] = self.declare_parameter(p.name, p.default, _descriptor(p)).value
            except Exception as e:  # rclpy raises several types for bad overrides (type, range)
                raise StartupError(f"parameter {p.name}: {type(e).__name__}: {e}") from None
        unknown = unknown_overrides(getattr(self, "_parameter_overrides", {}))
        if unknown:  # rclpy ignores overrides nobody declares: a misspelt name would be lost silently
            self.get_logger().warning(f"ignoring unknown parameter(s) {unknown} (-p / --params-file): not "
                                      "parameters of this node (misspelt? see config/perception.yaml)")
        return values

    def _load_backend(self, v: dict[str, Any]):
        from rmmss_core.deploy import create_backend  # heavy import after parameter checks

        try:
            return create_backend(v["backend"], v["model_path"], device=v["device"], precision=v["precision"])
        except Exception as e:  # missing / corrupt file, runtime unavailable: all fatal at start
            raise StartupError(f"cannot load model_path {v['model_path']!r} with backend {v['backend']!r}: "
                               f"{type(e).__name__}: {e}") from None

    def _resolve(self, key: str, topic: str) -> str:
        """Resolved (remapped, namespaced) topic name of ``topic``."""
        name = self.resolve_topic_name(topic)
        self._topics[key] = name
        self._subs[key] = {}
        return name

    def _update_subscriptions(self) -> None:
        """Create / replace subscriptions so that each topic receives from the publishers it has
        (rmmss_ros.node.qos_policy): re-run every _GRAPH_CHECK_S, so publishers started later are
        matched too. Explicit qos.reliability settings are kept for the sensor topics. When a
        topic's publishers all go away (they stop, or the graph empties at shutdown) the current
        subscription is kept: there is nothing to match, and the next publisher is matched when it
        appears. Logs (INFO) only a real change of profile; quiet once shutting down."""
        if self._shutting_down():
            return
        if hasattr(self, "_transport_base"):  # #22: the topic / type each image sensor is offered on
            self._update_transports()
        self._check_types()
        try:
            for key, topic in self._topics.items():
                pubs = [(RELIABLE if i.qos_profile.reliability == ReliabilityPolicy.RELIABLE else "best_effort",
                         TRANSIENT_LOCAL if i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                         else "volatile") for i in self.get_publishers_info_by_topic(topic)]
                have = self._subs[key]
                if not pubs and have:
                    continue  # publishers gone: keep what matched them
                want = (camera_info_profiles(pubs) if key in ("camera_info", "event_camera_info", "depth_camera_info")
                        else sensor_profiles(self.values["qos.reliability"], pubs))
                if set(want) == set(have) or self._shutting_down():
                    continue
                cls, cb = self._sub_cb[key]
                for prof in want:
                    if prof not in have:
                        have[prof] = self.create_subscription(cls, topic, cb, QoSProfile(
                            history=HistoryPolicy.KEEP_LAST, depth=self.values["qos.depth"],
                            reliability=ReliabilityPolicy.RELIABLE if prof[0] == RELIABLE
                            else ReliabilityPolicy.BEST_EFFORT,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL if prof[1] == TRANSIENT_LOCAL
                            else DurabilityPolicy.VOLATILE))
                for prof in [p for p in have if p not in want]:
                    self.destroy_subscription(have.pop(prof))
                self.get_logger().info(f"{topic}: subscribed with {sorted(want)} for publishers {sorted(set(pubs))}")
        except Exception as e:  # noqa: BLE001 - graph queries fail during shutdown; never end spin
            # SIGTERM invalidates the context from rclpy's signal handler before close() runs:
            # an RCLError 'context is invalid' then is shutdown, not a failure
            if not self._shutting_down():
                self._log_throttled("error", "qos", f"subscription update failed: {type(e).__name__}: {e}")

    def _check_types(self) -> None:
        """A sensor topic published with another message type than the node subscribes (an event
        camera's EventPacket with event.format image, ...): WARN every diagnostics period, naming
        the parameter (rclpy would match nothing and say nothing)."""
        try:
            types = dict(self.get_topic_names_and_types())
        except Exception:  # noqa: BLE001 - graph queries fail during shutdown
            return
        for m in self.enabled:
            topic, cls = self._topics.get(m), self._sub_cb.get(m, (None,))[0]
            if topic is None or cls is None:
                continue
            subscribed = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
            wrong = type_mismatch(m, topic, subscribed, types.get(topic, []))
            if wrong:
                self._log_throttled("warn", f"type:{m}", wrong, self.values["diagnostics.period_s"])

    def _shutting_down(self) -> bool:
        """Closing, or the context already shut down (a signal); a failing check counts as yes."""
        try:
            return self._closing.is_set() or not self.context.ok()
        except Exception:  # noqa: BLE001 - a context torn down under us
            return True

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for prm in params:
            p = BY_NAME.get(prm.name)
            if p is None:
                continue  # e.g. use_sim_time
            reason = check_value(p, prm.value)
            if reason is None and not p.runtime and self.pipeline is not None and prm.value != self.values.get(p.name):
                reason = (f"{p.name} is read at start-up (managed node: at configure); restart the node "
                          "(or clean it up and configure it again) to change it")
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[p.name] = prm.value
        if changes and self.pipeline is None:  # unconfigured: read at configure
            self.values.update(changes)
        elif changes:
            if self._active:  # inactive: the synchronizer is made from the values at activate
                reason = self._apply_sync_changes(changes)  # #22: <sensor>.offset_s / slop_s / timeout_s / enabled
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
            self.values.update(changes)
            if "output.quality_floor" in changes:
                self.outputs.set_floor(changes["output.quality_floor"])
            self.pipeline.params = replace(self.pipeline.params, **{
                k: v for k, v in PipelineParams.from_values(self.values).__dict__.items()
                if k in ("color", "overlay", "overlay_alpha")})
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------- sensor inputs (#12: events)
    @staticmethod
    def _sensor_msg_class(m: str, v: dict[str, Any]) -> Any:
        """Message type of sensor ``m``: PointCloud2 (lidar, event cloud), EventPacket, or Image."""
        if m == "lidar" or (m == "event" and v["event.format"] == "cloud"):
            return PointCloud2
        if m == "event" and v["event.format"] == "packet":
            try:
                from event_camera_msgs.msg import EventPacket
            except ImportError as e:
                raise StartupError("event.format is 'packet' but event_camera_msgs is not installed "
                                   f"({e}); build it (see README) or use event.format image/cloud") from None
            return EventPacket
        return Image

    def _sensor_callback(self, m: str, v: dict[str, Any]) -> Any:
        if m == "event" and v["event.format"] != "image":
            return self._on_event_packet
        return partial(self._on_sensor, m)

    def _on_event_packet(self, msg: Any) -> None:
        """Every event packet is buffered (a frame uses all events of its window), then synced."""
        err = self.pipeline.add_event_message(msg)
        if err is not None:
            self._log_throttled("warn", "input:event_packet", f"event: packet skipped: {err}")
        self._on_sensor("event", msg)

    def _log_pipeline_warnings(self, result: Any) -> None:
        for text in getattr(result, "warnings", ()):
            self.get_logger().warning(text)

    # ---------------------------------------------------------------------------- executor side
    def _on_sensor(self, name: str, msg: Any) -> None:
        if name == "rgb":
            self._camera_frame = msg.header.frame_id or self._camera_frame
            if getattr(msg, "height", 0) and msg.width:  # a CompressedImage tells its size once decoded
                self._camera_size = (int(msg.height), int(msg.width))
        try:
            stamp = stamp_to_ns(msg.header.stamp)
            with self._sync_lock:
                sets = self.sync.add(name, stamp, msg)
        except Exception as e:  # never let one message break the executor's callback
            self._log_throttled("error", f"sync:{name}",
                                f"{name}: message dropped by the synchronizer: {type(e).__name__}: {e}")
            self.diag.record_failure(f"sync {name}: {type(e).__name__}: {e}", time.monotonic())
            return
        for fs in sets:
            self.queue.put(fs)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        why = check_camera_info(*image_size_of_info(msg), self._camera_size,  # binned / cropped: the image's size
                                int(self.values["camera_info.max_pixels"]))
        if why is not None:  # an earlier accepted CameraInfo (if any) stays in use
            self.diag.camera_info_rejected(why)
            self._log_throttled("error", "camera_info", f"{self._topics['camera_info']}: {why}", period_s=10.0)
            return
        if self.camera_info is None:
            self.get_logger().info(f"CameraInfo {msg.width}x{msg.height} received on {self._topics['camera_info']}")
        self.camera_info = msg
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.get_clock().now().nanoseconds / 1e9))
        self.diag.camera_info_received(int(msg.width), int(msg.height), since)
        if not self._camera_frame and msg.header.frame_id:
            self._camera_frame = msg.header.frame_id

    def _poll(self) -> None:
        try:
            with self._sync_lock:
                sets = self.sync.poll()
        except Exception as e:  # an exception here would end rclpy.spin: report and go on
            self._log_throttled("error", "sync:poll", f"synchronizer poll failed: {type(e).__name__}: {e}")
            self.diag.record_failure(f"sync poll: {type(e).__name__}: {e}", time.monotonic())
            return
        for fs in sets:
            self.queue.put(fs)
        self._release_held()

    # ------------------------------------------------------------------------------ worker
    def _handle(self, fs: Any) -> None:
        """One frame set on the worker thread. Malformed inputs come back in ``result.errors``
        (ERROR for that sensor); anything raised here is caught by the Worker (_on_frame_error)."""
        if self._closing.is_set():
            return
        info = self.camera_info
        rgb = fs.messages.get("rgb")
        if rgb is not None and not hasattr(rgb, "height"):
            rgb = None  # compressed: the pipeline decodes it and checks the CameraInfo against the image
        if info is not None and rgb is not None and (int(rgb.width), int(rgb.height)) != image_size_of_info(info):
            info = None  # bounded against this very image: never allocate for a mismatching CameraInfo
            why = check_camera_info(*image_size_of_info(self.camera_info), (int(rgb.height), int(rgb.width)), 0)
            self.diag.camera_info_unusable(why or "CameraInfo does not match the camera image")
        self._processing_ns = fs.stamp_ns  # in flight until offered for release (newer results wait for it)
        try:
            result = self.pipeline.process(fs, info)
            self._log_pipeline_warnings(result)
            if result.mask is None:
                self.diag.record(fs.missing, result.used_modalities, result.errors, None, time.monotonic(),
                                 camera_info_given=info is not None)
            else:  # leaves in stamp order (rmmss_ros.outputs.release): now, or once the gap before it closes
                with self._publish_lock:
                    for item in self.outputs.release.push(fs.stamp_ns, (fs, result, info is not None),
                                                          time.monotonic_ns()):
                        self._publish_and_record(*item)
        finally:
            self._processing_ns = None
        for m, err in result.errors.items():
            self._log_throttled("warn", f"input:{m}", with_prefix(m, err))

    def _publish_and_record(self, fs: Any, result: Any, camera_info_given: bool) -> None:
        """Publish one released result and record it (latency from its stamp to now)."""
        latency = None
        if self._publish(fs, result):
            now = self.get_clock().now().nanoseconds
            # stamps from another clock (bag stamps, a sensor's own epoch): measure from receipt
            on_clock = abs(now - fs.stamp_ns) <= NS
            latency = (now - (fs.stamp_ns if on_clock or not fs.opened_ns else fs.opened_ns)) / 1e6
        self.diag.record(fs.missing, result.used_modalities, result.errors, latency, time.monotonic(),
                         camera_info_given=camera_info_given)

    def _in_flight(self) -> list[int]:
        """Stamps of the frame sets queued for the worker or being inferred (they will come out)."""
        busy = self._processing_ns
        return [*self.queue.stamps(), *(() if busy is None else (busy,))]

    def _release_held(self) -> None:
        """Results held for stamp order whose time is up (from the poll timer)."""
        with self._publish_lock:
            for item in self.outputs.release.poll(time.monotonic_ns()):
                self._publish_and_record(*item)

    def _on_frame_error(self, fs: Any, e: BaseException) -> None:
        what = f"{type(e).__name__}: {e}"
        self.diag.record_failure(what, time.monotonic())
        self._log_throttled("error", "frame", f"frame set {getattr(fs, 'stamp_ns', '?')} failed ({self._worker.failures} "
                            f"in total), continuing with the next: {what}\n{traceback.format_exc(limit=4)}")

    def _log_throttled(self, level: str, key: str, text: str, period_s: float = 2.0) -> None:
        """At most one ``level`` line per ``key`` every ``period_s`` (one key per sensor or failure
        kind, so one noisy input cannot hide another); a logging error never escapes."""
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) < period_s:
            return
        self._last_log[key] = now
        # one call site per severity: rclpy refuses a call site whose severity changes between calls
        logger = self.get_logger()
        try:
            if level == "error":
                logger.error(text)
            elif level == "warn":
                logger.warning(text)
            else:
                logger.info(text)
        except Exception as e:  # noqa: BLE001 - the text must still reach the user
            print(f"[{level.upper()}] [{self.get_name()}]: {text} (logger failed: {e})", file=sys.stderr, flush=True)

    def frame_id(self) -> str:
        """The masks' frame: the camera optical frame (camera Image, else CameraInfo header), else
        ``output.frame_id``; never the frame of whichever other sensor was present. A leading
        '/' (ROS 1 style, still sent by some drivers) is dropped: ROS 2's tf2 refuses such frame ids
        in lookups, so consumers could not place the masks."""
        return frame_name(self._camera_frame or self.values["output.frame_id"])

    def _publish(self, fs: Any, result: Any) -> bool:
        """Publish one result; False (nothing sent) once shutting down or the context is gone."""
        if self._closing.is_set() or not self.context.ok():
            return False
        rgb = fs.messages.get("rgb")
        if rgb is not None and rgb.header.frame_id:
            self._camera_frame = rgb.header.frame_id
        stamp = rclpy.time.Time(nanoseconds=fs.stamp_ns).to_msg()
        frame_id = self.frame_id()
        mask = fill_image(Image(), result.mask, "mono8")
        mask.header.stamp, mask.header.frame_id = stamp, frame_id
        msgs = [(self.pub_mask, mask)]
        conf = self.outputs.confidence_message(result, mask.header, Image)  # ~/confidence beside the mask
        if conf is not None:
            msgs.append(conf)
        if result.color is not None:
            color = fill_image(Image(), result.color, "rgb8")
            color.header.stamp, color.header.frame_id = stamp, frame_id
            msgs.append((self.pub_color, color))
        msgs.append((self.pub_used, String(data=json.dumps({
            "stamp": {"sec": stamp.sec, "nanosec": stamp.nanosec}, "frame_id": frame_id,
            "used": list(result.used_modalities), "missing": list(fs.missing),
            **self.outputs.used_fields(result.used_modalities, result.errors)}))))
        try:
            for pub, msg in msgs:
                pub.publish(msg)
        except Exception:
            if self._closing.is_set() or not self.context.ok():
                return False  # shut down under a publish in progress: nothing to report
            raise
        return True

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        with self._sync_lock:
            dead = {m: self.sync.is_dead(m) for m in self.enabled}
            extra = {"queue_drops": self.queue.dropped, "queue_waiting": len(self.queue), "sets_emitted": self.sync.sets_emitted,
                     "sets_complete": self.sync.sets_complete, "time_jumps": self.sync.time_jumps,
                     "pending_overflow": self.sync.pending_overflow}
        extra.update(frames_processed=self._worker.processed, frames_failed=self._worker.failures,
                     worker_restarts=self._worker.restarts)
        out_values, quality_warn = self.outputs.diagnostics()
        extra.update(out_values)
        problem = self._worker.watchdog()
        if problem:
            self._log_throttled("error", "watchdog", problem, period_s=5.0)
        arr = DiagnosticArray()
        arr.header.stamp = now.to_msg()
        if self._closing.is_set() or not self.context.ok():
            return
        statuses = self.diag.statuses(time.monotonic(), self.sync.stats, dead, extra, problem)
        statuses.append(inputs_status(self.get_name(), self.pipeline.inputs, self._transport, self._tf_note))
        for s in statuses:
            if quality_warn and s.name.endswith(": output") and s.level == OK:
                s.level, s.message = WARN, quality_warn  # the subset in use is below output.quality_floor
            arr.status.append(DiagnosticStatus(
                level=bytes([s.level]), name=s.name, message=s.message, hardware_id=s.hardware_id,
                values=[KeyValue(key=k, value=val) for k, val in s.values.items()]))
        self.pub_diag.publish(arr)

    # ------------------------------------------------------------- robot inputs (#22)
    def _start_robot_inputs(self, v: dict[str, Any]) -> None:
        """Image transports to resolve, the TF subscriptions (tf2_msgs from the underlay; without it
        the node runs on the parameters and says so once) and the depth camera's CameraInfo."""
        self._transport: dict[str, Any] = {}
        self._transport_base = {m: self.resolve_topic_name(v[f"{m}.topic"]) for m in ("rgb", "depth", "event")
                                if m in self.enabled and not (m == "event" and v["event.format"] != "image")}
        self._raw_cls = {m: self._sub_cb[m][0] for m in self._transport_base}
        self._tf_note = "extrinsics.source parameters: TF not used"
        if v["extrinsics.source"] != "parameters" and ({"lidar", "event", "depth"} & set(self.enabled)):
            try:
                from tf2_msgs.msg import TFMessage
            except Exception as e:  # noqa: BLE001 - no underlay: parameters only
                self._tf_note = (f"tf2_msgs is not importable ({type(e).__name__}: {e}): extrinsics come from the "
                                 "parameters; source the ROS 2 underlay for /tf_static")
                self.pipeline.inputs.attach_tf(None, self._tf_note)
                self.get_logger().warning(self._tf_note)
            else:
                buf = TransformBuffer()
                self.pipeline.inputs.attach_tf(buf)
                static = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=TF_QOS_DEPTH,
                                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
                dyn = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=TF_QOS_DEPTH,
                                 reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
                self._tf_subs = [self.create_subscription(TFMessage, TF_STATIC_TOPIC,
                                                          lambda m: buf.add_message(m, static=True), static),
                                 self.create_subscription(TFMessage, TF_TOPIC,
                                                          lambda m: buf.add_message(m, static=False), dyn)]
                self._tf_note = f"subscribed {TF_STATIC_TOPIC} and {TF_TOPIC}"
        if "depth" in self.enabled and v["depth.camera_info_topic"]:
            self._sub_cb["depth_camera_info"] = (CameraInfo, self._on_depth_camera_info)
            self._resolve("depth_camera_info", v["depth.camera_info_topic"])
            self.pipeline.inputs.depth_camera_info_expected = True

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        if self.pipeline.inputs.depth_camera_info is None:
            self.get_logger().info(f"depth CameraInfo {msg.width}x{msg.height} ({msg.header.frame_id}) received: "
                                   "depth is reprojected into the camera when it is not registered")
        self.pipeline.inputs.depth_camera_info = msg

    def _update_transports(self) -> None:
        """``<sensor>.transport``: (re)subscribe the raw or compressed topic its publishers offer (the
        QoS re-check then subscribes it)."""
        if self._shutting_down():
            return
        offered = None
        for m, base in self._transport_base.items():
            if offered is None:  # topics with a publisher (the graph also lists subscriber-only topics)
                try:
                    offered = {name: list(types) for name, types in self.get_topic_names_and_types()
                               if self.count_publishers(name) > 0}
                except Exception:  # noqa: BLE001 - graph queries fail during shutdown
                    return
            r = resolve_transport(m, base, self.values[f"{m}.transport"], offered)
            wrong = transport_mismatch(m, base, self.values[f"{m}.transport"], offered)
            if wrong:  # an explicit transport nobody publishes, the other one offered: say it every period
                self._log_throttled("warn", f"transport:{m}", wrong, self.values["diagnostics.period_s"])
            cur = self._transport.get(m)
            if cur is not None and ((cur.topic, cur.msgtype) == (r.topic, r.msgtype) or r.reason.endswith("appears")):
                continue  # unchanged, or nothing offered now: keep what matched before
            for sub in self._subs[m].values():
                self.destroy_subscription(sub)
            self._subs[m] = {}
            self._topics[m] = r.topic
            cls = CompressedImage if r.msgtype == COMPRESSED_IMAGE else self._raw_cls[m]
            self._sub_cb[m] = (cls, self._sub_cb[m][1])
            self._transport[m] = r
            self.get_logger().info(r.reason)

    def _apply_sync_changes(self, changes: dict[str, Any]) -> str | None:
        """Runtime ``<sensor>.offset_s / slop_s / timeout_s / enabled`` -> the synchronizer (and the
        pipeline's enabled set), applied from the next frame set; the reason when refused."""
        keys = ("offset_s", "slop_s", "timeout_s", "enabled")
        per: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            m, _, key = name.partition(".")
            if m in MODALITIES and key in keys and value != self.values.get(name):
                per.setdefault(m, {})[key] = value
        for m, kw in per.items():
            try:
                with self._sync_lock:
                    self.sync.configure(m, **kw)
            except ValueError as e:
                return str(e)
            if "enabled" in kw:
                on = tuple(x for x in MODALITIES if (x == m and kw["enabled"]) or (x != m and x in self.pipeline.params.enabled))
                self.pipeline.params = replace(self.pipeline.params, enabled=on)
            self.get_logger().info(f"{m}: {kw} applied from the next frame set")
        return None

    def close(self) -> None:
        """Stop publishing, stop the worker and release the backend (called on shutdown)."""
        self._closing.set()
        self.cleanup()


def unknown_overrides(overrides: Any) -> list[str]:
    """Names given to the node (``-p``, ``--params-file``) that it does not declare, sorted; rclpy's
    own ``use_sim_time`` and ``qos_overrides.*`` are known."""
    return sorted(n for n in overrides
                  if n not in BY_NAME and n not in ("use_sim_time", "start_type_description_service")
                  and not n.startswith("qos_overrides."))


def _init_rclpy(args: list[str] | None) -> None:
    """``rclpy.init``, with a ROS argument rcl cannot parse (a ``--params-file`` that does not exist
    or is not valid YAML, a malformed ``-p name:=value``) turned into a StartupError naming it.
    rcl raises RCLError here while no context is ok, which the spin loop's handler below would
    otherwise take for a shutdown and exit 0 after rcl's own unnamed 'Failed to parse global
    arguments'."""
    try:
        rclpy.init(args=args)
    except RCLError as e:
        text = str(e).removeprefix("failed to initialize rcl: ")
        # drop rcl's source locations (", at /project/src/parse.c:841, ...")
        text = re.sub(r"(,? at [^,]*\.c:\d+)+", "", text).strip()
        raise StartupError(f"bad ROS arguments: {text}") from None


def main(args: list[str] | None = None, make_node: Any = PerceptionNode, spin: Any = None) -> int:
    """Run the node until SIGINT/SIGTERM (exit 0) or a start-up error (exit 1). The console
    script enters through ``rmmss_ros.node.main``, which arms the start-up stop handlers before
    this module (torch, rclpy) is imported; armed again here for ``python -m``. The managed node
    (rmmss_ros.lifecycle) runs through here too, with its class and its spin loop."""
    early_stop.install()
    node = None
    try:
        _init_rclpy(args)
        node = make_node()
        early_stop.disarm()  # from here rclpy's handlers shut the context down: spin returns
        (spin or rclpy.spin)(node)
    except StartupError as e:
        print(f"[perception_node] start-up failed: {e}", file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # SIGTERM shuts the context down from rclpy's signal handler; when that lands while spin()
        # builds its wait set, rcl reports an invalid context instead of ExternalShutdownException
        if rclpy.ok():
            raise
    finally:
        # a second Ctrl-C / SIGTERM (ros2 launch forwards one, the terminal sends another) must
        # not interrupt the clean-up with a KeyboardInterrupt traceback
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
