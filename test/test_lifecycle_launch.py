"""``lifecycle:=true`` without the launch system: the argument's rule, the executable it names is a
console script of the package, the launch file builds a ``LifecycleNode`` from it, and package.xml
declares what the managed node and ~/label_info need. (The launch system is not installed here:
test_launch_perception.py runs the real launch where it is.)"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rmmss_ros.node.launch_args import executable, managed

ROOT = Path(__file__).resolve().parents[1]


def test_lifecycle_argument():
    assert managed("true") and managed(" True ") and not managed("false") and not managed("")
    with pytest.raises(ValueError, match="lifecycle"):
        managed("yes please")
    assert executable(False) == "perception_node" and executable(True) == "perception_lifecycle_node"


def test_both_executables_are_console_scripts_and_the_launch_file_uses_them():
    setup = (ROOT / "setup.py").read_text()
    scripts = dict(re.findall(r'"(\w+) = ([\w.:]+)"', setup))
    assert scripts[executable(False)] == "rmmss_ros.node.main:main"
    assert scripts[executable(True)] == "rmmss_ros.lifecycle.main:main"
    launch = (ROOT / "launch" / "perception.launch.py").read_text()
    assert "LifecycleNode if is_managed else Node" in launch and "executable=executable(is_managed)" in launch
    assert 'DeclareLaunchArgument("lifecycle", default_value="false"' in launch


def test_package_declares_vision_msgs_and_lifecycle_msgs():
    xml = (ROOT / "package.xml").read_text()
    for dep in ("vision_msgs", "lifecycle_msgs", "rclpy"):
        assert f"<exec_depend>{dep}</exec_depend>" in xml, dep
