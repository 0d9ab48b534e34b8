"""Dropout schedules and corruptions (ROS-free), and offline replay through the node's pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from rmmss_ros.bag import messages as M
from rmmss_ros.replay.schedule import Rule, Schedule


def test_parse_drop_windows_and_aliases():
    s = Schedule.parse("lidar@10-20s, E@30s-35s,depth@40-")
    assert s.rules == (Rule("lidar", 10, 20), Rule("event", 30, 35), Rule("depth", 40, None))
    assert s.dropped("lidar", 10.0) and s.dropped("lidar", 19.99) and not s.dropped("lidar", 20.0)
    assert not s.dropped("rgb", 15) and s.dropped("depth", 1e6)
    assert s.available(15.0) == (True, True, True, False)
    assert s.available(32.0) == (True, True, False, True)
    assert str(s) == "lidar@10-20s,event@30-35s,depth@40-s"
    assert str(Schedule.parse("")) == "none" and Schedule.parse(None).rules == ()


@pytest.mark.parametrize("bad, msg", [("radar@1-2s", "unknown sensor"), ("lidar@5-2s", "not after"),
                                      ("lidar:10-20", "bad schedule rule"), ("lidar@1-2s:melt", "unknown action"),
                                      ("depth@flap=1.5/1s", "fraction")])
def test_parse_errors_name_the_rule(bad, msg):
    with pytest.raises(ValueError, match=msg):
        Schedule.parse(bad)


def test_flapping_is_seeded_windowed_and_about_the_right_fraction():
    s = Schedule.parse("depth@flap=0.3/0.5s", seed=3)
    states = [s.dropped("depth", t) for t in np.arange(0, 500, 0.5) + 0.1]
    assert 0.22 < np.mean(states) < 0.38
    assert s.dropped("depth", 7.1) == s.dropped("depth", 7.4)  # constant within a window
    assert states == [Schedule.parse("depth@flap=0.3/0.5s", seed=3).dropped("depth", t)
                      for t in np.arange(0, 500, 0.5) + 0.1]
    other = [Schedule.parse("depth@flap=0.3/0.5s", seed=4).dropped("depth", t) for t in np.arange(0, 500, 0.5) + 0.1]
    assert states != other


def _image(values: np.ndarray, enc: str, stamp: int = 5):
    return M.image_msg(values, enc, stamp, "cam")


def test_corruptions_damage_data_but_keep_the_sensor():
    rgb = np.full((4, 5, 3), 100, np.uint8)
    s = Schedule.parse("rgb@1-2s:blank,depth@0-9s:noise=0.1,lidar@0-9s:sparse=0.5,event@0-9s:freeze")
    assert s.apply("rgb", 0.5, _image(rgb, "rgb8")).data.max() == 100  # outside the window
    blank = s.apply("rgb", 1.5, _image(rgb, "rgb8"))
    assert blank is not None and blank.data.max() == 0 and blank.height == 4
    depth = np.full((4, 5), 10.0, np.float32)
    noisy = s.apply("depth", 1.0, _image(depth, "32FC1")).data.view("<f4")
    assert 0.02 < np.std(noisy - 10.0) / 10.0 < 0.2
    pts = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    cloud = M.pointcloud2_msg({"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "intensity": pts[:, 3]}, 7, "l")
    sparse = s.apply("lidar", 1.0, cloud)
    assert 350 < sparse.width < 650 and len(sparse.data) == sparse.width * 16 == sparse.row_step
    s2 = Schedule.parse("event@2-9s:freeze")
    first = s2.apply("event", 1.0, _image(np.full((2, 2, 3), 1, np.uint8), "rgb8", stamp=1))
    frozen = s2.apply("event", 3.0, _image(np.full((2, 2, 3), 9, np.uint8), "rgb8", stamp=2))
    assert frozen.data.max() == 1 and M.stamp_to_ns(frozen.header) == 2 and first.data.max() == 1
    assert Schedule.parse("lidar@0-9s").apply("lidar", 1.0, cloud) is None
    # a corrupted message still serialises (the player re-encodes it)
    assert M.deserialize(M.serialize(sparse), M.POINTCLOUD2).width == sparse.width
