"""What ``launch/perception.launch.py`` decides, without the launch system (ROS-free, tested here;
the launch file only wires these into launch actions, so a robot's ``ros2 launch`` and these tests
see the same rules).

- :data:`OVERRIDES`: launch arguments that set a node parameter only when given (non-empty), so
  the params file's values are never overridden by launch defaults; :func:`overrides`.
- :data:`REMAPS`: ``<argument>: (node topic, description)``; each remaps one input topic, with the
  node's own topic name as its default (the ``<sensor>.topic`` parameters); :func:`remappings`.
- :func:`managed`: the ``lifecycle`` argument: ``true`` starts the managed node
  (``perception_lifecycle_node``, a launch_ros ``LifecycleNode``), ``false`` (default) the plain one.
- :func:`on_node_exit`: the node ended: ``None`` when it exited 0 (the launch shuts down cleanly),
  else ``RuntimeError`` (``ros2 launch`` exits 1: a start-up failure must not look like success).
"""
from __future__ import annotations

from collections.abc import Mapping

# parameter launch arguments: set on the node only when given on the command line
OVERRIDES: dict[str, str] = {
    "model_path": "rmmss checkpoint (.pt) or exported ONNX (.onnx); default: the params file's",
    "backend": "inference backend: torch, onnxruntime or tensorrt; default: the params file's",
    "device": "cpu, cuda or cuda:N; default: the params file's",
    "precision": "fp32, fp16 or bf16; default: the params file's",
    "use_sim_time": "use /clock (bags, simulation): true or false; default: the params file's",
}
BOOLEAN_OVERRIDES = frozenset({"use_sim_time"})

# launch argument -> (the node's topic it remaps, description); the default is the node's topic
REMAPS: dict[str, tuple[str, str]] = {
    "camera_topic": ("camera/image_raw", "camera image (sensor_msgs/Image)"),
    "camera_info_topic": ("camera/camera_info", "camera calibration (sensor_msgs/CameraInfo)"),
    "depth_topic": ("depth/image_raw", "depth image (32FC1 m or 16UC1 mm)"),
    "event_topic": ("events", "event frame Image, raw-event PointCloud2 or EventPacket"),
    "lidar_topic": ("lidar/points", "LiDAR cloud (sensor_msgs/PointCloud2)"),
}


def overrides(values: Mapping[str, str]) -> dict[str, str | bool]:
    """Node parameters from the launch arguments' values: only the non-empty ones; booleans parsed
    as ROS does (``true``/``false``, any case). An unparseable boolean raises ValueError naming it."""
    out: dict[str, str | bool] = {}
    for name in OVERRIDES:
        value = str(values.get(name, ""))
        if value == "":
            continue
        if name in BOOLEAN_OVERRIDES:
            if value.lower() not in ("true", "false"):
                raise ValueError(f"launch argument {name}:={value!r}: expected true or false")
            out[name] = value.lower() == "true"
        else:
            out[name] = value
    return out


def remappings(values: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(node topic, target)`` for every input topic; a missing or empty argument keeps the name."""
    return [(topic, str(values.get(arg) or topic)) for arg, (topic, _) in REMAPS.items()]


LIFECYCLE_HELP = ("true: a managed (lifecycle) node for ros2 lifecycle / Nav2's lifecycle_manager "
                  "(set its bond_timeout: 0.0); false: the plain node, active at once")


def managed(value: str) -> bool:
    """The ``lifecycle`` launch argument: True for a managed node; ValueError for another value."""
    v = str(value).strip().lower()
    if v not in ("true", "false", ""):
        raise ValueError(f"launch argument lifecycle:={value!r}: expected true or false")
    return v == "true"


def executable(is_managed: bool) -> str:
    return "perception_lifecycle_node" if is_managed else "perception_node"


def on_node_exit(returncode: int | None) -> None:
    """None for a clean exit; RuntimeError for any other (``ros2 launch`` then exits 1)."""
    if returncode != 0:
        raise RuntimeError(f"perception_node exited with code {returncode}")
