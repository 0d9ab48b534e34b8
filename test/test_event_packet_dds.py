"""Live EventPacket input over real DDS (issue #12): the node subscribes to
``event_camera_msgs/msg/EventPacket`` (``event.format: packet``), buffers every packet and uses the
event camera in its masks. Needs event_camera_msgs (a robot has it from its event-camera driver's
workspace; here: the message underlay that ``.ci/run`` builds, used by ``make test-underlay``); without it the test
is skipped, and the node itself refuses
``event.format: packet`` with a clear start-up error (checked without the package)."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rmmss_ros.conversions import fill_image  # noqa: E402
from rmmss_ros.conversions.event_packet import encode_mono  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("dds_domain")]
H, W = 48, 64


@pytest.mark.underlay
def test_event_packets_live_are_buffered_and_used(tiny_model, node_processes):
    em = pytest.importorskip("event_camera_msgs.msg", reason="event_camera_msgs not installed: `make test-underlay` runs this with the ROS 2 message underlay")
    import json

    proc = node_processes.start(tiny_model, "event.format:=packet", "depth.enabled:=false", "lidar.enabled:=false")
    rclpy.init()
    node = None
    try:  # whatever fails from here, the context is shut down (else every later DDS test errors)
        node = rclpy.create_node("rmmss_event_rig")
        be = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        pub_cam = node.create_publisher(Image, "camera/image_raw", be)
        pub_info = node.create_publisher(CameraInfo, "camera/camera_info", be)
        pub_ev = node.create_publisher(em.EventPacket, "events", be)
        used: list[dict] = []
        node.create_subscription(String, "/perception_node/used_modalities",
                                 lambda m: used.append(json.loads(m.data)), 10)
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
        info.k = [40.0, 0.0, W / 2, 0.0, 40.0, H / 2, 0.0, 0.0, 1.0]
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        t_end, next_cam, next_ev, seq = time.monotonic() + 60, 0.0, 0.0, 0
        while time.monotonic() < t_end and sum("event" in u["used"] for u in used) < 5:
            now = time.monotonic()
            if now >= next_ev:  # 5 ms packets of 200 mono events
                pkt = em.EventPacket()
                pkt.header.stamp = node.get_clock().now().to_msg()
                pkt.height, pkt.width, pkt.seq, pkt.encoding = H, W, seq, "mono"
                pkt.events = encode_mono(rng.integers(0, W, 200), rng.integers(0, H, 200),
                                         np.sort(rng.integers(0, 5_000_000, 200)), rng.integers(0, 2, 200))
                pub_ev.publish(pkt)
                seq += 1
                next_ev = now + 0.005
            if now >= next_cam:
                stamp = node.get_clock().now().to_msg()
                img = fill_image(Image(), rgb, "rgb8")
                img.header.stamp = info.header.stamp = stamp
                pub_cam.publish(img)
                pub_info.publish(info)
                next_cam = now + 0.1
            rclpy.spin_once(node, timeout_sec=0.001)
        out = node_processes.stop(proc)
        with_events = [u for u in used if "event" in u["used"]]
        assert len(with_events) >= 5, f"event camera never used ({len(used)} masks):\n{out[-3000:]}"
        assert not any("event" in u.get("errors", {}) for u in with_events)
    finally:
        node_processes.stop(proc)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def test_packet_format_without_the_message_package_is_a_clear_startup_error(monkeypatch):
    import sys

    from rmmss_ros.node.perception_node import PerceptionNode, StartupError

    monkeypatch.setitem(sys.modules, "event_camera_msgs", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "event_camera_msgs.msg", None)
    with pytest.raises(StartupError, match="event.format is 'packet' but event_camera_msgs is not installed"):
        PerceptionNode._sensor_msg_class("event", {"event.format": "packet"})
    assert PerceptionNode._sensor_msg_class("event", {"event.format": "cloud"}).__name__ == "PointCloud2"


@pytest.mark.underlay
def test_an_event_camera_with_the_default_event_format_is_said(tiny_model, node_processes):
    """A Prophesee / iniVation driver publishes EventPacket; with the default event.format (image)
    the node subscribed sensor_msgs/Image on that topic, DDS matched nothing and nothing was said:
    the event camera was simply dead. The node now WARNs naming event.format."""
    em = pytest.importorskip("event_camera_msgs.msg", reason="event_camera_msgs not installed")
    proc = node_processes.start(tiny_model, "depth.enabled:=false", "lidar.enabled:=false",
                                "diagnostics.period_s:=0.5")
    rclpy.init()
    node = None
    try:
        node = rclpy.create_node("rmmss_event_format_rig")
        pub_ev = node.create_publisher(em.EventPacket, "events", QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and proc.poll() is None and node.count_subscribers("/events") == 0:
            rclpy.spin_once(node, timeout_sec=0.2)  # until the node is up (it subscribes the topic by name)
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:  # a few graph checks (every 0.5 s)
            pub_ev.publish(em.EventPacket(width=W, height=H, encoding="evt3"))
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        out = node_processes.stop(proc)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    assert "/events is published as event_camera_msgs/msg/EventPacket" in out and "set event.format packet" in out, \
        out[-3000:]
