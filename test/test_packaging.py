"""The repository is a ROS 2 ament_python package that `colcon build` installs completely."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).parent / "colcon"


def test_package_xml_is_format3_ament_python_with_runtime_deps():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "rmmss_ros"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "launch", "launch_ros",
                "python3-torch", "python3-numpy", "python3-open3d-pip",
                "python3-opencv"):  # every camera encoding is converted with OpenCV (cv2)
        assert dep in exec_deps, f"package.xml lacks <exec_depend>{dep}</exec_depend>"
    test_deps = {e.text for e in root.findall("test_depend")}
    assert {"python3-pytest", "launch_testing"} <= test_deps


def test_resource_marker_exists():
    assert (ROOT / "resource" / "rmmss_ros").is_file()


@pytest.mark.skipif(not COLCON.exists(), reason="colcon is installed by `make test`")
def test_colcon_build_installs_everything(tmp_path):
    src = tmp_path / "ws" / "src" / "rmmss_ros"
    # a workspace as robot users make it: the repository dropped into src/
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "install", "log", "runs", "data", "__pycache__", "*.egg-info"))
    ws = tmp_path / "ws"
    out = subprocess.run([str(COLCON), "build", "--base-paths", "src"], cwd=ws,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 package finished" in out.stdout
    install = ws / "install" / "rmmss_ros"
    lib = install / "lib" / "rmmss_ros"
    assert (lib / "perception_node").is_file() and (lib / "rmmss").is_file()
    assert os.access(install / "bin" / "rmmss", os.X_OK)  # on PATH after sourcing the workspace
    share = install / "share" / "rmmss_ros"
    assert (share / "package.xml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "rmmss_ros").is_file()
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml")):
        repo_files = sorted(p.name for p in (ROOT / folder).glob(pattern))
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert installed == repo_files, f"{folder}/ not installed completely"
    sample = sorted(p.relative_to(ROOT / "rosbags") for p in (ROOT / "rosbags").rglob("*") if p.is_file())
    inst = sorted(p.relative_to(share / "rosbags") for p in (share / "rosbags").rglob("*") if p.is_file()) \
        if (share / "rosbags").exists() else []
    assert inst == sample, "rosbags/ not installed completely"
    site = list((install / "lib").glob("python3*/site-packages"))
    assert site and (site[0] / "rmmss_core" / "__init__.py").is_file()
    assert (site[0] / "rmmss_ros" / "__init__.py").is_file()
