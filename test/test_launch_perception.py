"""launch_testing: the launch file starts the node from a params file (no launch argument given:
the file's model_path/backend must be used), a test publishes at real rates with real driver QoS
(RELIABLE images at 30 Hz, LiDAR at 10 Hz, CameraInfo latched once) and checks the masks, their
frame_id, the diagnostics, and that the node shuts down with exit code 0 and no traceback.

Runs under launch_testing's pytest plugin (ROS 2 underlay or /opt/ros/jazzy); skipped with the
reason on a plain machine. ROS_DOMAIN_ID from RMMSS_TEST_DOMAIN, else derived from the pid."""
from __future__ import annotations

import json
import os
import tempfile
import time
import unittest
from pathlib import Path

import pytest
from _launch_prefix import SKIP_REASON, make_prefix, prefix_env, write_tiny_model

pytest.importorskip("launch_testing", reason=SKIP_REASON)
pytest.importorskip("launch_ros", reason=SKIP_REASON)

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import String  # noqa: E402

import launch  # noqa: E402
from rmmss_ros.conversions import fill_cloud, fill_image  # noqa: E402

H, W = 48, 64
CAM_FRAME = "launch_camera_optical_frame"
os.environ["ROS_DOMAIN_ID"] = os.environ.get("RMMSS_TEST_DOMAIN", str(1 + (os.getpid() + 53) % 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("OMP_NUM_THREADS", "1")
pytestmark = pytest.mark.ros


@pytest.mark.launch_test
def generate_test_description():
    tmp = Path(tempfile.mkdtemp(prefix="rmmss_launch_"))
    prefix = make_prefix(tmp / "prefix")
    os.environ.update(prefix_env(prefix))  # the launch file resolves its share/ through the index
    model = write_tiny_model(tmp / "tiny.pt", (H, W))
    params = tmp / "params.yaml"
    # only the params file names the model (and backend): launch arguments must not override it
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model_path": str(model), "backend": "torch", "diagnostics": {"period_s": 0.5}}}}))
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(prefix / "share" / "rmmss_ros" / "launch" / "perception.launch.py")),
        launch_arguments={"params_file": str(params)}.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestLiveRates(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("rmmss_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_masks_frame_id_and_diagnostics_at_real_rates(self):
        node = self.node
        rel = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pubs = {"rgb": node.create_publisher(Image, "camera/image_raw", rel),
                "depth": node.create_publisher(Image, "depth/image_raw", rel),
                "event": node.create_publisher(Image, "events", rel),
                "lidar": node.create_publisher(PointCloud2, "lidar/points", rel)}
        info_pub = node.create_publisher(CameraInfo, "camera/camera_info", latched)
        masks, used, diags = [], [], []
        node.create_subscription(Image, "/perception_node/mask", masks.append, 50)
        node.create_subscription(String, "/perception_node/used_modalities", lambda m: used.append(json.loads(m.data)), 50)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
        rng = np.random.default_rng(0)
        msgs = {"rgb": fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8"),
                "depth": fill_image(Image(), rng.uniform(1, 30, (H, W)).astype(np.float32), "32FC1"),
                "event": fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8")}
        pts = np.zeros(2000, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
        pts["x"], pts["y"], pts["z"] = rng.uniform(2, 20, 2000), rng.uniform(-5, 5, 2000), rng.uniform(-1, 2, 2000)
        msgs["lidar"] = fill_cloud(PointCloud2(), pts, PointField)
        for m, msg in msgs.items():
            msg.header.frame_id = CAM_FRAME if m == "rgb" else f"{m}_frame"
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
        info.k = [40.0, 0.0, W / 2, 0.0, 40.0, H / 2, 0.0, 0.0, 1.0]
        info.d = [0.0] * 5
        info.p = [40.0, 0.0, W / 2, 0.0, 0.0, 40.0, H / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.header.frame_id = CAM_FRAME
        info_pub.publish(info)
        rates = {"rgb": 30.0, "depth": 30.0, "event": 30.0, "lidar": 10.0}
        sent = []

        def run(seconds):
            t0 = time.monotonic()
            due = dict.fromkeys(rates, t0)
            while time.monotonic() < t0 + seconds:
                for m, hz in rates.items():
                    if time.monotonic() >= due[m]:
                        msgs[m].header.stamp = node.get_clock().now().to_msg()
                        pubs[m].publish(msgs[m])
                        if m == "rgb":
                            sent.append((msgs[m].header.stamp.sec, msgs[m].header.stamp.nanosec))
                        due[m] += 1.0 / hz
                rclpy.spin_once(node, timeout_sec=max(0.0, min(due.values()) - time.monotonic()))

        t_end = time.monotonic() + 90
        while len(masks) < 5 and time.monotonic() < t_end:
            run(0.5)
        self.assertGreaterEqual(len(masks), 5, "no masks from the launched node")
        run(1.0)
        n_sent, n_used, d0 = len(sent), len(used), len(diags)
        run(4.0)
        d1 = len(diags)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.02)
        stamps = {(u["stamp"]["sec"], u["stamp"]["nanosec"]) for u in used[n_used:]}
        got = [s for s in sent[n_sent:] if s in stamps]
        self.assertGreaterEqual(len(got), 0.9 * len(sent[n_sent:]))
        self.assertGreaterEqual(sum("lidar" in u["used"] for u in used[n_used:]), 0.9 * len(got))
        self.assertEqual({m.header.frame_id for m in masks}, {CAM_FRAME})
        levels = {}
        for arr in diags[d0 + 1:d1]:
            for s in arr.status:
                levels.setdefault(s.name.split(": ", 1)[-1], set()).add(s.level[0] if isinstance(s.level, bytes)
                                                                         else int(s.level))
        for name in ("rgb", "depth", "event", "lidar", "camera_info", "output"):
            self.assertEqual(levels.get(name), {0}, f"{name}: {levels.get(name)}")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code_0(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_no_traceback(self, proc_output):
        for out in proc_output:
            self.assertNotIn(b"Traceback", out.text if isinstance(out.text, bytes) else out.text.encode())
