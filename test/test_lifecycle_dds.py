"""The managed node (``perception_node --lifecycle``; launch ``lifecycle:=true``) driven through its
``change_state`` / ``get_state`` services from an rclpy client, as ``ros2 lifecycle set`` and Nav2's
lifecycle manager do: a failing configure stays unconfigured with the reason; configure loads,
activate publishes, deactivate stops output without unloading, cleanup unloads, shutdown from
unconfigured, inactive and active ends the process with exit code 0. The plain node (default) is
covered by test_node_dds.py, unchanged."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from conftest import NodeProcesses  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from test_node_dds import Rig  # noqa: E402 - the DDS rig of the node tests

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("dds_domain")]
ROOT = Path(__file__).resolve().parents[1]
stop_node = NodeProcesses.stop
NODE = "/perception_node"


def start_managed(model: Path, *params: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "rmmss_ros.lifecycle.main", "--ros-args", "-p", f"model_path:={model}",
            "-p", "depth.enabled:=false", "-p", "event.enabled:=false", "-p", "lidar.enabled:=false",
            "-p", "rgb.timeout_s:=0.3", "-p", "diagnostics.period_s:=0.25"]
    for p in params:
        args += ["-p", p]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextmanager
def managed_node(model: Path) -> Iterator[tuple[subprocess.Popen, Rig, dict[str, str]]]:
    """The managed node as a process beside a DDS rig: ``(proc, rig, log)``. On leaving the block
    (also on a failed assertion) the node is stopped, its output put in ``log["out"]``, the rig
    closed."""
    proc, rig, log = start_managed(model), Rig(), {}
    try:
        yield proc, rig, log
    finally:
        log["out"] = stop_node(proc)
        rig.close()


class Manager:
    """A lifecycle-manager-shaped client of one node (``ros2 lifecycle set/get``)."""

    def __init__(self, rig: Rig):
        self.rig = rig
        node = rig.node
        self.change = node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = node.create_client(GetState, f"{NODE}/get_state")
        self.params = node.create_client(SetParameters, f"{NODE}/set_parameters")
        t_end = time.monotonic() + 60
        while not (self.change.service_is_ready() and self.get.service_is_ready()):
            assert time.monotonic() < t_end, "lifecycle services never appeared"
            rclpy.spin_once(node, timeout_sec=0.1)

    def _call(self, client, req, timeout: float = 60.0):
        fut = client.call_async(req)
        t_end = time.monotonic() + timeout
        while not fut.done():
            assert time.monotonic() < t_end, f"no answer from {client.srv_name}"
            rclpy.spin_once(self.rig.node, timeout_sec=0.05)
        return fut.result()

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label

    def set(self, label: str) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(label=label))).success

    def set_id(self, transition_id: int) -> bool:
        """By id, as Nav2's lifecycle manager sends transitions."""
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def set_param(self, name: str, value: str) -> bool:
        p = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
        return self._call(self.params, SetParameters.Request(parameters=[p])).results[0].successful


def _masks_during(rig: Rig, seconds: float) -> int:
    n = len(rig.masks)
    rig.run(seconds, rate_hz=20.0, sensors=("rgb",))
    return len(rig.masks) - n


def test_every_transition_through_the_services(tiny_model, tmp_path):
    with managed_node(tmp_path / "absent.pt") as (proc, rig, log):  # configure must fail: the model file is missing
        mgr = Manager(rig)
        assert mgr.state() == "unconfigured"
        assert rig.node.count_publishers(f"{NODE}/mask") == 0
        assert not mgr.set("configure"), "configure with a missing model must fail"
        assert mgr.state() == "unconfigured"
        assert mgr.set_param("model_path", str(tiny_model)), "parameters may change while unconfigured"
        assert mgr.set("configure") and mgr.state() == "inactive"
        assert _masks_during(rig, 1.0) == 0, "inactive must publish nothing"
        assert mgr.set("activate") and mgr.state() == "active"
        assert rig.wait_for(lambda: len(rig.masks) >= 5, timeout=30.0, sensors=("rgb",)), "no masks once active"
        assert mgr.set("deactivate") and mgr.state() == "inactive"
        rig.run(0.5, rate_hz=20.0, sensors=("rgb",))  # what was in flight
        assert _masks_during(rig, 1.0) == 0, "deactivated must publish nothing"
        t0 = time.monotonic()
        assert mgr.set("activate") and time.monotonic() - t0 < 5.0, "re-activating must not reload the model"
        assert rig.wait_for(lambda: _masks_during(rig, 0.5) > 0, timeout=20.0, sensors=("rgb",))
        assert mgr.set("deactivate") and mgr.set("cleanup") and mgr.state() == "unconfigured"
        assert mgr.set("configure") and mgr.set("activate")
        assert rig.wait_for(lambda: _masks_during(rig, 0.5) > 0, timeout=30.0, sensors=("rgb",))
        assert mgr.set("shutdown")
        proc.wait(timeout=20)
    out = log["out"]
    assert proc.returncode == 0, out[-3000:]
    assert "configure failed, staying unconfigured" in out and "absent.pt" in out
    assert out.count("configured: model loaded") == 2 and "model unloaded" in out
    assert "shut down from active" in out


@pytest.mark.parametrize("path", [("shutdown",), ("configure", "shutdown")], ids=["unconfigured", "inactive"])
def test_shutdown_from_unconfigured_and_inactive_exits_0(tiny_model, path):
    with managed_node(tiny_model) as (proc, rig, log):
        mgr = Manager(rig)
        for label in path:
            assert mgr.set(label), label
        proc.wait(timeout=20)
    out = log["out"]
    assert proc.returncode == 0, out[-3000:]
    assert "shut down from " + ("unconfigured" if len(path) == 1 else "inactive") in out


def test_sigint_while_managed_exits_0(tiny_model):
    with managed_node(tiny_model) as (proc, rig, log):
        Manager(rig).set("configure")
    out = log["out"]
    assert proc.returncode == 0, out[-3000:]


def test_a_transition_the_state_lacks_is_refused_and_the_node_lives(tiny_model):
    """configure twice / activate while unconfigured, by id (Nav2's lifecycle manager) or label:
    success false, state unchanged, the node still serves (it used to die with rclpy's RCLError)."""
    with managed_node(tiny_model) as (proc, rig, log):
        mgr = Manager(rig)
        assert not mgr.set_id(Transition.TRANSITION_ACTIVATE) and mgr.state() == "unconfigured"
        assert mgr.set_id(Transition.TRANSITION_CONFIGURE) and mgr.state() == "inactive"
        assert not mgr.set_id(Transition.TRANSITION_CONFIGURE) and mgr.state() == "inactive"
        assert not mgr.set("configure") and mgr.state() == "inactive"
        assert proc.poll() is None
        assert mgr.set("activate") and mgr.state() == "active"
        assert mgr.set("shutdown")
        proc.wait(timeout=20)
    out = log["out"]
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "change_state: no transition 1 from state inactive" in out, out[-3000:]
