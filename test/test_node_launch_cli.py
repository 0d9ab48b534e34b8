"""``ros2 launch rmmss_ros perception.launch.py`` as a user runs it (issue 11 #10, #11): a node
that dies at start ends the launch with a non-zero exit code; Ctrl-C (SIGINT to the whole process
group, as a terminal sends it) ends it with 0 and no traceback. Needs ros2launch (ROS 2 underlay or
/opt/ros/jazzy); skipped with the reason on a plain machine."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from _launch_prefix import SKIP_REASON, make_prefix, prefix_env, write_tiny_model

pytest.importorskip("ros2launch", reason=SKIP_REASON)
ROS2 = shutil.which("ros2")
pytestmark = [pytest.mark.ros, pytest.mark.skipif(ROS2 is None, reason=SKIP_REASON)]


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, **prefix_env(make_prefix(tmp_path / "prefix")), OMP_NUM_THREADS="1",
                ROS_DOMAIN_ID=os.environ.get("RMMSS_TEST_DOMAIN", str(1 + (os.getpid() + 31) % 200)),
                ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_HOME=str(tmp_path / "ros_home"),
                PYTHONUNBUFFERED="1")


def test_launch_exits_non_zero_when_the_node_dies(tmp_path):
    out = subprocess.run([ROS2, "launch", "rmmss_ros", "perception.launch.py",
                          f"model_path:={tmp_path / 'missing.pt'}"], env=_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    log = out.stdout + out.stderr
    assert out.returncode != 0, log
    assert "start-up failed" in log and "missing.pt" in log, log


@pytest.mark.parametrize("how", ["ctrl-c", "node-sigterm"])
def test_launch_stops_cleanly_with_params_file_values(tmp_path, how):
    """The model and backend come from the params file only (no launch argument). Ctrl-C (SIGINT
    to the process group), or SIGTERM to the node (a supervisor stopping it), ends everything with
    exit code 0 and no traceback. (SIGTERM to `ros2 launch` itself is upstream launch's business:
    it cancels its run loop and warns about orphaned processes.)"""
    model = write_tiny_model(tmp_path / "tiny.pt")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"model_path": str(model),
                                                                   "backend": "torch"}}}))
    proc = subprocess.Popen([ROS2, "launch", "rmmss_ros", "perception.launch.py", f"params_file:={params}"],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    t_end = time.monotonic() + 90
    while time.monotonic() < t_end and not any("serving" in ln for ln in lines) and proc.poll() is None:
        time.sleep(0.2)
    assert any("serving" in ln and str(model) in ln for ln in lines), "".join(lines)
    time.sleep(1.0)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # like a terminal's Ctrl-C: launch and node both get it
    else:
        pid = int(next(ln for ln in lines if "process started with pid" in ln).rsplit("[", 1)[1].split("]")[0])
        os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reader.join(timeout=5)
    log = "".join(lines)
    assert proc.returncode == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
