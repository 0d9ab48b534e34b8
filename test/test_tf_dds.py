"""The node over DDS with the ROS 2 message underlay (``make test-underlay``; skipped without it):
extrinsics from a latched /tf_static chain (tf2_msgs/TFMessage) and iniVation ``libcaer_cmp``
EventPackets as libcaer_driver publishes them."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rmmss_ros.conversions import fill_cloud, fill_image  # noqa: E402
from rmmss_ros.conversions.event_packet import encode_libcaer_cmp  # noqa: E402

H, W = 48, 64
pytestmark = [pytest.mark.ros, pytest.mark.underlay, pytest.mark.usefixtures("dds_domain")]


def _tf(tf2, parent, child, t, q, stamp):
    from geometry_msgs.msg import TransformStamped
    ts = TransformStamped()
    ts.header.frame_id, ts.child_frame_id, ts.header.stamp = parent, child, stamp
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = t
    ts.transform.rotation.x, ts.transform.rotation.y, ts.transform.rotation.z, ts.transform.rotation.w = q
    return ts


def test_extrinsics_from_tf_static_and_libcaer_packets_over_dds(tiny_model, node_processes):
    tf2 = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not installed: `make test-underlay` runs this")
    em = pytest.importorskip("event_camera_msgs.msg", reason="event_camera_msgs not installed")
    proc = node_processes.start(tiny_model, "depth.enabled:=false", "extrinsics.source:=tf", "event.format:=packet",
                                "diagnostics.period_s:=0.5", "lidar.timeout_s:=0.5", "event.timeout_s:=0.5")
    rclpy.init()
    node = rclpy.create_node("rmmss_tf_rig")
    used: list[dict] = []
    diags: list[DiagnosticArray] = []
    try:
        be = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pubs = {"rgb": node.create_publisher(Image, "camera/image_raw", be),
                "lidar": node.create_publisher(PointCloud2, "lidar/points", be),
                "event": node.create_publisher(em.EventPacket, "events", be),
                "info": node.create_publisher(CameraInfo, "camera/camera_info", be),
                "tf": node.create_publisher(tf2.TFMessage, "/tf_static", latched)}
        node.create_subscription(String, "/perception_node/used_modalities", lambda m: used.append(json.loads(m.data)), 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        pts = np.zeros(400, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
        pts["x"], pts["y"], pts["z"] = rng.uniform(2, 20, 400), rng.uniform(-5, 5, 400), rng.uniform(-1, 1, 400)
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
        info.k = [40.0, 0.0, W / 2, 0.0, 40.0, H / 2, 0.0, 0.0, 1.0]
        info.d = [0.0] * 5
        info.p = [40.0, 0.0, W / 2, 0.0, 0.0, 40.0, H / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        lidar_frame = ["os_lidar"]

        def publish(seconds: float, rate=10.0):
            t_end, nxt = time.monotonic() + seconds, time.monotonic()
            while time.monotonic() < t_end:
                if time.monotonic() >= nxt:
                    stamp = node.get_clock().now().to_msg()
                    img = fill_image(Image(), rgb, "rgb8")
                    img.header.stamp, img.header.frame_id = stamp, "camera_optical_frame"
                    cloud = fill_cloud(PointCloud2(), pts, PointField)
                    cloud.header.stamp, cloud.header.frame_id = stamp, lidar_frame[0]
                    t_us = int(time.monotonic() * 1e6)
                    x, y = rng.integers(0, W, 300), rng.integers(0, H, 300)
                    data, tb = encode_libcaer_cmp([(x, y, np.full(300, t_us), rng.integers(0, 2, 300))],
                                                  stamp.sec * 10**9 + stamp.nanosec - t_us * 1000)
                    pkt = em.EventPacket(width=W, height=H, encoding="libcaer_cmp", time_base=tb, events=data)
                    pkt.header.stamp, pkt.header.frame_id = stamp, "camera_optical_frame"
                    info.header.stamp, info.header.frame_id = stamp, "camera_optical_frame"
                    for k, m in (("rgb", img), ("lidar", cloud), ("event", pkt), ("info", info)):
                        pubs[k].publish(m)
                    nxt += 1.0 / rate
                rclpy.spin_once(node, timeout_sec=0.005)

        # URDF-like: base_link -> os_sensor -> os_lidar, base_link -> camera_optical_frame (optical axes)
        st = node.get_clock().now().to_msg()
        pubs["tf"].publish(tf2.TFMessage(transforms=[
            _tf(tf2, "base_link", "os_sensor", (0.1, 0.0, 0.4), (0.0, 0.0, 0.0, 1.0), st),
            _tf(tf2, "os_sensor", "os_lidar", (0.0, 0.0, 0.03), (0.0, 0.0, 0.0, 1.0), st),
            _tf(tf2, "base_link", "camera_optical_frame", (0.2, 0.0, 0.3), (-0.5, 0.5, -0.5, 0.5), st)]))
        t_end = time.monotonic() + 60
        while len(used) < 5 and time.monotonic() < t_end and proc.poll() is None:
            publish(0.3)
        assert len(used) >= 5, "no mask from the node:\n" + node_processes.stop(proc)
        n0 = len(used)
        publish(2.0)
        got = used[n0 + 2:]
        assert got and sum("lidar" in u["used"] for u in got) >= 0.9 * len(got), got
        assert sum("event" in u["used"] for u in got) >= 0.9 * len(got), got
        inputs = [s for a in diags for s in a.status if s.name == "perception_node: inputs"]
        vals = {kv.key: kv.value for kv in inputs[-1].values}
        assert "extrinsic from tf" in vals["lidar.extrinsic"] and "os_lidar" in vals["lidar.extrinsic"]
        # a cloud from a frame /tf_static does not connect: missing, the error naming both frames
        # judged by the masks' stamps, not by arrival order: on a loaded machine masks of frames
        # published before the switch can still arrive after it (CI failure, stop 24)
        lidar_frame[0] = "velodyne"
        switch = node.get_clock().now().nanoseconds
        publish(2.0)
        late = [u for u in used if u["stamp"]["sec"] * 10**9 + u["stamp"]["nanosec"] > switch + 200_000_000]
        assert late and all("lidar" not in u["used"] for u in late)
        assert "no transform from velodyne to camera_optical_frame" in late[-1]["errors"]["lidar"]
    finally:
        log = node_processes.stop(proc)
        node.destroy_node()
        rclpy.try_shutdown()
    assert proc.returncode == 0, log
