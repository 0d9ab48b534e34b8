"""A minimal install prefix that makes this source tree findable as the ROS package
``rmmss_ros`` (ament index marker, share/rmmss_ros/{launch,config,package.xml} linked to the
checkout, lib/rmmss_ros/perception_node running this tree's node with this interpreter), so that
``ros2 launch rmmss_ros perception.launch.py`` and launch_testing use the real launch file without
a colcon build. A colcon install does the same (test_packaging.py builds one)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SKIP_REASON = ("ROS 2's launch system (launch, launch_ros, launch_testing, ros2launch) is not installable "
               "here: no registry ships it and ../shared/ros2-jazzy builds message packages only. "
               "These tests run on a machine with ROS 2 Jazzy: source /opt/ros/jazzy/setup.bash && make test-launch")


def make_prefix(prefix: Path) -> Path:
    share = prefix / "share" / "rmmss_ros"
    share.mkdir(parents=True, exist_ok=True)
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    (index / "rmmss_ros").write_text("")
    for name in ("launch", "config"):  # real folders of links: ros2 launch walks them
        (share / name).mkdir(exist_ok=True)
        for f in (ROOT / name).iterdir():
            if f.is_file() and not (share / name / f.name).exists():
                (share / name / f.name).symlink_to(f)
    if not (share / "package.xml").exists():
        (share / "package.xml").symlink_to(ROOT / "package.xml")
    lib = prefix / "lib" / "rmmss_ros"
    lib.mkdir(parents=True, exist_ok=True)
    exe = lib / "perception_node"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}} exec {sys.executable} "
                   f"-m rmmss_ros.node.main \"$@\"\n")
    exe.chmod(0o755)
    return prefix


def prefix_env(prefix: Path) -> dict[str, str]:
    old = os.environ.get("AMENT_PREFIX_PATH", "")
    return {"AMENT_PREFIX_PATH": f"{prefix}:{old}" if old else str(prefix)}


def write_tiny_model(path: Path, size=(48, 64)) -> Path:
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec

    save_model_checkpoint(path, create_model("anymodal", size="tiny", num_classes=25),
                          PreprocessSpec(input_size=size))
    return path
