"""The environment works: rclpy talks between two processes over DDS, and the heavy libraries
(open3d, rosbags, torch, onnxruntime) import in one interpreter."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("env_test_publisher")
    pub = node.create_publisher(Image, "/env_test/image", qos_profile_sensor_data)
    msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
    msg.data = bytes(range(256)) * (640 * 480 * 3 // 256)
    end = time.time() + float(sys.argv[1])
    while time.time() < end:
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(0.05)
    node.destroy_node()
    rclpy.shutdown()
""")


@pytest.mark.ros
def test_image_crosses_processes_over_dds():
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    env = dict(os.environ, ROS_DOMAIN_ID=str(os.getpid() % 100 + 100))
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, "20"], env=env)
    received: list[Image] = []
    rclpy.init()
    try:
        node = rclpy.create_node("env_test_subscriber")
        node.create_subscription(Image, "/env_test/image", received.append, qos_profile_sensor_data)
        import time
        deadline = time.time() + 20
        while time.time() < deadline and len(received) < 3:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=10)
    assert len(received) >= 3, "no sensor_msgs/Image arrived from the other process"
    msg = received[-1]
    assert (msg.height, msg.width, msg.encoding, msg.step) == (480, 640, "rgb8", 1920)
    assert bytes(msg.data[:256]) == bytes(range(256))


def test_heavy_libraries_import_together():
    code = ("import torch, open3d, rosbags, onnxruntime, rclpy, numpy;"
            "import open3d.core as o3c;"
            "scene = open3d.t.geometry.RaycastingScene();"
            "mesh = open3d.t.geometry.TriangleMesh.create_box();"
            "scene.add_triangles(mesh);"
            "rays = o3c.Tensor([[0.5, 0.5, 5.0, 0, 0, -1]], dtype=o3c.float32);"
            "t = scene.cast_rays(rays)['t_hit'].numpy()[0];"
            "assert abs(t - 4.0) < 1e-5, t;"
            "print('ok', torch.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("ok 2.13.0")
