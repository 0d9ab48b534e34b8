"""Per-sensor sync settings changed while running (``ros2 param set``): offset_s, slop_s, timeout_s,
enabled, applied from the next frame set."""
from __future__ import annotations

import pytest

from rmmss_ros.sync.synchronizer import NS, SensorConfig, Synchronizer


def make(now):
    return Synchronizer([SensorConfig("rgb"), SensorConfig("lidar", slop_s=0.02, timeout_s=0.5)],
                        lambda: now[0], reference="rgb")


def test_offset_and_slop_apply_from_the_next_set():
    now = [0]
    s = make(now)
    # LiDAR stamped 60 ms late: outside the 20 ms slop, the set waits then goes without it
    now[0] = 1 * NS
    s.add("lidar", int(1.06 * NS), "l1")
    out = s.add("rgb", 1 * NS, "c1")
    now[0] = int(1.6 * NS)
    out += s.poll()
    assert [fs.present for fs in out] == [("rgb",)]
    s.configure("lidar", offset_s=-0.06)
    now[0] = 2 * NS
    s.add("lidar", int(2.06 * NS), "l2")
    out = s.add("rgb", 2 * NS, "c2")
    assert [fs.present for fs in out] == [("rgb", "lidar")]
    s.configure("lidar", offset_s=0.0, slop_s=0.1)
    now[0] = 3 * NS
    s.add("lidar", int(3.06 * NS), "l3")
    out = s.add("rgb", 3 * NS, "c3")
    assert [fs.present for fs in out] == [("rgb", "lidar")]


def test_disabled_sensors_are_not_waited_for_nor_used():
    now = [0]
    s = make(now)
    s.configure("lidar", enabled=False)
    now[0] = 1 * NS
    s.add("lidar", 1 * NS, "l1")
    out = s.add("rgb", 1 * NS, "c1")  # at once: nothing to wait for
    assert [(fs.present, fs.missing) for fs in out] == [(("rgb",), ("lidar",))]
    s.configure("lidar", enabled=True)
    now[0] = 2 * NS
    s.add("lidar", 2 * NS, "l2")
    assert [fs.present for fs in s.add("rgb", 2 * NS, "c2")] == [("rgb", "lidar")]


def test_bad_runtime_settings_are_refused():
    s = make([0])
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        s.configure("lidar", timeout_s=0.0)
    with pytest.raises(ValueError, match="reference sensor"):
        s.configure("rgb", enabled=False)
    with pytest.raises(ValueError, match="was not enabled at start-up"):
        s.configure("depth", slop_s=0.1)
    assert s.sensors["lidar"].timeout_s == 0.5  # unchanged after a refusal
