"""Issue 11 follow-up #5: SIGTERM in the first 1-2 s (imports, model load) killed
``perception_node`` and ``rmmss play`` with exit code 143 (default action). The entry points now
arm SIGINT/SIGTERM handlers before torch / rclpy are imported and exit 0 quietly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmmss_core import early_stop

ROOT = Path(__file__).resolve().parents[1]


def test_armed_handler_raises_early_stop_and_disarmed_does_nothing():
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert early_stop.install() and early_stop.armed()
        with pytest.raises(early_stop.EarlyStop):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
        assert issubclass(early_stop.EarlyStop, KeyboardInterrupt)
        early_stop.disarm()
        os.kill(os.getpid(), signal.SIGTERM)  # disarmed: nothing happens (rclpy may chain to it)
        time.sleep(0.05)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored by the parent: stays ignored
        early_stop.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        early_stop.disarm()
        for s, h in old.items():
            signal.signal(s, h)


def test_importing_rmmss_core_and_the_cli_loads_no_torch():
    """The entry points can only arm the handlers before torch if importing them is light."""
    code = ("import sys, rmmss_core, rmmss_core.cli, rmmss_core.early_stop, rmmss_ros.node.main; "
            "print('torch' in sys.modules); from rmmss_core import MODALITIES; print(MODALITIES[0])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "rgb"], out.stderr


def _caught(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (/proc/PID/status SigCgt)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        pass
    return False


def _torch_loaded(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "libtorch" in f.read()


@pytest.mark.ros
@pytest.mark.parametrize("cmd", ["node", "play"])
def test_sigterm_right_after_start_exits_0_quietly(cmd):
    """SIGTERM as soon as the process has any SIGTERM handler: that handler must already be in
    place before torch is loaded (old code: only rclpy's, after torch and the model, so a SIGTERM
    before killed it with 143), and the process exits 0 without a traceback."""
    pytest.importorskip("rclpy")
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to see when the handler is installed")
    args = {"node": [sys.executable, "-m", "rmmss_ros.node.main", "--ros-args", "-p",
                     "model_path:=rosbags/student.pt"],
            "play": [sys.executable, "-m", "rmmss_cli", "play", "rosbags/sample", "--loop"]}[cmd]
    env = dict(os.environ, ROS_DOMAIN_ID=str(os.getpid() % 80 + 40), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t_end = time.monotonic() + 60
        while not _caught(proc.pid, signal.SIGTERM) and proc.poll() is None and time.monotonic() < t_end:
            time.sleep(0.001)
        torch_before = _torch_loaded(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not torch_before, "the SIGTERM handler was installed only after torch was loaded"
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
