"""Everything ``launch/perception.launch.py`` decides, tested without ROS 2's launch system (not
installable here; the launch-system tests, test_launch_perception.py and test_node_launch_cli.py,
run where /opt/ros/jazzy is). The rules live in ``rmmss_ros.node.launch_args``; the launch file is
checked to use them and nothing else."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rmmss_ros.node import params as P
from rmmss_ros.node.launch_args import OVERRIDES, REMAPS, on_node_exit, overrides, remappings

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "perception.launch.py"


def test_parameter_arguments_override_only_when_given():
    """Issue 11 #11: launch defaults overrode the params file's backend/model_path/use_sim_time."""
    assert overrides({name: "" for name in OVERRIDES}) == {}
    assert overrides({}) == {}
    assert overrides({"backend": "onnxruntime", "use_sim_time": "True", "model_path": ""}) == \
        {"backend": "onnxruntime", "use_sim_time": True}
    assert overrides({"use_sim_time": "false"}) == {"use_sim_time": False}
    with pytest.raises(ValueError, match="use_sim_time.*true or false"):
        overrides({"use_sim_time": "yes"})


def test_every_override_is_a_node_parameter():
    assert set(OVERRIDES) - {"use_sim_time"} <= set(P.BY_NAME)


def test_remaps_default_to_the_nodes_own_topics():
    """Each *_topic argument remaps exactly the topic the node subscribes by default."""
    defaults = {P.BY_NAME[f"{m}.topic"].default for m in ("rgb", "depth", "event", "lidar")}
    defaults.add(P.BY_NAME["camera_info.topic"].default)
    assert {topic for topic, _ in REMAPS.values()} == defaults
    assert remappings({}) == [(topic, topic) for topic, _ in REMAPS.values()]
    got = dict(remappings({"lidar_topic": "/velodyne_points", "camera_topic": ""}))
    assert got["lidar/points"] == "/velodyne_points" and got["camera/image_raw"] == "camera/image_raw"


def test_a_node_that_fails_makes_the_launch_fail():
    assert on_node_exit(0) is None
    for code in (1, -9, None):
        with pytest.raises(RuntimeError, match="exited with code"):
            on_node_exit(code)


def test_the_launch_file_wires_exactly_these_rules():
    """The launch file (parsed, not run) declares every override with an empty default, every remap
    with the node's topic as default, and takes its decisions from launch_args only."""
    tree = ast.parse(LAUNCH.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == "rmmss_ros.node.launch_args" for a in n.names}
    assert {"OVERRIDES", "REMAPS", "overrides", "remappings", "on_node_exit"} <= imported
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"overrides", "remappings", "on_node_exit", "DeclareLaunchArgument", "OpaqueFunction"} <= called
    assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert not assigned & {"OVERRIDES", "REMAPS"}, "the tables live in launch_args only"
    src = LAUNCH.read_text()
    assert 'DeclareLaunchArgument(name, default_value="", description=desc) for name, desc in OVERRIDES' in src
    assert "DeclareLaunchArgument(name, default_value=topic, description=desc)" in src
