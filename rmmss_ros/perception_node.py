"""``perception_node``: the robot's segmentation node, a thin rclpy shell.

Subscribes to the enabled sensors (sensor-data QoS), synchronises them with the missing-aware
``Synchronizer`` (rmmss_ros.sync), hands frame sets to an inference worker thread through a
drop-oldest queue of one, and publishes ``~/mask`` (mono8 class ids), ``~/mask_color`` (rgb8),
``~/used_modalities`` (std_msgs/String JSON) and ``/diagnostics``. Parameters: rmmss_ros.params.
"""
from __future__ import annotations

import json
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
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from rmmss_core.modalities import MODALITIES
from rmmss_ros.conversions import fill_image, stamp_to_ns
from rmmss_ros.diagnostics import NodeDiagnostics
from rmmss_ros.params import BY_NAME, PARAMS, Param, check_value, validate
from rmmss_ros.pipeline import LatestQueue, Pipeline, PipelineParams, Worker
from rmmss_ros.sync import make_synchronizer


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
    def __init__(self, **kwargs: Any):
        super().__init__("perception_node", **kwargs)
        v = self._declare_parameters()
        reasons = validate(v)
        if reasons:
            raise StartupError("invalid parameters:\n  - " + "\n  - ".join(reasons))
        self.values = v
        self.enabled = tuple(m for m in MODALITIES if v[f"{m}.enabled"])
        self.pipeline = Pipeline(self._load_backend(v), PipelineParams.from_values(v))
        ref = v["reference"]
        self.sync = make_synchronizer(v, lambda: self.get_clock().now().nanoseconds)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=v["qos.depth"],
                         reliability=ReliabilityPolicy.BEST_EFFORT if v["qos.reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        topics = {}
        for m in self.enabled:
            cls = self._sensor_msg_class(m, v)
            sub = self.create_subscription(cls, v[f"{m}.topic"], self._sensor_callback(m, v), qos)
            topics[m] = sub.topic_name
        self.camera_info: CameraInfo | None = None
        self.create_subscription(CameraInfo, v["camera_info.topic"], self._on_camera_info, qos)
        self._subscribe_event_camera_info(v, qos)
        self.pub_mask = self.create_publisher(Image, v["output.mask_topic"], 5)
        self.pub_color = self.create_publisher(Image, v["output.color_topic"], 5)
        self.pub_used = self.create_publisher(String, v["output.used_topic"], 5)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag = NodeDiagnostics(self.enabled, topics, self.get_name())
        self.queue = LatestQueue()
        self._sync_lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._worker = Worker(self.queue, self._handle, self._on_frame_error).start()
        self.create_timer(v["sync.poll_period_s"], self._poll)
        self.create_timer(v["diagnostics.period_s"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"serving {v['model_path']} ({v['backend']}, {v['device']}, {v['precision']}); sensors "
            f"{list(self.enabled)}, reference {ref}; topics {topics}")

    # ------------------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> dict[str, Any]:
        values = {}
        for p in PARAMS:
            try:
                values[p.name] = self.declare_parameter(p.name, p.default, _descriptor(p)).value
            except Exception as e:  # rclpy raises several types for bad overrides (type, range)
                raise StartupError(f"parameter {p.name}: {type(e).__name__}: {e}") from None
        return values

    def _load_backend(self, v: dict[str, Any]):
        from rmmss_core.deploy import create_backend  # heavy import after parameter checks

        try:
            return create_backend(v["backend"], v["model_path"], device=v["device"], precision=v["precision"])
        except Exception as e:  # missing / corrupt file, runtime unavailable: all fatal at start
            raise StartupError(f"cannot load model_path {v['model_path']!r} with backend {v['backend']!r}: "
                               f"{type(e).__name__}: {e}") from None

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for prm in params:
            p = BY_NAME.get(prm.name)
            if p is None:
                continue  # e.g. use_sim_time
            reason = check_value(p, prm.value)
            if reason is None and not p.runtime and prm.value != self.values.get(p.name):
                reason = f"{p.name} is read at start-up; restart the node to change it"
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[p.name] = prm.value
        if changes:
            self.values.update(changes)
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

    def _subscribe_event_camera_info(self, v: dict[str, Any], qos: QoSProfile) -> None:
        if "event" in self.enabled and v["event.camera_info_topic"]:
            self.create_subscription(CameraInfo, v["event.camera_info_topic"],
                                     self.pipeline.set_event_camera_info, qos)

    def _log_pipeline_warnings(self, result: Any) -> None:
        for text in getattr(result, "warnings", ()):
            self.get_logger().warning(text)

    # ---------------------------------------------------------------------------- executor side
    def _on_sensor(self, name: str, msg: Any) -> None:
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
        self.camera_info = msg

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

    # ------------------------------------------------------------------------------ worker
    def _handle(self, fs: Any) -> None:
        """One frame set on the worker thread. Malformed inputs come back in ``result.errors``
        (ERROR for that sensor); anything raised here is caught by the Worker (_on_frame_error)."""
        result = self.pipeline.process(fs, self.camera_info)
        self._log_pipeline_warnings(result)
        latency = None
        if result.mask is not None:
            self._publish(fs, result)
            latency = (self.get_clock().now().nanoseconds - fs.stamp_ns) / 1e6
        self.diag.record(fs.missing, result.used_modalities, result.errors, latency, time.monotonic())
        for m, err in result.errors.items():
            self._log_throttled("warn", f"input:{m}", f"{m}: {err}")

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
        try:
            getattr(self.get_logger(), "warning" if level == "warn" else level)(text)
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    def _publish(self, fs: Any, result: Any) -> None:
        stamp = rclpy.time.Time(nanoseconds=fs.stamp_ns).to_msg()
        ref = fs.messages.get(fs.reference) if fs.reference else None
        src = ref or next(iter(fs.messages.values()), None) or self.camera_info
        frame_id = src.header.frame_id if src is not None else ""
        mask = fill_image(Image(), result.mask, "mono8")
        mask.header.stamp, mask.header.frame_id = stamp, frame_id
        self.pub_mask.publish(mask)
        if result.color is not None:
            color = fill_image(Image(), result.color, "rgb8")
            color.header.stamp, color.header.frame_id = stamp, frame_id
            self.pub_color.publish(color)
        self.pub_used.publish(String(data=json.dumps({
            "stamp": {"sec": stamp.sec, "nanosec": stamp.nanosec}, "frame_id": frame_id,
            "used": list(result.used_modalities), "missing": list(fs.missing),
            "errors": result.errors})))

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        with self._sync_lock:
            dead = {m: self.sync.is_dead(m) for m in self.enabled}
            extra = {"queue_drops": self.queue.dropped, "sets_emitted": self.sync.sets_emitted,
                     "sets_complete": self.sync.sets_complete, "time_jumps": self.sync.time_jumps,
                     "pending_overflow": self.sync.pending_overflow}
        extra.update(frames_processed=self._worker.processed, frames_failed=self._worker.failures,
                     worker_restarts=self._worker.restarts)
        problem = self._worker.watchdog()
        if problem:
            self._log_throttled("error", "watchdog", problem, period_s=5.0)
        arr = DiagnosticArray()
        arr.header.stamp = now.to_msg()
        for s in self.diag.statuses(time.monotonic(), self.sync.stats, dead, extra, problem):
            arr.status.append(DiagnosticStatus(
                level=bytes([s.level]), name=s.name, message=s.message, hardware_id=s.hardware_id,
                values=[KeyValue(key=k, value=val) for k, val in s.values.items()]))
        self.pub_diag.publish(arr)

    def close(self) -> None:
        """Stop the worker and release the backend (called on shutdown)."""
        self._worker.stop(timeout=5.0)
        close = getattr(self.pipeline.backend, "close", None)
        if close is not None:
            close()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
        rclpy.spin(node)
    except StartupError as e:
        print(f"[perception_node] start-up failed: {e}", file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
