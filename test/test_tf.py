"""The ROS-free TF buffer against tf2's rules (ros2/geometry2 @04e7636:tf2/src/cache.cpp findClosest /
interpolate / insertData; tf2/src/buffer_core.cpp lookupTransform, getLatestCommonTime) and the
extrinsics it feeds: a /tf_static chain gives the LiDAR image of the equivalent parameter."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from rmmss_core.encodings import CameraModel
from rmmss_core.encodings.lidar import project_lidar
from rmmss_ros.tf.buffer import TransformBuffer, TransformError
from rmmss_ros.tf.transform import Rigid, slerp


def quat_of(rotvec) -> np.ndarray:
    """(x, y, z, w) of the rotation vector ``rotvec``."""
    r = np.asarray(rotvec, np.float64)
    a = np.linalg.norm(r)
    if a == 0:
        return np.array([0.0, 0.0, 0.0, 1.0])
    return np.concatenate([np.sin(a / 2) * r / a, [np.cos(a / 2)]])


def mat_of(rotvec, t) -> np.ndarray:
    """4 x 4 from OpenCV's Rodrigues (an independent rotation formula)."""
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rotvec, np.float64).reshape(3, 1))[0]
    T[:3, 3] = t
    return T


def tf_msg(*links, stamp_ns=0):
    """TFMessage-shaped plain data: links of (parent, child, t, q)."""
    out = []
    for parent, child, t, q in links:
        out.append(SimpleNamespace(
            header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                                   frame_id=parent),
            child_frame_id=child,
            transform=SimpleNamespace(translation=SimpleNamespace(x=t[0], y=t[1], z=t[2]),
                                      rotation=SimpleNamespace(x=q[0], y=q[1], z=q[2], w=q[3]))))
    return SimpleNamespace(transforms=out)


# a robot's URDF: base_link -> os_sensor -> os_lidar; base_link -> camera_link -> camera_color_optical_frame
LINKS = [
    ("base_link", "os_sensor", (0.12, 0.0, 0.45), (0.0, 0.0, 0.03)),
    ("os_sensor", "os_lidar", (0.0, 0.0, 0.036), (0.0, 0.0, np.pi)),  # Ouster's lidar frame is turned 180 deg
    ("base_link", "camera_link", (0.20, 0.02, 0.30), (0.0, 0.05, 0.0)),
    ("camera_link", "camera_color_optical_frame", (0.0, 0.015, 0.0), (-np.pi / 2, 0.0, -np.pi / 2)),
]


def static_buffer() -> TransformBuffer:
    buf = TransformBuffer()
    n = buf.add_message(tf_msg(*[(p, c, t, quat_of(r)) for p, c, t, r in LINKS], stamp_ns=5 * 10**9), static=True)
    assert n == 4
    return buf


def expected_T_cam_lidar() -> np.ndarray:
    M = {c: mat_of(r, t) for _, c, t, r in LINKS}
    T_base_lidar = M["os_sensor"] @ M["os_lidar"]
    T_base_cam = M["camera_link"] @ M["camera_color_optical_frame"]
    return np.linalg.inv(T_base_cam) @ T_base_lidar


def test_static_chain_composes_through_the_common_ancestor():
    buf = static_buffer()
    T = buf.lookup("camera_color_optical_frame", "os_lidar", stamp_ns=123)  # static: any time
    np.testing.assert_allclose(T, expected_T_cam_lidar(), atol=1e-12)
    # the other direction is the inverse; a frame to itself is the identity
    np.testing.assert_allclose(buf.lookup("os_lidar", "camera_color_optical_frame"), np.linalg.inv(T), atol=1e-12)
    np.testing.assert_array_equal(buf.lookup("os_lidar", "/os_lidar"), np.eye(4))
    assert buf.is_static_chain("camera_color_optical_frame", "os_lidar")


def test_tf_static_chain_gives_the_lidar_image_of_the_equivalent_parameter():
    buf = static_buffer()
    T_tf = buf.lookup("camera_color_optical_frame", "os_lidar")
    # the parameter a user writes: 16 numbers printed from the URDF's composition
    param = [float(f"{v:.17g}") for v in expected_T_cam_lidar().reshape(-1)]
    T_param = np.asarray(param).reshape(4, 4)
    rng = np.random.default_rng(0)
    n = 20000
    pts = np.concatenate([rng.uniform(-30, 30, (n, 1)), rng.uniform(-30, 30, (n, 1)),
                          rng.uniform(-2, 3, (n, 1)), rng.uniform(0, 1, (n, 1))], axis=1)
    cam = CameraModel(640, 480, np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]]))
    img_tf = project_lidar(pts, T_tf, cam)
    img_param = project_lidar(pts, T_param, cam)
    assert np.count_nonzero(img_param[..., 0]) > 500  # points do land in the camera
    np.testing.assert_array_equal(img_tf, img_param)


def test_dynamic_links_interpolate_as_tf2_and_refuse_extrapolation():
    buf = static_buffer()
    # odom -> base_link moving: yaw 0 -> 0.4 rad and x 0 -> 1 m over 100 ms
    for k, s in enumerate((1_000_000_000, 1_100_000_000)):
        buf.set_transform("odom", "base_link", s, (k * 1.0, 0.0, 0.0), quat_of((0, 0, 0.4 * k)), static=False)
    T = buf.lookup("odom", "base_link", 1_025_000_000)  # a quarter of the way: lerp + slerp
    np.testing.assert_allclose(T, mat_of((0, 0, 0.1), (0.25, 0, 0)), atol=1e-12)
    np.testing.assert_allclose(buf.lookup("odom", "base_link", 1_100_000_000), mat_of((0, 0, 0.4), (1, 0, 0)),
                               atol=1e-12)
    # the chain through a dynamic link is looked up at the stamp
    T_odom_lidar = buf.lookup("odom", "os_lidar", 1_050_000_000)
    M = {c: mat_of(r, t) for _, c, t, r in LINKS}
    np.testing.assert_allclose(T_odom_lidar, mat_of((0, 0, 0.2), (0.5, 0, 0)) @ M["os_sensor"] @ M["os_lidar"],
                               atol=1e-12)
    assert not buf.is_static_chain("odom", "os_lidar")
    with pytest.raises(TransformError, match="no transform from os_lidar to odom: .*extrapolation into the future"):
        buf.lookup("odom", "os_lidar", 1_200_000_000)
    with pytest.raises(TransformError, match="extrapolation into the past"):
        buf.lookup("odom", "os_lidar", 900_000_000)
    # None: the latest common time (tf2's time 0)
    np.testing.assert_allclose(buf.lookup("odom", "base_link"), mat_of((0, 0, 0.4), (1, 0, 0)), atol=1e-12)
    assert buf.span("base_link") == (1_000_000_000, 1_100_000_000)


def test_single_dynamic_value_serves_its_own_stamp_only():
    buf = TransformBuffer()
    buf.set_transform("map", "odom", 10, (1, 2, 3), (0, 0, 0, 1), static=False)
    np.testing.assert_array_equal(buf.lookup("map", "odom", 10)[:3, 3], [1, 2, 3])
    with pytest.raises(TransformError, match="only time 0.000000 is in the buffer"):
        buf.lookup("map", "odom", 11)


def test_cache_keeps_ten_seconds_and_drops_duplicates():
    buf = TransformBuffer()
    for s in range(0, 15):
        buf.set_transform("odom", "base_link", s * 10**9, (s, 0, 0), (0, 0, 0, 1), static=False)
    buf.set_transform("odom", "base_link", 14 * 10**9, (14, 0, 0), (0, 0, 0, 1), static=False)
    assert buf.span("base_link") == (4 * 10**9, 14 * 10**9)
    assert buf.set_transform("odom", "base_link", 10**9, (1, 0, 0), (0, 0, 0, 1), static=False) is False


def test_slerp_takes_the_shortest_path():
    q0, q1 = quat_of((0, 0, 0.1)), -quat_of((0, 0, 0.3))  # the same rotation as +q, other hemisphere
    q = slerp(q0, q1, 0.5)
    np.testing.assert_allclose(Rigid(np.zeros(3), q).matrix(), mat_of((0, 0, 0.2), (0, 0, 0)), atol=1e-12)


def test_missing_frames_and_disconnected_trees_are_named():
    buf = static_buffer()
    with pytest.raises(TransformError, match="no transform from os_lidar2 to camera_color_optical_frame: "
                                             "frame os_lidar2 does not exist"):
        buf.lookup("camera_color_optical_frame", "os_lidar2")
    buf.set_transform("world", "tag", 0, (0, 0, 0), (0, 0, 0, 1), static=True)
    with pytest.raises(TransformError, match="not part of the same tree"):
        buf.lookup("tag", "os_lidar")
    assert not buf.set_transform("a", "b", 0, (0, 0, 0), (0, 0, 0, 2.0), static=True)
    assert any("not normalised" in w for w in buf.warnings)


def test_a_rosbags_tfmessage_is_read():
    from rmmss_ros.bag.messages import typestore
    ts = typestore()
    T = ts.types
    stamp = T["builtin_interfaces/msg/Time"](sec=3, nanosec=0)
    tr = T["geometry_msgs/msg/TransformStamped"](
        header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="base_link"), child_frame_id="camera_link",
        transform=T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=1.0, y=0.0, z=0.5),
                                                   rotation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                              w=1.0)))
    msg = T["tf2_msgs/msg/TFMessage"](transforms=[tr])
    raw = ts.serialize_cdr(msg, "tf2_msgs/msg/TFMessage")
    buf = TransformBuffer()
    assert buf.add_message(ts.deserialize_cdr(raw, "tf2_msgs/msg/TFMessage"), static=True) == 1
    np.testing.assert_array_equal(buf.lookup("base_link", "camera_link")[:3, 3], [1.0, 0.0, 0.5])


# ------------------------------------------------------------------ extrinsics.source
def make_extrinsics(source, param=None, buffer=None):
    from rmmss_ros.tf.extrinsics import Extrinsics
    default = np.eye(4)
    return Extrinsics(source, {"lidar": default if param is None else param}, {"lidar": default}, buffer,
                      tf_unavailable="tf2_msgs is not importable")


def test_extrinsics_sources_and_their_status():
    buf = static_buffer()
    want = buf.lookup("camera_color_optical_frame", "os_lidar")
    set_param = np.diag([1.0, 1.0, 1.0, 1.0])
    set_param[0, 3] = 0.5
    # auto: the parameter when set, else TF
    ex = make_extrinsics("auto", set_param, buf)
    np.testing.assert_array_equal(ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 0), set_param)
    assert ex.status()["lidar"].text("lidar") == "lidar: extrinsic from parameters (lidar.extrinsic (set))"
    ex = make_extrinsics("auto", None, buf)
    np.testing.assert_array_equal(ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 0), want)
    st = ex.status()["lidar"]
    assert (st.source, st.level) == ("tf", 0) and "static" in st.detail
    # auto without a chain: the default, said with what is missing (WARN)
    ex = make_extrinsics("auto", None, buf)
    np.testing.assert_array_equal(ex.matrix("lidar", "velodyne", "camera_color_optical_frame", 0), np.eye(4))
    st = ex.status()["lidar"]
    assert st.level == 1 and "no transform from velodyne to camera_color_optical_frame" in st.missing
    # tf: no chain -> an error naming both frames (the sensor is missing for that frame)
    ex = make_extrinsics("tf", set_param, buf)
    with pytest.raises(TransformError, match="no transform from velodyne to camera_color_optical_frame"):
        ex.matrix("lidar", "velodyne", "camera_color_optical_frame", 0)
    assert ex.status()["lidar"].level == 2
    # parameters: TF is not consulted
    ex = make_extrinsics("parameters", None, buf)
    np.testing.assert_array_equal(ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 0), np.eye(4))
    # no tf2_msgs: the reason is in the error
    ex = make_extrinsics("tf", None, None)
    with pytest.raises(TransformError, match="tf2_msgs is not importable"):
        ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 0)


def test_static_chains_are_cached_until_tf_static_changes():
    buf = static_buffer()
    ex = make_extrinsics("tf", None, buf)
    T1 = ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 0)
    assert ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 99) is T1  # cached
    buf.set_transform("os_sensor", "os_lidar", 0, (0.0, 0.0, 0.05), quat_of((0, 0, np.pi)), static=True)
    T2 = ex.matrix("lidar", "os_lidar", "camera_color_optical_frame", 0)
    assert T2 is not T1 and not np.allclose(T1, T2)


def test_a_sensor_in_the_camera_frame_needs_no_transform():
    ex = make_extrinsics("tf", None, None)  # even without TF
    np.testing.assert_array_equal(ex.matrix("lidar", "/cam", "cam", 0), np.eye(4))
    assert ex.status()["lidar"].source == "tf" and ex.status()["lidar"].level == 0


def test_a_known_dynamic_chain_outside_its_span_is_missing_never_the_default():
    from rmmss_ros.tf.buffer import TransformExtrapolationError
    buf = TransformBuffer()
    buf.set_transform("camera", "turret", 10**9, (0, 0, 0), (0, 0, 0, 1), static=False)
    buf.set_transform("camera", "turret", 2 * 10**9, (0, 0, 1), (0, 0, 0, 1), static=False)
    buf.set_transform("turret", "lidar", 0, (0, 0, 0), (0, 0, 0, 1), static=True)
    ex = make_extrinsics("auto", None, buf)
    np.testing.assert_allclose(ex.matrix("lidar", "lidar", "camera", int(1.5e9))[:3, 3], [0, 0, 0.5])
    with pytest.raises(TransformExtrapolationError, match="extrapolation into the future"):
        ex.matrix("lidar", "lidar", "camera", 3 * 10**9)
    assert ex.status()["lidar"].level == 2


def test_refused_transforms_are_said_not_only_dropped():
    """A TF with an un-normalised quaternion (w = 0: a hand-written publisher's mistake) was dropped
    into the buffer's warnings, which nothing read: the node and replay said only that the frames
    "are not part of the same tree". The pipeline's inputs now pass each refusal on once (the
    node logs it as a WARN, replay prints and reports it)."""
    from rmmss_ros.pipeline.inputs import RobotInputs
    said: list[str] = []
    inputs = RobotInputs("auto", {}, "image", said.append)
    buf = TransformBuffer()
    inputs.attach_tf(buf)
    n = buf.add_message(tf_msg(("base_link", "camera_link", (0, 0, 0), (0.0, 0.0, 0.0, 0.0)),
                               ("camera_link", "os_lidar", (0, 0, 0), (0.0, 0.0, 0.0, 1.0))), static=True)
    assert n == 1
    inputs.adapt(SimpleNamespace(), {}, {}, None, None)
    assert len(said) == 1 and "base_link -> camera_link" in said[0] and "not normalised" in said[0], said
    inputs.adapt(SimpleNamespace(), {}, {}, None, None)
    assert len(said) == 1  # once
