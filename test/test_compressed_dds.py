"""The perception node over real DDS on a robot's compressed streams (issue #22): a jpeg camera on
``camera/image_raw/compressed`` and compressedDepth on ``depth/image_raw/compressedDepth`` with
the default ``transport: auto`` (nothing published on the raw topics) give masks that use depth in
>= 95% of them; the choice shows in the 'inputs' diagnostic; ``offset_s`` / ``timeout_s`` are
settable while running and bad values are refused with the reason."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rmmss_ros.conversions.compressed import encode_compressed, encode_compressed_depth  # noqa: E402

H, W = 48, 64
pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("dds_domain")]


def test_compressed_camera_and_compressed_depth_over_dds(tiny_model, node_processes):
    proc = node_processes.start(tiny_model, "event.enabled:=false", "lidar.enabled:=false",
                                "depth.timeout_s:=0.5", "diagnostics.period_s:=0.5")
    rclpy.init()
    node = rclpy.create_node("rmmss_compressed_rig")
    used: list[dict] = []
    diags: list[DiagnosticArray] = []
    try:
        be = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        cam = node.create_publisher(CompressedImage, "camera/image_raw/compressed", be)
        dep = node.create_publisher(CompressedImage, "depth/image_raw/compressedDepth", be)
        info_pub = node.create_publisher(CameraInfo, "camera/camera_info", be)
        node.create_subscription(String, "/perception_node/used_modalities", lambda m: used.append(json.loads(m.data)), 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:H, 0:W]
        rgb = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2).astype(np.uint8)
        cam_fmt, cam_data = encode_compressed(rgb, "rgb8", "jpeg", jpeg_quality=90)
        depth = (rng.uniform(1, 8, (H, W)) * 1000).astype(np.uint16)
        dep_fmt, dep_data = encode_compressed_depth(depth, "16UC1")
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
        info.k = [40.0, 0.0, W / 2, 0.0, 40.0, H / 2, 0.0, 0.0, 1.0]
        info.d = [0.0] * 5
        info.p = [40.0, 0.0, W / 2, 0.0, 0.0, 40.0, H / 2, 0.0, 0.0, 0.0, 1.0, 0.0]

        def publish(n_s: float, rate=10.0):
            t_end, nxt = time.monotonic() + n_s, time.monotonic()
            while time.monotonic() < t_end:
                if time.monotonic() >= nxt:
                    stamp = node.get_clock().now().to_msg()
                    for pub, fmt, data in ((cam, cam_fmt, cam_data), (dep, dep_fmt, dep_data)):
                        m = CompressedImage(format=fmt, data=data)
                        m.header.stamp, m.header.frame_id = stamp, "camera"
                        pub.publish(m)
                    info.header.stamp, info.header.frame_id = stamp, "camera"
                    info_pub.publish(info)
                    nxt += 1.0 / rate
                rclpy.spin_once(node, timeout_sec=0.005)

        t_end = time.monotonic() + 60
        while len(used) < 5 and time.monotonic() < t_end and proc.poll() is None:
            publish(0.3)
        assert len(used) >= 5, "no mask from the node:\n" + node_processes.stop(proc)
        n0 = len(used)
        publish(3.0)
        got = used[n0:]
        assert len(got) >= 15
        with_depth = sum("depth" in u["used"] for u in got) / len(got)
        assert with_depth >= 0.95, got
        assert all("rgb" in u["used"] for u in got)
        inputs = [s for a in diags for s in a.status if s.name == "perception_node: inputs"]
        vals = {kv.key: kv.value for kv in inputs[-1].values}
        assert vals["rgb.transport"].startswith("compressed (/camera/image_raw/compressed)")
        assert vals["depth.transport"].startswith("compressedDepth (/depth/image_raw/compressedDepth)")

        # runtime tuning: a bad value is refused with the reason, a good one applied
        client = node.create_client(SetParameters, "/perception_node/set_parameters")
        assert client.wait_for_service(timeout_sec=10.0)

        def set_param(name, value):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value) if isinstance(value, bool) \
                else ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            req = SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
            fut = client.call_async(req)
            t = time.monotonic() + 10
            while not fut.done() and time.monotonic() < t:
                rclpy.spin_once(node, timeout_sec=0.02)
            return fut.result().results[0]

        bad = set_param("depth.slop_s", 5.0)  # the descriptor's range (rclpy)
        assert not bad.successful and "depth.slop_s out of range" in bad.reason
        bad = set_param("lidar.enabled", True)  # the node's own check
        assert not bad.successful and "was not enabled at start-up" in bad.reason
        # depth shifted by half a period: outside its (narrowed) slop, so it goes missing; back at 0 it is used
        assert set_param("depth.slop_s", 0.02).successful
        assert set_param("depth.offset_s", 0.05).successful
        n1 = len(used)
        publish(1.5)
        assert used[n1 + 3:] and all("depth" in u["missing"] for u in used[n1 + 3:]), [(u["used"], u["missing"]) for u in used[n1:]]
        assert set_param("depth.offset_s", 0.0).successful
        n2 = len(used)
        publish(1.5)
        assert sum("depth" in u["used"] for u in used[n2 + 3:]) >= 0.9 * len(used[n2 + 3:]) > 0
    finally:
        log = node_processes.stop(proc)
        node.destroy_node()
        rclpy.try_shutdown()
    assert proc.returncode == 0, log
    assert "using the compressed transport (rgb.transport auto)" in log, log
