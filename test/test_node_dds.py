"""The perception node as a separate process over real DDS, with a real tiny checkpoint and the
torch backend: masks with the right stamps/shapes/classes; a sensor killed mid-run is reported
STALE and not used while masks keep coming; resumed, it is used again; malformed messages are
survived and reported; BEST_EFFORT publishers are received; a bad model file fails at start."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rmmss_ros.conversions import fill_cloud, fill_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 64
pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("dds_domain")]
# short timeouts and a fast diagnostics period: a death is seen within a second
FAST = ("rgb.timeout_s:=0.3", "depth.timeout_s:=0.3", "event.timeout_s:=0.3", "lidar.timeout_s:=0.3",
        "diagnostics.period_s:=0.25")




class Rig:
    """Test-side node: BEST_EFFORT sensor publishers and subscribers to the node's outputs."""

    def __init__(self):
        rclpy.init()
        self.node = rclpy.create_node("rmmss_test_rig")
        be = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.pubs = {"rgb": self.node.create_publisher(Image, "camera/image_raw", be),
                     "depth": self.node.create_publisher(Image, "depth/image_raw", be),
                     "event": self.node.create_publisher(Image, "events", be),
                     "lidar": self.node.create_publisher(PointCloud2, "lidar/points", be),
                     "info": self.node.create_publisher(CameraInfo, "camera/camera_info", be)}
        self.masks: list[Image] = []
        self.colors: list[Image] = []
        self.used: list[dict] = []
        self.diags: list[DiagnosticArray] = []
        self.node.create_subscription(Image, "/perception_node/mask", self.masks.append, 10)
        self.node.create_subscription(Image, "/perception_node/mask_color", self.colors.append, 10)
        self.node.create_subscription(String, "/perception_node/used_modalities",
                                      lambda m: self.used.append(json.loads(m.data)), 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        self.stamps: list[tuple[int, int]] = []
        rng = np.random.default_rng(0)
        self.rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        self.depth = rng.uniform(1, 30, (H, W)).astype(np.float32)
        self.event = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        pts = np.zeros(300, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
        pts["x"], pts["y"], pts["z"] = rng.uniform(2, 20, 300), rng.uniform(-5, 5, 300), rng.uniform(-1, 2, 300)
        pts["intensity"] = rng.uniform(0, 1, 300)
        self.points = pts
        self.info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
        self.info.k = [40.0, 0.0, W / 2, 0.0, 40.0, H / 2, 0.0, 0.0, 1.0]
        self.info.d = [0.0] * 5
        self.info.p = [40.0, 0.0, W / 2, 0.0, 0.0, 40.0, H / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        self.info.header.frame_id = "camera"

    def publish_frame(self, sensors=("rgb", "depth", "event", "lidar"), malformed: str | None = None) -> None:
        stamp = self.node.get_clock().now().to_msg()
        msgs = {"rgb": fill_image(Image(), self.rgb, "rgb8"), "depth": fill_image(Image(), self.depth, "32FC1"),
                "event": fill_image(Image(), self.event, "rgb8"),
                "lidar": fill_cloud(PointCloud2(), self.points, PointField)}
        if malformed == "depth":
            msgs["depth"].data = bytes(100)  # wrong size
        elif malformed == "event":
            msgs["event"].encoding = "yuv_weird"  # unknown encoding
        elif malformed == "lidar":
            msgs["lidar"].row_step = 7  # inconsistent cloud
        for m in sensors:
            msgs[m].header.stamp = stamp
            msgs[m].header.frame_id = "camera" if m != "lidar" else "lidar"
            self.pubs[m].publish(msgs[m])
        self.info.header.stamp = stamp
        self.pubs["info"].publish(self.info)
        self.stamps.append((stamp.sec, stamp.nanosec))

    def run(self, seconds: float, rate_hz: float = 10.0, **kw) -> int:
        """Publish frames at rate_hz for ``seconds`` while spinning; returns frames published."""
        n, t_end, next_pub = 0, time.monotonic() + seconds, time.monotonic()
        while time.monotonic() < t_end:
            if time.monotonic() >= next_pub:
                self.publish_frame(**kw)
                n += 1
                next_pub += 1.0 / rate_hz
            rclpy.spin_once(self.node, timeout_sec=0.005)
        return n

    def wait_for(self, cond, timeout: float, **kw) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            self.run(0.2, **kw)
            if cond():
                return True
        return False

    def sensor_levels(self, since: int = 0) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for arr in self.diags[since:]:
            for s in arr.status:
                if s.name.startswith("perception_node: "):
                    out.setdefault(s.name.split(": ", 1)[1], []).append(s.level[0] if isinstance(s.level, bytes)
                                                                      else int(s.level))
        return out

    def close(self):
        self.node.destroy_node()
        rclpy.try_shutdown()


def test_node_over_dds_keeps_publishing_when_a_sensor_dies(tiny_model, node_processes):
    proc = node_processes.start(tiny_model, *FAST)
    rig = Rig()
    try:
        assert rig.wait_for(lambda: len(rig.masks) >= 3, timeout=60.0), "no mask from the node:\n" + node_processes.stop(proc)
        # phase 1: all sensors -> masks with camera stamps, camera shape, valid classes, all used
        n0 = len(rig.used)
        rig.run(1.5)
        m = rig.masks[-1]
        assert (m.height, m.width, m.encoding, m.header.frame_id) == (H, W, "mono8", "camera")
        assert np.frombuffer(m.data, np.uint8).max() < 25
        assert (m.header.stamp.sec, m.header.stamp.nanosec) in rig.stamps
        c = rig.colors[-1]
        assert (c.height, c.width, c.encoding) == (H, W, "rgb8")
        assert all(set(u["used"]) == {"rgb", "depth", "event", "lidar"} for u in rig.used[n0 + 2:])

        # phase 2: kill the LiDAR stream; masks keep coming at the reference rate without it
        rig.run(0.6, sensors=("rgb", "depth", "event"))
        n1, d1 = len(rig.used), len(rig.diags)
        sent = rig.run(2.0, sensors=("rgb", "depth", "event"))
        got = rig.used[n1:]
        assert len(got) >= 0.6 * sent, f"{len(got)} masks for {sent} camera frames with the LiDAR dead"
        assert all("lidar" not in u["used"] and "lidar" in u["missing"] for u in got)
        assert 3 in rig.sensor_levels(d1)["lidar"]  # STALE
        assert set(rig.sensor_levels(d1)["rgb"]) == {0}

        # phase 3: resume it -> used again
        rig.run(0.8)
        n2 = len(rig.used)
        rig.run(1.0)
        assert rig.used[n2:] and all("lidar" in u["used"] for u in rig.used[n2:])

        # phase 4: malformed messages never crash the node; they are reported and not used
        for bad in ("depth", "event", "lidar"):
            n3, d3 = len(rig.used), len(rig.diags)
            rig.run(0.8, malformed=bad)
            assert proc.poll() is None, "node died on malformed " + bad
            got = rig.used[n3:]
            assert got and all(bad not in u["used"] and bad in u["errors"] for u in got[1:])
            assert 2 in rig.sensor_levels(d3)[bad]  # ERROR
        rig.run(0.5)
        n4 = len(rig.used)
        rig.run(0.8)
        assert all(set(u["used"]) == {"rgb", "depth", "event", "lidar"} for u in rig.used[n4 + 1:])
    finally:
        log = node_processes.stop(proc)
        rig.close()
    assert proc.returncode == 0, log


@pytest.mark.parametrize("content,match", [(None, "does not exist"), (b"not a checkpoint", "cannot load")])
def test_bad_model_file_fails_at_start_with_a_clear_error(tmp_path, content, match, node_processes):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    proc = node_processes.start(path, *FAST)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "start-up failed" in out and str(path) in out and match in out, out


@pytest.mark.parametrize("ros_args,names", [
    (("--params-file", "{tmp}/missing.yaml"), "{tmp}/missing.yaml"),
    (("--params-file", "{tmp}/bad.yaml"), "{tmp}/bad.yaml"),
    (("-p", "lidar.extrinsic:=[1,"), "lidar.extrinsic:=[1,"),
])
def test_unparsable_ros_arguments_fail_at_start_naming_them(tmp_path, ros_args, names):
    """rcl refuses these in rclpy.init; the node used to exit 0 after rcl's unnamed 'Failed to
    parse global arguments'."""
    import subprocess
    import sys

    (tmp_path / "bad.yaml").write_text("perception_node: [1,\n")
    args = [a.format(tmp=tmp_path) for a in ros_args]
    proc = subprocess.run([sys.executable, "-m", "rmmss_ros.node.perception_node", "--ros-args",
                           "-p", f"model_path:={ROOT / 'rosbags/student.pt'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "start-up failed: bad ROS arguments" in out and names.format(tmp=tmp_path) in out, out
    assert "Traceback" not in out and "/project/src" not in out, out


def test_a_misspelt_parameter_is_warned_not_silently_ignored(node_processes):
    """rclpy drops overrides nobody declares: `-p lidar.timout_s:=0.1` ran on the default timeout
    without a word."""
    from rmmss_ros.node.perception_node import unknown_overrides

    assert unknown_overrides({"lidar.timout_s": 1, "lidar.timeout_s": 1, "use_sim_time": True,
                              "qos_overrides./tf.subscription.depth": 1}) == ["lidar.timout_s"]
    proc = node_processes.start(ROOT / "rosbags/student.pt", "lidar.timout_s:=0.1", "use_sim_time:=true")
    lines = []
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end:
        line = proc.stdout.readline()
        lines.append(line)
        if "serving " in line or not line:
            break
    out = "".join(lines) + node_processes.stop(proc)
    assert "ignoring unknown parameter(s) ['lidar.timout_s']" in out, out
    assert proc.returncode == 0, out
