"""Shared pytest set-up: small thread pools (2-core CI machines), deterministic seeds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, int(os.environ.get("OMP_NUM_THREADS", "2")))))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# --- DDS tests: the node as a separate process, talked to with rclpy clients --------------------
# Shared by every test that starts `perception_node` (test_node_dds.py, test_node_rates_dds.py,
# test_event_packet_dds.py, ...). Each module gets its own ROS_DOMAIN_ID (parallel runs on one host
# never hear each other) with discovery kept on this host.

@pytest.fixture(scope="module")
def dds_domain():
    """An isolated ROS_DOMAIN_ID for this module (``RMMSS_TEST_DOMAIN`` if set, else from the pid and
    the module's name) and LOCALHOST discovery; the previous values are restored afterwards."""
    import zlib

    old = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ["ROS_DOMAIN_ID"] = os.environ.get("RMMSS_TEST_DOMAIN", str(1 + (os.getpid() + zlib.crc32(
        os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0].encode())) % 200))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    yield int(os.environ["ROS_DOMAIN_ID"])
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tiny_model_factory(tmp_path_factory):
    """``make(input_size=(32, 48), num_classes=25) -> Path``: an untrained tiny any-modal checkpoint
    (real format, real spec), one file per argument set per module."""
    made: dict[tuple, Path] = {}

    def make(input_size: tuple[int, int] = (32, 48), num_classes: int = 25):
        key = (tuple(input_size), num_classes)
        if key not in made:
            from rmmss_core.models import create_model, save_model_checkpoint
            from rmmss_core.spec import PreprocessSpec

            path = tmp_path_factory.mktemp("model") / f"tiny_{input_size[0]}x{input_size[1]}.pt"
            save_model_checkpoint(path, create_model("anymodal", size="tiny", num_classes=num_classes),
                                  PreprocessSpec(input_size=tuple(input_size)))
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="module")
def tiny_model(tiny_model_factory):
    return tiny_model_factory()


class NodeProcesses:
    """Starts ``perception_node`` as its console script would run (``python -m
    rmmss_ros.node.perception_node --ros-args -p ...``) and stops it as a terminal does (SIGINT, then
    a kill after ``timeout`` s); processes still running at the end of the test are stopped."""

    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def __init__(self):
        self.procs: list = []

    def start(self, model, *params: str, env: dict[str, str] | None = None):
        import subprocess
        import sys

        args = [sys.executable, "-m", "rmmss_ros.node.perception_node", "--ros-args", "-p", f"model_path:={model}"]
        for p in params:
            args += ["-p", p]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
        proc = subprocess.Popen(args, cwd=self.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc, sig=None, timeout: float = 20.0) -> str:
        """Stop ``proc`` (SIGINT unless ``sig``) and return everything it printed."""
        import signal
        import subprocess

        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if sig is None else sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.stdout.read() if proc.stdout and not proc.stdout.closed else ""

    def close(self) -> None:
        for p in self.procs:
            self.stop(p, timeout=5.0)


@pytest.fixture
def node_processes(dds_domain):
    nodes = NodeProcesses()
    yield nodes
    nodes.close()
