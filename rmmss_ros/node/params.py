"""The perception node's parameters: one table for the node (descriptors, ranges, validation),
``config/perception.yaml`` and ``launch/perception.launch.py`` (ROS-free; tested without rclpy).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rmmss_core.modalities import MODALITIES
from rmmss_ros.pipeline.extrinsics import DEFAULT_T_CAM_LIDAR, IDENTITY_4X4

BACKENDS = ("torch", "onnxruntime", "tensorrt")
EVENT_FORMATS = ("image", "cloud", "packet")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Param:
    """One parameter: name (dots = YAML nesting), default (its type is the parameter's type),
    description, and an optional numeric ``range`` (inclusive) or string ``choices``."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    runtime: bool = False  # may change while running (others need a restart)


_TOPICS = {"rgb": "camera/image_raw", "depth": "depth/image_raw", "event": "events",
           "lidar": "lidar/points"}
_SENSOR_KIND = {"rgb": "sensor_msgs/Image (any camera encoding: rgb/bgr(a) 8/16, mono8/16, yuv422, yuv422_yuy2, "
                       "nv12/nv21/nv24, bayer_* 8/16)",
                "depth": "sensor_msgs/Image (32FC1 metres or 16UC1 millimetres)",
                "event": "sensor_msgs/Image event frame, PointCloud2 x, y, t, polarity, or event_camera_msgs/EventPacket "
                         "(see event.format)",
                "lidar": "sensor_msgs/PointCloud2 with x, y, z (intensity optional)"}


def _sensor_params(m: str) -> list[Param]:
    return [
        Param(f"{m}.enabled", True, f"Subscribe to the {m} sensor and use it when present (settable while "
              f"running for a sensor enabled at start-up: false = neither waited for nor used).", runtime=True),
        Param(f"{m}.topic", _TOPICS[m], f"Input topic: {_SENSOR_KIND[m]}."),
        Param(f"{m}.slop_s", 0.05, f"Largest |{m} stamp + offset - reference stamp| accepted in a frame set (s).",
              (0.0, 1.0), runtime=True),
        Param(f"{m}.offset_s", 0.0, f"Added to {m} stamps to align them with the reference clock (s).",
              (-1.0, 1.0), runtime=True),
        Param(f"{m}.reuse", True, f"A {m} message serves every reference stamp within its slop (true: a 10 Hz "
              f"LiDAR reaches every 30 Hz camera frame), or one frame set only (false: message_filters' rule)."),
        Param(f"{m}.timeout_s", 0.25, f"Wait at most this long after the reference stamp for {m}; "
              f"silent longer than this = dead, marked missing at once (s).", (0.01, 10.0), runtime=True),
    ]


# --- robot inputs (#22): image transports, extrinsics from TF, unregistered depth ----------------
ROBOT_INPUT_PARAMS: tuple[Param, ...] = (
    *[Param(f"{m}.transport", "auto", f"How {m} images arrive: raw (sensor_msgs/Image on {m}.topic), compressed "
            f"(sensor_msgs/CompressedImage on {m}.topic + '/{'compressedDepth' if m == 'depth' else 'compressed'}', "
            "image_transport's names, decoded with OpenCV) or auto (what the topic's publishers offer: the raw "
            "topic if published, else its compressed one; the choice is logged).",
            choices=("raw", "compressed", "auto")) for m in ("rgb", "depth", "event")],
    Param("extrinsics.source", "auto", "Where the LiDAR / event / depth extrinsics come from: parameters (the "
          "16-number *.extrinsic), tf (the /tf_static + /tf chain from the sensor message's frame_id to the "
          "camera's; no chain = that sensor missing) or auto (a parameter when set, TF otherwise).",
          choices=("auto", "tf", "parameters")),
    Param("depth.camera_info_topic", "", "sensor_msgs/CameraInfo of a depth camera not registered to the colour "
          "camera ('' = none: depth must be registered; a depth image of another size is refused, never "
          "resized); with it depth is reprojected into the camera, nearest surface winning."),
    Param("depth.extrinsic", list(IDENTITY_4X4), "T_cam_depth, 16 numbers row-major: maps depth-camera optical-"
          "frame points into the camera optical frame (used to register depth; extrinsics.source decides)."),
)


PARAMS: tuple[Param, ...] = (
    Param("model_path", "", "Model file: rmmss checkpoint (.pt) or exported ONNX (.onnx). Required; its "
          "stored preprocessing spec drives the encoders."),
    Param("backend", "torch", "Inference backend.", choices=BACKENDS),
    Param("device", "cpu", "Inference device: cpu, cuda or cuda:N."),
    Param("precision", "fp32", "Inference precision.", choices=PRECISIONS),
    Param("preprocess.device", "cpu", "Where each frame is decoded, encoded and preprocessed: cpu, or a torch "
          "device (cuda, cuda:N) that receives the raw message bytes (rmmss_ros.pipeline.gpu)."),
    Param("preprocess.threads", 2, "CPU preprocessing threads: 2 runs the LiDAR branch (decode, projection, "
          "encoding, normalisation) on a side thread beside the images; 1 does everything in turn on the "
          "inference worker. Same model inputs either way.", (1, 2)),
    Param("reference", "rgb", "Reference of each frame set: a sensor's stamps, or 'rate' for fixed ticks.",
          choices=(*MODALITIES, "rate")),
    Param("rate_hz", 10.0, "Output rate when reference is 'rate', and fallback rate while the reference "
          "sensor is dead (if fallback_on_dead_reference).", (0.1, 200.0)),
    Param("fallback_on_dead_reference", True, "Keep publishing at rate_hz from the other sensors while "
          "the reference sensor is dead."),
    Param("sync.queue_size", 10, "Messages buffered per sensor (drop-oldest).", (1, 1000)),
    Param("sync.reorder_window_s", 0.1, "Reference frames older than the newest emitted set by at most this "
          "are still processed (out-of-order delivery) (s).", (0.0, 2.0)),
    Param("sync.queue_depth", 4, "Frame sets waiting for the inference worker; when full the oldest of the "
          "poorest (fewest modalities) is dropped and counted.", (1, 64)),
    Param("sync.poll_period_s", 0.01, "How often deadlines are checked (s).", (0.001, 0.5)),
    *[p for m in MODALITIES for p in _sensor_params(m)],
    Param("event.format", "image", "Event input: 'image' (encoded event frame), 'cloud' (raw events "
          "x, y, t relative to header.stamp, polarity) or 'packet' (event_camera_msgs/EventPacket, mono or evt3); "
          "cloud and packet events are buffered and accumulated over the model's event window.",
          choices=EVENT_FORMATS),
    Param("camera_info.topic", "camera/camera_info", "sensor_msgs/CameraInfo of the camera; needed to project "
          "LiDAR and to size event images."),
    Param("camera_info.max_pixels", 4096 * 3072, "Largest accepted CameraInfo width x height before a camera "
          "image has been seen (afterwards it must match the camera image).", (1, 1 << 28)),
    Param("camera_info.rectified", False, "The camera image is rectified: project with P instead of K + D."),
    Param("lidar.extrinsic", list(DEFAULT_T_CAM_LIDAR), "T_cam_lidar, 16 numbers row-major: maps LiDAR-frame "
          "points into the camera optical frame (x right, y down, z forward)."),
    # --- sensor input definitions (#12): intensity units, event-camera calibration --------------
    Param("lidar.intensity_units", "", "Units of the cloud's intensity field: '' (the model's spec, by default "
          "'auto': from the PointField datatype: uint8/float -> byte 0..255, uint16/uint32 and Ouster layouts -> counts16), 'unit' "
          "(0..1), 'byte' (0..255: Velodyne, Hesai, Livox, nuScenes), 'counts16' (Ouster photon counts).",
          choices=("", "auto", "unit", "byte", "counts16")),
    Param("event.camera_info_topic", "", "sensor_msgs/CameraInfo of the event camera ('' = none: events are "
          "taken as camera pixels, scaled when the event sensor's size differs)."),
    Param("event.extrinsic", list(IDENTITY_4X4), "T_cam_event, 16 numbers row-major: maps event-camera "
          "optical-frame points into the camera optical frame (its rotation maps event pixels, see README)."),
    *ROBOT_INPUT_PARAMS,
    Param("qos.reliability", "auto", "Sensor subscriptions' reliability. auto: match each topic's publishers "
          "as they appear (reliable when all are, else best_effort), like rosbag2; best_effort connects to all "
          "but loses large messages from reliable publishers; reliable never receives from best_effort ones. "
          "camera_info always matches latched and volatile publishers.",
          choices=("auto", "best_effort", "reliable")),
    Param("qos.depth", 5, "Subscriber history depth (KEEP_LAST).", (1, 100)),
    Param("output.mask_topic", "~/mask", "Class-id mask, mono8 (pixel = class id), input stamp and frame_id."),
    Param("output.color_topic", "~/mask_color", "Colour mask, rgb8 (palette of the model's classes)."),
    Param("output.used_topic", "~/used_modalities", "std_msgs/String JSON per mask: stamp and modalities used."),
    Param("output.frame_id", "", "frame_id of the masks until a camera Image or CameraInfo has given the "
          "camera optical frame (masks always carry the camera's frame, whichever sensors were used)."),
    Param("output.color", True, "Publish the colour mask.", runtime=True),
    Param("output.overlay", False, "Blend the colour mask over the camera image when the camera is present.",
          runtime=True),
    Param("output.overlay_alpha", 0.5, "Weight of the colour mask in the overlay.", (0.0, 1.0), runtime=True),
    # -- what planners need (issue #23; rmmss_ros.outputs) --
    Param("output.confidence", True, "Publish ~/confidence: mono8, the winning class's softmax probability x 255 "
          "(round half up), computed on the device with the argmax; same stamp, frame_id and size as the mask."),
    Param("output.confidence_topic", "~/confidence", "Per-pixel confidence, mono8 (see output.confidence)."),
    Param("output.min_confidence", 0.0, "Mark pixels whose confidence is below this probability as 255 "
          "(unlabeled) in the mask; 0 = off. Also the threshold of ~/label_info.", (0.0, 1.0)),
    Param("output.label_info_topic", "~/label_info", "vision_msgs/LabelInfo (reliable, transient local): class "
          "ids and names from the model, 255 = unlabeled, the threshold (needs vision_msgs)."),
    Param("output.quality_floor", 0.0, "WARN in the output diagnostics while the expected mIoU of the sensor subset "
          "in use (the table rmmss eval --store-quality keeps with the model) is below this; 0 = off.",
          (0.0, 1.0), runtime=True),
    Param("sync.late_frames", "reorder", "A frame set that comes after a newer one was processed: reorder (hold "
          "a newer result up to sync.reorder_window_s so masks leave in stamp order) or drop (publish at once, "
          "drop the late one). Mask stamps never go backwards either way.", choices=("reorder", "drop")),
    Param("diagnostics.period_s", 1.0, "Period of /diagnostics (s).", (0.1, 60.0)),
)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat dotted names -> nested dicts (the ``ros__parameters`` layout of a params YAML)."""
    out: dict[str, Any] = {}
    for name, v in values.items():
        d = out
        *parents, leaf = name.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = v
    return out


def check_value(p: Param, value: Any) -> str | None:
    """The reason ``value`` is invalid for ``p``, or None."""
    if p.choices is not None and value not in p.choices:
        return f"{p.name} must be one of {list(p.choices)}, got {value!r}"
    if p.range is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{p.name} must be a number in [{p.range[0]}, {p.range[1]}], got {value!r}"
        if not p.range[0] <= value <= p.range[1]:
            return f"{p.name} must be in [{p.range[0]}, {p.range[1]}], got {value}"
    if p.name in ("lidar.extrinsic", "event.extrinsic", "depth.extrinsic"):
        return _check_extrinsic(value, p.name)
    return None


def _check_extrinsic(v: Any, name: str = "lidar.extrinsic") -> str | None:
    try:
        m = [float(x) for x in v]
    except (TypeError, ValueError):
        return f"{name} must be 16 numbers, got {v!r}"
    if len(m) != 16 or not all(math.isfinite(x) for x in m):
        return f"{name} must be 16 finite numbers (4 x 4 row-major), got {len(m)}: {m}"
    if m[12:] != [0.0, 0.0, 0.0, 1.0]:
        return f"{name} last row must be 0 0 0 1, got {m[12:]}"
    R = [m[0:3], m[4:7], m[8:11]]
    for i in range(3):
        for j in range(3):
            dot = sum(R[i][k] * R[j][k] for k in range(3))
            if abs(dot - (1.0 if i == j else 0.0)) > 1e-3:
                return f"{name} rotation (upper-left 3 x 3) is not orthonormal"
    return None


def validate(values: Mapping[str, Any]) -> list[str]:
    """All reasons the full parameter set is invalid (empty list = valid)."""
    reasons = [r for name, v in values.items() if name in BY_NAME
               for r in [check_value(BY_NAME[name], v)] if r]
    enabled = [m for m in MODALITIES if values.get(f"{m}.enabled", True)]
    if not enabled:
        reasons.append("no sensor enabled: set at least one of rgb/depth/event/lidar.enabled to true")
    ref = values.get("reference", "rgb")
    if ref != "rate" and ref not in enabled:
        reasons.append(f"reference {ref!r} is not an enabled sensor (enabled: {enabled}); enable it or use 'rate'")
    if not str(values.get("model_path", "")).strip():
        reasons.append("model_path is empty: give the .pt checkpoint or .onnx file to serve")
    return reasons


def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    return repr(v)


def render_yaml(width: int = 100) -> str:
    """``config/perception.yaml``: every parameter with its default and its description as a
    comment (regenerate with ``python -m rmmss_ros.node.params > config/perception.yaml``)."""
    import textwrap

    lines = ["# rmmss perception_node parameters: every one, with its default. The table in",
             "# rmmss_ros/node/params.py is the single source; test/test_pipeline.py checks this file against it.",
             "# Ranges and choices are enforced by the node. (restart) = read at start-up only.",
             "/**:", "  ros__parameters:"]
    tree = nested({p.name: p for p in PARAMS})  # groups keep the order of their first parameter

    def emit(node: dict[str, Any], indent: str) -> None:
        for key, p in node.items():
            if isinstance(p, dict):
                lines.append(f"{indent}{key}:")
                emit(p, indent + "  ")
                continue
            text = p.description
            if p.range is not None:
                text += f" Range [{p.range[0]}, {p.range[1]}]."
            if p.choices:
                text += f" One of: {', '.join(p.choices)}."
            if not p.runtime:
                text += " (restart)"
            lines.extend(textwrap.wrap(text, width, initial_indent=indent + "# ", subsequent_indent=indent + "# ",
                                       break_on_hyphens=False))
            lines.append(f"{indent}{key}: {_yaml_value(p.default)}")

    emit(tree, "    ")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_yaml(), end="")
