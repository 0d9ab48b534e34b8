"""Bags as rosbag2 writes them (issue #12, failure 7): file-compressed (``NAME_0.mcap.zstd``) and
message-compressed bags, split bags with and without metadata.yaml, valid-but-unusual metadata,
and EventPacket topics registered from the public message definition."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from rmmss_ros.bag import messages as M
from rmmss_ros.bag.reader import BagError, open_bag
from rmmss_ros.conversions import decode_event_packet
from rmmss_ros.conversions.event_packet import encode_mono

STEP_NS = 50_000_000


def write(path: Path, storage="mcap", mode=None, t0_ns=0, n=6) -> Path:
    """A small bag with a camera and a LiDAR topic: ``n`` messages each, 50 ms apart."""
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    if mode is not None:
        w.set_compression(mode, CompressionFormat.ZSTD)
    with w:
        cam = w.add_connection("/camera/image_raw", M.IMAGE, typestore=M.typestore())
        lid = w.add_connection("/lidar/points", M.POINTCLOUD2, typestore=M.typestore())
        for i in range(n):
            t = t0_ns + i * STEP_NS
            w.write(cam, t, M.serialize(M.image_msg(np.full((2, 4, 3), i, np.uint8), "rgb8", t, "cam")))
            cols = {"x": np.array([1.0 + i], np.float32), "y": np.zeros(1, np.float32), "z": np.zeros(1, np.float32)}
            w.write(lid, t + 1, M.serialize(M.pointcloud2_msg(cols, t, "lidar")))
    return path


def stamps(bag) -> list[int]:
    return [m.log_ns for m in bag.messages()]


def test_file_and_message_compressed_bags(tmp_path):
    """Failure 7: ``compression_mode: file`` (folder holds NAME.mcap.zstd + metadata.yaml) was
    refused ("holds no .mcap or .db3 file") though rosbags reads it."""
    f = write(tmp_path / "file", mode=CompressionMode.FILE)
    assert any(p.name.endswith(".mcap.zstd") for p in f.iterdir())
    b = open_bag(f)
    assert not b.salvaged and b.counts == {"/camera/image_raw": 6, "/lidar/points": 6} and not b.problems
    first = next(b.messages(["/camera/image_raw"]))
    assert M.deserialize(first.raw, first.msgtype).data[0] == 0
    m = open_bag(write(tmp_path / "msg", mode=CompressionMode.MESSAGE))
    assert not m.salvaged and len(stamps(m)) == 12
    assert [x.raw for x in m.messages()] == [x.raw for x in open_bag(write(tmp_path / "plain")).messages()]
    # without metadata.yaml the .zstd file is decompressed and scanned
    (f / "metadata.yaml").unlink()
    s = open_bag(f)
    assert s.salvaged and sum(s.counts.values()) == 12 and "no metadata.yaml" in s.problems[0]


def _split(tmp_path: Path, storage: str, keep_metadata: bool) -> Path:
    """A split bag ``split/split_0 .. split_2`` (each file one third of the time line)."""
    out = tmp_path / "split"
    out.mkdir()
    ext = ".mcap" if storage == "mcap" else ".db3"
    metas = []
    for k in range(3):
        part = write(tmp_path / f"part{k}", storage, t0_ns=k * 10**9)
        shutil.move(str(part / f"part{k}{ext}"), out / f"split_{k}{ext}")
        metas.append(yaml.safe_load((part / "metadata.yaml").read_text())["rosbag2_bagfile_information"])
    if keep_metadata:
        info = dict(metas[0])
        info["relative_file_paths"] = [f"split_{k}{ext}" for k in range(3)]
        info["files"] = [{**m["files"][0], "path": f"split_{k}{ext}"} for k, m in enumerate(metas)]
        info["message_count"] = sum(m["message_count"] for m in metas)
        info["duration"] = {"nanoseconds": 2 * 10**9 + 5 * STEP_NS + 1}
        info["topics_with_message_count"] = [{**t, "message_count": 18} for t in metas[0]["topics_with_message_count"]]
        (out / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}))
    return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("keep_metadata", [True, False])
def test_split_bags_read_every_file_in_time_order(tmp_path, storage, keep_metadata):
    """Failure 7: a split sqlite3 bag without metadata.yaml read only its first file."""
    b = open_bag(_split(tmp_path, storage, keep_metadata))
    assert b.salvaged != keep_metadata
    t = stamps(b)
    assert len(t) == 36 and t == sorted(t) and t[0] == 0 and t[-1] == 2 * 10**9 + 5 * STEP_NS + 1
    assert b.counts == {"/camera/image_raw": 18, "/lidar/points": 18}


def test_unusual_metadata_is_read_and_unsupported_is_not_called_corrupt(tmp_path):
    """Failure 7: merely unusual bags (empty storage id, another serialization format) were
    reported as "truncated or corrupt"."""
    bag = write(tmp_path / "b")
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    info["storage_identifier"] = ""
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta))
    b = open_bag(bag)  # rosbag2 infers the plugin from the extension; so do we
    assert not b.salvaged and len(stamps(b)) == 12 and not b.problems
    info["storage_identifier"] = "mcap"
    for t in info["topics_with_message_count"]:
        t["topic_metadata"]["serialization_format"] = "ros1"
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(BagError, match=r"unsupported serialization format \['ros1'\]") as e:
        open_bag(bag)
    assert "corrupt" not in str(e.value)
    for t in info["topics_with_message_count"]:
        t["topic_metadata"]["serialization_format"] = "cdr"
    info["compression_format"], info["compression_mode"] = "lz4", "FILE"
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(BagError, match="unsupported") as e:
        open_bag(bag)
    assert "corrupt" not in str(e.value)


def test_event_packet_bags_round_trip(tmp_path):
    """Failure 4: EventPacket bags were refused. The public definition is registered with rosbags."""
    out = tmp_path / "ev"
    w = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
    with w:
        c = w.add_connection("/events", M.EVENT_PACKET, typestore=M.typestore())
        for k in range(3):
            stamp = 10**9 + k * 10**6
            pkt = M.event_packet_msg(encode_mono([1, 2], [3, 4], [0, 500_000], [1, 0]), "mono", 640, 480,
                                     stamp, "event_camera", seq=k)
            w.write(c, stamp, M.serialize(pkt))
    b = open_bag(out)
    assert b.topics == {"/events": M.EVENT_PACKET} and b.counts["/events"] == 3
    msgs = [M.deserialize(m.raw, m.msgtype) for m in b.messages()]
    ev = decode_event_packet(msgs[2])
    np.testing.assert_array_equal(ev.t_ns, [10**9 + 2 * 10**6, 10**9 + 2 * 10**6 + 500_000])
    np.testing.assert_array_equal(ev.x, [1, 2])
    from rmmss_ros.replay.replay import Replayer

    class _P:  # the replayer only needs the pipeline for processing; topics() is checked here
        spec = None

    values = {"model_path": "x", "event.topic": "/events", "event.format": "packet"}
    assert Replayer(_P(), values).topics(b)[0] == {"/events": "event"}
    with pytest.raises(BagError, match="event.format=packet"):
        Replayer(_P(), {"model_path": "x", "event.topic": "/events"}).topics(b)
