"""``<sensor>.transport`` resolution: raw | compressed | auto (image_transport's topic names)."""
from __future__ import annotations

import pytest

from rmmss_ros.conversions.transport import COMPRESSED_IMAGE, IMAGE, resolve_transport

CI = COMPRESSED_IMAGE


def test_explicit_settings():
    r = resolve_transport("rgb", "/camera/image_raw", "compressed")
    assert (r.topic, r.transport, r.msgtype) == ("/camera/image_raw/compressed", "compressed", CI)
    r = resolve_transport("depth", "/camera/aligned_depth_to_color/image_raw", "compressed")
    assert r.topic == "/camera/aligned_depth_to_color/image_raw/compressedDepth"
    r = resolve_transport("rgb", "/camera/image_raw", "raw")
    assert (r.topic, r.msgtype) == ("/camera/image_raw", IMAGE)
    r = resolve_transport("rgb", "/cam/image_raw/compressed", "raw")  # the topic names its transport
    assert (r.transport, r.msgtype) == ("compressed", CI)
    with pytest.raises(ValueError, match="rgb.transport must be one of"):
        resolve_transport("rgb", "/x", "theora")


def test_auto_follows_what_is_offered():
    offered = {"/camera/image_raw/compressed": [CI], "/camera/depth/image_raw/compressedDepth": [CI],
               "/camera/depth/image_raw/compressed": [CI], "/events/image": [IMAGE], "/events/image/compressed": [CI]}
    r = resolve_transport("rgb", "/camera/image_raw", "auto", offered)
    assert (r.topic, r.transport) == ("/camera/image_raw/compressed", "compressed")
    assert "is not offered but /camera/image_raw/compressed is" in r.reason
    r = resolve_transport("depth", "/camera/depth/image_raw", "auto", offered)
    assert (r.topic, r.transport) == ("/camera/depth/image_raw/compressedDepth", "compressedDepth")
    r = resolve_transport("event", "/events/image", "auto", offered)  # raw offered: raw wins
    assert (r.topic, r.transport) == ("/events/image", "raw")
    r = resolve_transport("rgb", "/other", "auto", offered)
    assert (r.topic, r.transport) == ("/other", "raw") and "until one appears" in r.reason


def test_an_explicit_transport_nobody_publishes_names_the_parameter():
    """rgb.transport compressed on a camera published raw (or raw on a compressed-only camera) left
    the camera missing throughout, the replay saying only that the topic is not in the bag; the
    node and replay now say which topic is offered and the parameter to set."""
    from rmmss_ros.conversions.transport import transport_mismatch
    raw = {"/camera/image_raw": [IMAGE]}
    comp = {"/camera/image_raw/compressed": [CI]}
    text = transport_mismatch("rgb", "/camera/image_raw", "compressed", raw)
    assert text and "/camera/image_raw (raw) is" in text and "set rgb.transport to auto or raw" in text
    text = transport_mismatch("depth", "/d", "raw", {"/d/compressedDepth": [CI]})
    assert text and "set depth.transport to auto or compressed" in text
    assert transport_mismatch("rgb", "/camera/image_raw", "compressed", comp) is None  # what it wants is there
    assert transport_mismatch("rgb", "/camera/image_raw", "auto", raw) is None
    assert transport_mismatch("rgb", "/camera/image_raw", "raw", {}) is None  # nothing published yet: no blame


def test_replay_names_the_transport_parameter(tmp_path, caplog):
    from pathlib import Path

    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.replay.replay import Replayer

    bag = open_bag(Path(__file__).resolve().parents[1] / "rosbags" / "sample")
    r = Replayer(pipeline=None, values={"rgb.transport": "compressed"})
    _, notes = r.topics(bag)
    assert any("set rgb.transport to auto or raw" in n for n in notes), notes
    assert "set rgb.transport to auto or raw" in caplog.text


def test_a_topic_of_another_message_type_names_the_parameter():
    from rmmss_ros.conversions.transport import EVENT_PACKET, POINT_CLOUD2, type_mismatch
    assert "set event.format packet" in type_mismatch("event", "/events", IMAGE, [EVENT_PACKET])
    assert "set event.format cloud" in type_mismatch("event", "/events", IMAGE, [POINT_CLOUD2])
    assert "set lidar.topic to a sensor_msgs/msg/PointCloud2 topic" in type_mismatch(
        "lidar", "/scan", POINT_CLOUD2, ["sensor_msgs/msg/LaserScan"])
    assert type_mismatch("event", "/events", EVENT_PACKET, [EVENT_PACKET]) is None
    assert type_mismatch("lidar", "/points", POINT_CLOUD2, []) is None  # nothing published: no blame

