"""The node live over DDS at real rates and QoS (issue 11): camera, depth and events at 30 Hz and
LiDAR at 10 Hz from RELIABLE publishers with a CameraInfo latched before the node starts; masks for
>= 95% of camera frames, LiDAR in >= 95% of them, always in the camera's optical frame (also from
fallback ticks while the camera is dead); a 640x480 rgb8 RELIABLE stream received with the default
QoS; SIGINT / SIGTERM under load exit 0 without a traceback.

ROS_DOMAIN_ID: from ``RMMSS_TEST_DOMAIN`` if set, else derived from the process id (isolated runs)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from conftest import NodeProcesses  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rmmss_ros.conversions import fill_cloud, fill_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 64
CAM_FRAME = "front_camera_optical_frame"
pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("dds_domain")]
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module", autouse=True)
def _rclpy(dds_domain):
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope="module")
def tiny_model(tiny_model_factory) -> Path:
    return tiny_model_factory((H, W))


NODES = NodeProcesses()  # the tests and the helpers below start nodes through it


@pytest.fixture(scope="module", autouse=True)
def _stop_leftovers():
    yield
    NODES.close()


def start_node(model: Path, *params: str):
    return NODES.start(model, "diagnostics.period_s:=0.5", *params)


def stop_node(proc, sig=None) -> str:
    return NODES.stop(proc, sig)


class Sensors:
    """Drivers as they really are: RELIABLE image/cloud publishers at their own rates, CameraInfo
    latched once (RELIABLE + TRANSIENT_LOCAL) before the node starts."""

    def __init__(self, size=(H, W)):
        self.node = rclpy.create_node(f"rmmss_rates_rig_{os.getpid()}_{time.monotonic_ns() % 10**6}")
        self.pubs = {"rgb": self.node.create_publisher(Image, "camera/image_raw", RELIABLE),
                     "depth": self.node.create_publisher(Image, "depth/image_raw", RELIABLE),
                     "event": self.node.create_publisher(Image, "events", RELIABLE),
                     "lidar": self.node.create_publisher(PointCloud2, "lidar/points", RELIABLE)}
        self.info_pub = self.node.create_publisher(CameraInfo, "camera/camera_info", LATCHED)
        self.masks: list[Image] = []
        self.used: list[dict] = []
        self.diags: list[DiagnosticArray] = []
        self.node.create_subscription(Image, "/perception_node/mask", self.masks.append, 50)
        self.node.create_subscription(String, "/perception_node/used_modalities",
                                      lambda m: self.used.append(json.loads(m.data)), 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 50)
        h, w = size
        rng = np.random.default_rng(0)
        self.msgs = {"rgb": fill_image(Image(), rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8"),
                     "depth": fill_image(Image(), rng.uniform(1, 30, (h, w)).astype(np.float32), "32FC1"),
                     "event": fill_image(Image(), rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8")}
        pts = np.zeros(2000, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
        pts["x"], pts["y"], pts["z"] = rng.uniform(2, 20, 2000), rng.uniform(-5, 5, 2000), rng.uniform(-1, 2, 2000)
        self.msgs["lidar"] = fill_cloud(PointCloud2(), pts, PointField)
        frames = {"rgb": CAM_FRAME, "depth": "depth_optical_frame", "event": "event_optical_frame",
                  "lidar": "lidar_link"}
        for m, msg in self.msgs.items():
            msg.header.frame_id = frames[m]
        info = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
        info.k = [40.0, 0.0, w / 2, 0.0, 40.0, h / 2, 0.0, 0.0, 1.0]
        info.d = [0.0] * 5
        info.p = [40.0, 0.0, w / 2, 0.0, 0.0, 40.0, h / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.header.frame_id = CAM_FRAME
        self.info_pub.publish(info)  # once, latched, before the node exists
        self.sent: dict[str, list[tuple[int, int]]] = {m: [] for m in self.pubs}

    def run(self, seconds: float, rates=None, stamp=None) -> None:
        """Publish at ``rates`` for ``seconds``; ``stamp(sensor, k, now_ns) -> ns`` may rewrite
        the header stamp of the k-th message of a sensor (fuzz, another clock)."""
        rates = rates or {"rgb": 30.0, "depth": 30.0, "event": 30.0, "lidar": 10.0}
        t0 = time.monotonic()
        due = {m: t0 for m in rates}
        while time.monotonic() < t0 + seconds:
            now = time.monotonic()
            for m, hz in rates.items():
                if now >= due[m]:
                    msg = self.msgs[m]
                    now_ns = self.node.get_clock().now().nanoseconds
                    ns = stamp(m, len(self.sent[m]), now_ns) if stamp else now_ns
                    msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 10**9, ns % 10**9
                    self.pubs[m].publish(msg)
                    self.sent[m].append((msg.header.stamp.sec, msg.header.stamp.nanosec))
                    due[m] += 1.0 / hz
            rclpy.spin_once(self.node, timeout_sec=max(0.0, min(due.values()) - time.monotonic()))

    def spin(self, seconds: float) -> None:
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def wait_masks(self, n: int, timeout: float, rates=None) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end and len(self.masks) < n:
            self.run(0.5, rates)
        return len(self.masks) >= n

    def statuses(self, since: int = 0) -> dict[str, list]:
        out: dict[str, list] = {}
        for arr in self.diags[since:]:
            for s in arr.status:
                if s.name.startswith("perception_node: "):
                    out.setdefault(s.name.split(": ", 1)[1], []).append(s)
        return out

    def close(self) -> None:
        self.node.destroy_node()


def _level(s) -> int:
    return s.level[0] if isinstance(s.level, bytes) else int(s.level)


def test_real_rates_and_qos_masks_every_camera_frame_with_the_lidar(tiny_model):
    """Done-when of issue 11: 30/30/30 Hz + 10 Hz LiDAR from RELIABLE publishers, CameraInfo
    latched before the node starts: masks >= 95% of camera frames, LiDAR in >= 95% of them (old
    code: 33% and 0%); frame_id always the camera's, also from fallback ticks (camera dead)."""
    rig = Sensors()
    proc = start_node(tiny_model)
    try:
        assert rig.wait_masks(5, 90.0), "no mask from the node:\n" + stop_node(proc)
        rig.run(1.0)
        n_sent, n_used, d0 = len(rig.sent["rgb"]), len(rig.used), len(rig.diags)
        rig.run(6.0)
        d1 = len(rig.diags)
        rig.spin(0.5)
        stamps = {(u["stamp"]["sec"], u["stamp"]["nanosec"]) for u in rig.used[n_used:]}
        sent = rig.sent["rgb"][n_sent:]
        got = [s for s in sent if s in stamps]
        with_lidar = [u for u in rig.used[n_used:] if "lidar" in u["used"]]
        print(f"camera frames {len(sent)}, masked {len(got)} ({len(got) / len(sent):.1%}), "
              f"with LiDAR {len(with_lidar)} ({len(with_lidar) / max(1, len(got)):.1%})")
        st = {k: v[:d1 - d0] for k, v in rig.statuses(d0).items()}
        out = {v.key: v.value for v in st["output"][-1].values}
        print(f"node: sets_emitted {out['sets_emitted']}, queue_drops {out['queue_drops']}, "
              f"latency p50 {out['latency_p50_ms']} ms, max {out['latency_max_ms']} ms")
        assert len(got) >= 0.95 * len(sent), f"{len(got)} masks for {len(sent)} camera frames"
        assert len(with_lidar) >= 0.95 * len(got), f"LiDAR in {len(with_lidar)} of {len(got)} masks"
        assert {m.header.frame_id for m in rig.masks} == {CAM_FRAME}
        assert {_level(s) for s in st["lidar"][1:]} == {0}, [s.message for s in st["lidar"]]
        assert {_level(s) for s in st["camera_info"]} == {0}
        # camera dead: fallback ticks from depth/events/LiDAR still carry the camera's frame
        n_masks = len(rig.masks)
        rig.run(2.5, {"depth": 30.0, "event": 30.0, "lidar": 10.0})
        ticks = rig.masks[n_masks:]
        assert len(ticks) >= 10 and {m.header.frame_id for m in ticks} == {CAM_FRAME}
    finally:
        log = stop_node(proc)
        rig.close()
    assert proc.returncode == 0 and "Traceback" not in log, log


def test_reliable_640x480_images_received_with_the_default_qos(tiny_model):
    """Issue 11 #5: a RELIABLE 640x480 rgb8 publisher at 30 Hz: >= 99% received with the default
    QoS (best effort received 21 of 180)."""
    rig = Sensors(size=(480, 640))
    proc = start_node(tiny_model, "depth.enabled:=false", "event.enabled:=false", "lidar.enabled:=false")
    try:
        assert rig.wait_masks(3, 90.0, {"rgb": 30.0}), "no mask from the node:\n" + stop_node(proc)
        rig.spin(1.0)
        d0 = len(rig.diags)
        rig.spin(0.6)
        before = max(int(next(v.value for v in s.values if v.key == "received")) for s in rig.statuses(d0)["rgb"])
        n0 = len(rig.sent["rgb"])
        rig.run(6.0, {"rgb": 30.0})
        rig.spin(1.5)
        after = max(int(next(v.value for v in s.values if v.key == "received")) for s in rig.statuses(d0)["rgb"])
        sent = len(rig.sent["rgb"]) - n0
        print(f"640x480 rgb8 RELIABLE at 30 Hz: sent {sent}, received {after - before}")
        assert after - before >= 0.99 * sent
    finally:
        log = stop_node(proc)
        rig.close()
    assert proc.returncode == 0 and "Traceback" not in log, log


def test_stamp_fuzz_costs_no_frame_of_the_other_sensors(tiny_model):
    """Issue 11 #3 live: every third depth and event message stamped 0, -100 s or +1e6 s, and
    every fifth camera frame with sec = -1: the fuzzed messages are rejected and counted; every
    other camera frame is masked with the LiDAR; no exception (old code: resets, 75% lost, and
    'Nanoseconds value must not be negative' in publishing)."""
    bad = [0, -100 * 10**9, 10**15]

    def fuzz(m, k, now):
        if m in ("depth", "event") and k % 3 == 1:
            return bad[(k // 3) % 3]
        if m == "rgb" and k % 5 == 2:
            return -10**9 + now % 10**9  # sec = -1
        return now

    rig = Sensors()
    proc = start_node(tiny_model)
    try:
        assert rig.wait_masks(5, 90.0), "no mask from the node:\n" + stop_node(proc)
        rig.run(0.5)
        n_sent, n_used, d0 = len(rig.sent["rgb"]), len(rig.used), len(rig.diags)
        rig.run(5.0, stamp=fuzz)
        rig.spin(0.6)
        sent = [s for k, s in enumerate(rig.sent["rgb"][n_sent:], n_sent) if k % 5 != 2]
        stamps = {(u["stamp"]["sec"], u["stamp"]["nanosec"]) for u in rig.used[n_used:]}
        got = [s for s in sent if s in stamps]
        with_lidar = sum("lidar" in u["used"] for u in rig.used[n_used:])
        print(f"stamp fuzz: good camera frames {len(sent)}, masked {len(got)}, with LiDAR {with_lidar}")
        assert len(got) >= 0.95 * len(sent) and with_lidar >= 0.95 * len(got)
        assert all(u["stamp"]["sec"] > 0 for u in rig.used[n_used:])
        st = rig.statuses(d0)
        implausible = {m: max(int(next(v.value for v in x.values if v.key == "implausible")) for x in st[m])
                       for m in ("rgb", "depth", "event", "lidar")}
        assert implausible["lidar"] == 0 and min(implausible.values()) == 0
        assert implausible["rgb"] > 0 and implausible["depth"] > 0 and implausible["event"] > 0
    finally:
        log = stop_node(proc)
        rig.close()
    assert proc.returncode == 0 and "Traceback" not in log and "must not be negative" not in log, log


def test_latency_measured_from_receipt_when_stamps_come_from_another_clock(tiny_model):
    """Issue 11 #7: with recorded stamps (96 s in the past, no sim time) the output latency read
    ~96e9 ms... i.e. stamp-to-now. It is measured from receipt then: well under a second."""
    rig = Sensors()
    proc = start_node(tiny_model)
    old = lambda m, k, now: now - 96 * 10**9  # noqa: E731
    try:
        assert rig.wait_masks(5, 90.0, None) or rig.wait_masks(5, 30.0), "no mask:\n" + stop_node(proc)
        rig.run(3.0, stamp=old)
        d0 = len(rig.diags)
        rig.run(2.0, stamp=old)
        out = [{v.key: v.value for v in s.values} for s in rig.statuses(d0)["output"]]
        p50 = float(out[-1]["latency_p50_ms"])
        print(f"off-clock stamps: latency p50 {p50} ms")
        assert 0 < p50 < 1000
    finally:
        log = stop_node(proc)
        rig.close()
    assert proc.returncode == 0, log


def _stop_under_load(model: Path, sig: int) -> tuple[int, str]:
    rig = Sensors(size=(240, 320))  # the worker busy all the time: the signal lands mid-publish
    proc = start_node(model, "diagnostics.period_s:=0.1")
    try:
        assert rig.wait_masks(3, 90.0), "no mask from the node:\n" + stop_node(proc)
        rig.run(0.3 + (time.monotonic_ns() % 7) / 10)
        proc.send_signal(sig)
        t_end = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < t_end:
            rig.run(0.1)  # keep the load on while it stops
        log = stop_node(proc, signal.SIGKILL) if proc.poll() is None else proc.stdout.read()
    finally:
        rig.close()
    return proc.returncode, log


def _check_stop(rc: int, log: str) -> None:
    assert rc == 0, log
    for bad in ("Traceback", "Failed to publish", "KeyboardInterrupt", "context is invalid"):
        assert bad not in log, log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_sigterm_under_load_exit_0_without_traceback(tiny_model, sig):
    """Issue 11 #10: stopped under load the node printed 'Failed to publish: publisher's context is
    invalid' with a traceback (3 of 4 stops). Quick version; 20 repetitions: the slow test."""
    _check_stop(*_stop_under_load(tiny_model, sig))


@pytest.mark.slow
def test_twenty_stops_under_load_exit_0(tiny_model):
    for k in range(20):
        _check_stop(*_stop_under_load(tiny_model, signal.SIGINT if k % 2 == 0 else signal.SIGTERM))


def test_sensor_on_another_clock_reported_out_of_sync_and_adds_no_wait(tiny_model):
    """Issue 11 #4 live: depth stamped 1000 s off (its own clock): reported out of sync with the
    measured offset on /diagnostics, and frames stop waiting for it (old code: p50 152 ms instead
    of 32 ms, nothing reported)."""
    rig = Sensors()
    proc = start_node(tiny_model)
    off = lambda m, k, now: now - 1000 * 10**9 if m == "depth" else now  # noqa: E731
    try:
        assert rig.wait_masks(5, 90.0), "no mask from the node:\n" + stop_node(proc)
        rig.run(2.0, stamp=off)
        d0 = len(rig.diags)
        rig.run(3.0, stamp=off)
        st = rig.statuses(d0)
        depth = st["depth"][-1]
        values = {v.key: v.value for v in depth.values}
        out = {v.key: v.value for v in st["output"][-1].values}
        print(f"depth 1000 s off: {depth.message}; latency p50 {out['latency_p50_ms']} ms")
        assert _level(depth) == 1 and "out of sync" in depth.message
        assert abs(float(values["offset_ms"]) + 1_000_000) < 100
        assert float(out["latency_p50_ms"]) < 100
    finally:
        log = stop_node(proc)
        rig.close()
    assert proc.returncode == 0, log
