"""ROS-free policies of the node (issue 11): QoS matching, the frame-set queue, CameraInfo bounds,
period diagnostics with a camera_info status, one log call site per severity, rosdep keys, the
launch file's overrides and exit code."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from rmmss_ros.node.diagnostics import ERROR, OK, STALE, WARN, NodeDiagnostics
from rmmss_ros.node.frame_queue import FrameSetQueue
from rmmss_ros.node.qos_policy import camera_info_profiles, sensor_profiles
from rmmss_ros.sync.synchronizer import SensorStats

ROOT = Path(__file__).resolve().parents[1]
R, BE, V, TL = "reliable", "best_effort", "volatile", "transient_local"


def test_qos_auto_matches_publishers_and_explicit_settings_are_kept():
    """Issue 11 #5: a RELIABLE publisher gets a RELIABLE subscription (best effort lost most large
    images); best effort as soon as one publisher is; nothing yet: best effort connects to all."""
    assert sensor_profiles("auto", []) == [(BE, V)]
    assert sensor_profiles("auto", [(R, V)]) == [(R, V)]
    assert sensor_profiles("auto", [(R, TL)]) == [(R, V)]  # never latched images
    assert sensor_profiles("auto", [(R, V), (BE, V)]) == [(BE, V)]
    assert sensor_profiles("best_effort", [(R, V)]) == [(BE, V)]
    assert sensor_profiles("reliable", [(BE, V)]) == [(R, V)]
    with pytest.raises(ValueError, match="qos.reliability"):
        sensor_profiles("fast", [])


def test_camera_info_receives_latched_and_volatile_publishers():
    """Issue 11 #5: a CameraInfo latched (RELIABLE + TRANSIENT_LOCAL) before the node starts must
    arrive: a TRANSIENT_LOCAL subscription, plus a volatile one when volatile publishers exist."""
    assert camera_info_profiles([]) == [(BE, V)]
    assert camera_info_profiles([(R, TL)]) == [(R, TL)]
    assert camera_info_profiles([(R, V)]) == [(BE, V)]
    assert camera_info_profiles([(R, TL), (BE, V)]) == [(R, TL), (BE, V)]
    assert camera_info_profiles([(BE, TL)]) == [(BE, TL)]


def _fs(*present):
    return SimpleNamespace(messages=dict.fromkeys(present, object()))


def test_frame_set_queue_keeps_bursts_and_the_sets_with_the_slow_sensor():
    """Issue 11 #1: sets come in bursts of 2-3 when a LiDAR scan completes them; a drop-oldest
    queue of one lost two of three. Now a burst fits; when full, the poorest set goes first."""
    q = FrameSetQueue(4)
    burst = [_fs("rgb", "depth", "event", "lidar") for _ in range(3)]
    for fs in burst:
        assert not q.put(fs)
    assert [q.get(0.01) for _ in range(3)] == burst and q.dropped == 0
    full, poor = _fs("rgb", "lidar"), _fs("rgb")
    q.put(full)
    q.put(poor)
    q.put(_fs("rgb", "lidar"))
    q.put(_fs("rgb", "lidar"))
    assert q.put(_fs("rgb", "lidar")) and q.dropped == 1
    got = [q.get(0.01) for _ in range(4)]
    assert poor not in got and got[0] is full
    q.close()
    assert q.get(None) is None


def test_camera_info_bounded_against_the_image():
    """Issue 11 #9: a 30000 x 30000 CameraInfo with a 160x128 image is refused before anything is
    allocated; so is 4096 x 3072 with that image; a matching one is accepted."""
    pytest.importorskip("rclpy")
    from rmmss_ros.conversions import check_camera_info

    assert "does not match the camera image 160x128" in check_camera_info(30000, 30000, (128, 160), 1 << 24)
    assert "does not match" in check_camera_info(4096, 3072, (128, 160), 1 << 24)
    assert check_camera_info(160, 128, (128, 160), 1) is None
    assert "camera_info.max_pixels" in check_camera_info(30000, 30000, None, 4096 * 3072)
    assert check_camera_info(640, 480, None, 4096 * 3072) is None
    assert "empty" in check_camera_info(0, 480, None, 4096 * 3072)


def _by_name(statuses):
    return {s.name.split(": ")[1]: s for s in statuses}


def test_diagnostics_summarise_the_whole_period():
    """Issue 11 #7: half malformed messages -> ERROR with counts whatever the last frame was; a
    healthy LiDAR waiting only for CameraInfo is WARN (not ERROR) and camera_info has its own status."""
    d = NodeDiagnostics(("rgb", "depth", "lidar"), {}, camera_info_topic="/cam/info")
    for k in range(10):
        errors = {"depth": "depth: bad size"} if k % 2 else {}
        errors["lidar"] = "lidar: no valid CameraInfo received yet; cannot project the cloud"
        used = ["rgb"] + ([] if k % 2 else ["depth"])
        d.record((), used, errors, 5.0, 100.0 + k * 0.1)
    st = _by_name(d.statuses(101.0, {m: SensorStats(received=10) for m in ("rgb", "depth", "lidar")}, {}, {}))
    assert st["depth"].level == ERROR and "5 malformed" in st["depth"].message
    assert st["depth"].values["period_used"] == "5" and st["depth"].values["period_malformed"] == "5"
    assert st["lidar"].level == WARN and "CameraInfo" in st["lidar"].message
    assert st["camera_info"].level == WARN and st["camera_info"].hardware_id == "/cam/info"
    assert st["rgb"].level == OK
    d.camera_info_received(64, 48)
    d.record((), ["rgb", "depth", "lidar"], {}, 5.0, 101.5)  # a new period: all good
    st = _by_name(d.statuses(102.0, {}, {}, {}))
    assert st["depth"].level == OK and st["lidar"].level == OK and st["camera_info"].level == OK
    d.camera_info_rejected("CameraInfo size 30000x30000 does not match the camera image 64x48; ignored")
    st = _by_name(d.statuses(102.5, {}, {}, {}))  # refused, the accepted 64x48 stays in use
    assert st["camera_info"].level == WARN and "30000x30000" in st["camera_info"].message
    assert "still using 64x48" in st["camera_info"].message and st["camera_info"].values["valid"] == "True"


LIDAR_WAITING = "lidar: no valid CameraInfo received yet; cannot project the cloud"


def test_camera_info_status_keeps_its_own_rejection_reason():
    """Issue 11 follow-up #1: with a latched 100000x100000 CameraInfo the log said why it was
    refused, but /diagnostics showed 'CameraInfo rejected: lidar: no valid CameraInfo received
    yet' (last_error overwritten by the LiDAR's complaint). camera_info keeps its own reason; the
    LiDAR's waiting is the LiDAR's WARN."""
    why = "CameraInfo size 100000x100000 exceeds camera_info.max_pixels=12582912 (no camera image yet); ignored"
    d = NodeDiagnostics(("rgb", "lidar"), {}, camera_info_topic="/camera/camera_info")
    d.camera_info_rejected(why)
    for k in range(5):
        d.record((), ["rgb"], {"lidar": LIDAR_WAITING}, 5.0, 100.0 + k * 0.1)
    st = _by_name(d.statuses(101.0, {m: SensorStats(received=5) for m in ("rgb", "lidar")}, {}, {}))
    ci = st["camera_info"]
    assert ci.level == ERROR and ci.message == f"CameraInfo rejected: {why}"
    assert ci.values["last_error"] == why and "lidar" not in ci.message
    assert (ci.values["received"], ci.values["accepted"], ci.values["rejected"], ci.values["valid"]) == \
        ("1", "0", "1", "False")
    lidar = st["lidar"]
    assert lidar.level == WARN and "no valid CameraInfo received yet" in lidar.message
    assert "lidar: lidar" not in lidar.message and lidar.values["period_malformed"] == "0"
    # follow-up #4: the sync counters are named for what they count
    assert "expired_unused" in lidar.values and "used_messages" in lidar.values and "unmatched" not in lidar.values


def test_camera_info_still_valid_while_later_ones_are_rejected():
    """Issue 11 follow-up #2: after a valid 320x240 CameraInfo and 5 rejected ones, diagnostics
    said valid=False received=1 rejected=5 while the node projected with the good one. Now
    valid=True, 'last message rejected (why); still using 320x240 from <time>', received counts
    every CameraInfo (accepted + rejected). A CameraInfo in use that stops fitting the image is
    not valid (ERROR) until it fits again or a new one is accepted."""
    d = NodeDiagnostics(("rgb", "lidar"), {}, camera_info_topic="/camera/camera_info")
    d.camera_info_received(320, 240, "2026-11-30T03:00:00Z")
    why = "CameraInfo size 100000x100000 does not match the camera image 320x240; ignored"
    for _ in range(5):
        d.camera_info_rejected(why)
    d.record((), ["rgb", "lidar"], {}, 5.0, 100.0, camera_info_given=True)
    ci = _by_name(d.statuses(100.5, {}, {}, {}))["camera_info"]
    assert (ci.values["received"], ci.values["accepted"], ci.values["rejected"], ci.values["valid"]) == \
        ("6", "1", "5", "True")
    assert ci.level == WARN and ci.message.startswith(f"last message rejected ({why}); still using 320x240 "
                                                      "from 2026-11-30T03:00:00Z")
    d.camera_info_unusable("CameraInfo size 320x240 does not match the camera image 640x480; ignored")
    ci = _by_name(d.statuses(101.0, {}, {}, {}))["camera_info"]
    assert ci.level == ERROR and ci.values["valid"] == "False" and "640x480" in ci.message
    assert ci.values["unusable_sets"] == "1"
    d.record((), ["rgb", "lidar"], {}, 5.0, 101.5, camera_info_given=True)  # the image fits again
    assert _by_name(d.statuses(102.0, {}, {}, {}))["camera_info"].values["valid"] == "True"
    d.camera_info_received(320, 240, "2026-11-30T03:01:00Z")
    ci = _by_name(d.statuses(102.5, {}, {}, {}))["camera_info"]
    assert ci.level == OK and ci.message == "valid CameraInfo 320x240 from 2026-11-30T03:01:00Z"


def test_sensor_errors_logged_with_one_prefix():
    """Issue 11 follow-up #1: the node logged 'lidar: lidar: no valid CameraInfo ...'."""
    pytest.importorskip("rclpy")
    import threading

    from rmmss_ros.node.perception_node import PerceptionNode, with_prefix

    assert with_prefix("lidar", LIDAR_WAITING) == LIDAR_WAITING
    assert with_prefix("event", "event cloud: no x field") == "event cloud: no x field"
    assert with_prefix("depth", "bad size") == "depth: bad size"
    logged, recorded = [], []
    result = SimpleNamespace(mask=None, errors={"lidar": LIDAR_WAITING}, used_modalities=("rgb",), warnings=())
    fake = SimpleNamespace(
        _closing=threading.Event(), camera_info=None, pipeline=SimpleNamespace(process=lambda fs, info: result),
        _log_pipeline_warnings=lambda r: None, diag=SimpleNamespace(record=lambda *a, **k: recorded.append(k)),
        _log_throttled=lambda level, key, text: logged.append(text))
    PerceptionNode._handle(fake, SimpleNamespace(messages={"lidar": object()}, missing=(), stamp_ns=1))
    assert logged == [LIDAR_WAITING] and recorded == [{"camera_info_given": False}]


def test_out_of_sync_reported_with_offset_and_missing_is_stale():
    d = NodeDiagnostics(("rgb", "depth"), {})
    for k in range(4):
        d.record(("depth",), ["rgb"], {}, 5.0, 100.0 + k)
    oos = SensorStats(received=4, out_of_sync="out of sync: ...; measured offset -1000000.0 ms", offset_ms=-1e6)
    st = _by_name(d.statuses(105.0, {"depth": oos}, {}, {}))
    assert st["depth"].level == WARN and "measured offset -1000000.0 ms" in st["depth"].message
    assert st["depth"].values["offset_ms"] == "-1000000.0"
    d.record(("depth",), ["rgb"], {}, 5.0, 106.0)
    assert _by_name(d.statuses(106.5, {"depth": SensorStats(received=5)}, {}, {}))["depth"].level == STALE


def test_log_throttled_uses_one_call_site_per_severity():
    """Issue 11 #8: rclpy refuses a call site whose severity changes ('Logger severity cannot be
    changed between calls'); after one WARN every ERROR became a traceback. Each level needs its
    own call."""
    pytest.importorskip("rclpy")
    from rmmss_ros.node.perception_node import PerceptionNode

    calls = []

    class Logger:
        def __init__(self):
            self.sites = {}

        def _log(self, level, text):
            import inspect

            site = inspect.stack()[2].positions if hasattr(inspect.stack()[2], "positions") else \
                inspect.stack()[2].lineno
            if self.sites.setdefault(site, level) != level:
                raise ValueError("Logger severity cannot be changed between calls.")
            calls.append((level, text))

        def warning(self, text):
            self._log("warn", text)

        def error(self, text):
            self._log("error", text)

        def info(self, text):
            self._log("info", text)

    logger = Logger()
    fake = SimpleNamespace(_last_log={}, get_logger=lambda: logger, get_name=lambda: "n")
    PerceptionNode._log_throttled(fake, "warn", "a", "first a warning")
    PerceptionNode._log_throttled(fake, "error", "b", "then an error")
    PerceptionNode._log_throttled(fake, "error", "c", "and another")
    assert calls == [("warn", "first a warning"), ("error", "then an error"), ("error", "and another")]


def test_rosdep_keys_resolve_on_noble():
    """Issue 11 #11: python3-rosbags/-onnx/-onnxruntime have no rosdep rule and python3-open3d none
    for noble; the *-pip keys exist."""
    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().findall("exec_depend")}
    for bad in ("python3-rosbags", "python3-onnx", "python3-onnxruntime", "python3-open3d"):
        assert bad not in deps and f"{bad}-pip" in deps


def test_launch_arguments_override_the_params_file_only_when_given():
    """Issue 11 #11: defaults of launch arguments overrode backend/model_path/use_sim_time of the
    params file. Now the override arguments default to '' and are passed only when non-empty; the
    node's non-zero exit raises (ros2 launch exits 1)."""
    pytest.importorskip("launch_ros")
    import importlib.util

    spec = importlib.util.spec_from_file_location("perception_launch", ROOT / "launch" / "perception.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from launch import LaunchContext

    ctx = LaunchContext()
    for name in mod.OVERRIDES:
        ctx.launch_configurations[name] = ""
    assert mod._overrides(ctx) == {}
    ctx.launch_configurations.update(backend="onnxruntime", use_sim_time="true")
    assert mod._overrides(ctx) == {"backend": "onnxruntime", "use_sim_time": True}
    with pytest.raises(RuntimeError, match="exited with code 1"):
        mod._on_node_exit(SimpleNamespace(returncode=1), ctx)
    assert mod._on_node_exit(SimpleNamespace(returncode=0), ctx)


def test_no_publish_after_shutdown():
    """Issue 11 #10: a frame finishing while the context shuts down published into an invalid
    context ('Failed to publish: publisher's context is invalid' + traceback). Once closing or
    with the context gone, nothing is published and nothing raises; a publish failing because the
    context went away meanwhile is swallowed too."""
    pytest.importorskip("rclpy")
    import numpy as np

    from rmmss_ros.node.perception_node import PerceptionNode

    class Pub:
        def __init__(self, fail=False):
            self.sent, self.fail = [], fail

        def publish(self, msg):
            if self.fail:
                raise RuntimeError("Failed to publish: publisher's context is invalid")
            self.sent.append(msg)

    class Ctx:
        def __init__(self, ok):
            self._ok = ok

        def ok(self):
            return self._ok

    import threading

    result = SimpleNamespace(mask=np.zeros((4, 4), np.uint8), color=None, used_modalities=("rgb",), errors={})
    fs = SimpleNamespace(stamp_ns=10**18, messages={}, missing=())
    outputs = SimpleNamespace(confidence_message=lambda *a: None,  # the node's issue #23 outputs: none here
                              used_fields=lambda used, errors: {"errors": errors})
    for closing, ok in ((True, True), (False, False)):
        pubs = [Pub(), Pub(), Pub()]
        fake = SimpleNamespace(_closing=threading.Event(), context=Ctx(ok), pub_mask=pubs[0], pub_color=pubs[1],
                               pub_used=pubs[2], _camera_frame="cam", values={"output.frame_id": ""}, outputs=outputs)
        if closing:
            fake._closing.set()
        fake.frame_id = lambda f=fake: PerceptionNode.frame_id(f)
        assert PerceptionNode._publish(fake, fs, result) is False
        assert not any(p.sent for p in pubs)
    # the context goes away during the publish (SIGINT handler): swallowed, nothing raised
    ctx = Ctx(True)

    class Dying(Pub):
        def publish(self, msg):
            ctx._ok = False
            raise RuntimeError("Failed to publish: publisher's context is invalid")

    fake = SimpleNamespace(_closing=threading.Event(), context=ctx, pub_mask=Dying(), pub_color=Pub(),
                           pub_used=Pub(), _camera_frame="cam", values={"output.frame_id": ""}, outputs=outputs)
    fake.frame_id = lambda: PerceptionNode.frame_id(fake)
    assert PerceptionNode._publish(fake, fs, result) is False
    ctx._ok = True  # with the context still valid, a publish error is real: raised to the worker
    fake.pub_mask = Pub(fail=True)
    with pytest.raises(RuntimeError):
        PerceptionNode._publish(fake, fs, result)


def test_qos_recheck_keeps_subscription_when_publishers_vanish_and_is_quiet_at_shutdown():
    """Issue 11 follow-up #3: after SIGTERM the 0.5 s QoS re-check logged '[ERROR] subscription
    update failed: RCLError ... context is invalid' (the context dies in rclpy's signal handler,
    before close() sets the closing flag), and re-subscribed BEST_EFFORT 'for publishers []' as
    the publishers disappeared. Now: publishers gone -> the subscription is kept, nothing logged;
    context invalid -> nothing logged, nothing queried; a real profile change is logged at INFO."""
    pytest.importorskip("rclpy")
    import threading

    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from rmmss_ros.node.perception_node import PerceptionNode

    def info(rel):
        return SimpleNamespace(qos_profile=SimpleNamespace(
            reliability=ReliabilityPolicy.RELIABLE if rel == R else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE))

    class Ctx:
        ok_ = True

        def ok(self):
            return self.ok_

    logs, created, destroyed, graph = [], [], [], {"/cam": [info(R)]}

    def publishers(topic):
        if not fake.context.ok_:
            raise RuntimeError("RCLError: failed to get publishers: context is invalid")
        return graph[topic]

    fake = SimpleNamespace(
        _closing=threading.Event(), context=Ctx(), _topics={"rgb": "/cam"}, _subs={"rgb": {}},
        _sub_cb={"rgb": (object, None)}, values={"qos.reliability": "auto", "qos.depth": 5},
        get_publishers_info_by_topic=publishers,
        create_subscription=lambda cls, topic, cb, qos: created.append(qos.reliability) or len(created),
        destroy_subscription=destroyed.append,
        get_logger=lambda: SimpleNamespace(info=lambda t: logs.append(("info", t))),
        _log_throttled=lambda level, key, text, period_s=2.0: logs.append((level, text)))
    fake._shutting_down = lambda: PerceptionNode._shutting_down(fake)
    fake._check_types = lambda: None  # the type check (#22) has its own tests

    def update():
        PerceptionNode._update_subscriptions(fake)

    update()
    assert created == [ReliabilityPolicy.RELIABLE] and logs == [("info", "/cam: subscribed with [('reliable', "
                                                                  "'volatile')] for publishers [('reliable', 'volatile')]")]
    graph["/cam"] = []  # the publisher stops: nothing to match, keep the RELIABLE subscription
    update()
    assert len(created) == 1 and not destroyed and len(logs) == 1
    graph["/cam"] = [info(BE)]  # a best-effort publisher appears: a real change, logged once
    update()
    update()
    assert created[-1] == ReliabilityPolicy.BEST_EFFORT and destroyed == [1] and len(logs) == 2
    assert logs[-1][0] == "info"
    fake.context.ok_ = False  # SIGTERM: rclpy's handler shut the context down; close() not yet run
    update()
    assert len(logs) == 2
    # the context dies during the graph query: swallowed, no ERROR
    fake.context.ok_ = True
    graph["/cam"] = [info(R)]

    def dying(topic):
        fake.context.ok_ = False
        raise RuntimeError("RCLError: failed to get publishers: context is invalid")

    fake.get_publishers_info_by_topic = dying
    update()
    assert len(logs) == 2
    fake.context.ok_ = True  # with a valid context a failure is real and reported
    fake.get_publishers_info_by_topic = lambda t: (_ for _ in ()).throw(RuntimeError("graph broken"))
    update()
    assert logs[-1][0] == "error" and "graph broken" in logs[-1][1]


@pytest.mark.parametrize("camera,default,expect", [("/camera_color_optical_frame", "x", "camera_color_optical_frame"),
                                                   ("cam", "x", "cam"), ("", "/base_camera", "base_camera")])
def test_masks_carry_a_frame_id_tf2_accepts(camera, default, expect):
    """A driver's ROS 1 style '/frame' is passed on without the slash (review: ROS 2's tf2 refuses
    frame ids that start with '/', so a consumer could not place the masks)."""
    from rmmss_ros.node.perception_node import PerceptionNode
    fake = SimpleNamespace(_camera_frame=camera, values={"output.frame_id": default})
    assert PerceptionNode.frame_id(fake) == expect
