"""Bag writer and robust reader: a fabricated raw sequence in the ARCHITECTURE layout -> rosbag2."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rmmss_ros.bag import messages as M
from rmmss_ros.bag.cli import options_from_args
from rmmss_ros.bag.reader import BagError, open_bag
from rmmss_ros.bag.sequence import open_sequence
from rmmss_ros.bag.writer import DEFAULT_TOPICS, BagWriteOptions, plan_messages, with_timing, write_bag


def fake_dataset(root: Path, frames: int = 12, size: tuple[int, int] = (24, 32), rate_hz: float = 10.0) -> Path:
    """A tiny raw sequence ``root/{img,semantic,event,raw}/day/val/seq0``; returns root."""
    h, w = size
    rng = np.random.default_rng(0)
    rel = Path("day/val/seq0")
    names = [f"{i:06d}" for i in range(frames)]
    stamps = [100.0 + i / rate_hz for i in range(frames)]
    for folder in ("img", "semantic", "event", "raw"):
        (root / folder / rel).mkdir(parents=True, exist_ok=True)
    calib = {"camera": {"width": w, "height": h, "K": [[20.0, 0, w / 2], [0, 20.0, h / 2], [0, 0, 1]]},
             "T_cam_lidar": np.eye(4).tolist(), "lidar": {"channels": 16},
             "frames": [{"frame": n, "stamp": s} for n, s in zip(names, stamps, strict=True)]}
    (root / "raw" / rel / "calib.json").write_text(json.dumps(calib))
    for i, n in enumerate(names):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "img" / rel / f"{n}_rgb_front.png")
        label = np.zeros((h, w, 3), np.uint8)
        label[..., 0] = (np.arange(w)[None, :] // 8 + i) % 5 + 1
        label[:2, :, 0] = 0  # unlabeled rows -> 255
        Image.fromarray(label).save(root / "semantic" / rel / f"{n}_semantic_front.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "event" / rel / f"{n}_event_front.png")
        depth = rng.uniform(1, 50, (h, w)).astype(np.float32)
        depth[0, 0] = np.nan
        np.save(root / "raw" / rel / f"{n}_depth.npy", depth)
        np.save(root / "raw" / rel / f"{n}_points.npy", rng.normal(0, 5, (200, 4)).astype(np.float32))
        m = 300
        np.savez(root / "raw" / rel / f"{n}_events.npz", x=rng.integers(0, w, m).astype(np.uint16),
                 y=rng.integers(0, h, m).astype(np.uint16), t=np.sort(stamps[i] - rng.uniform(0, 0.1, m)),
                 p=rng.integers(0, 2, m).astype(np.int8))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return fake_dataset(tmp_path_factory.mktemp("ds"))


@pytest.fixture(scope="module")
def bag(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "seq.bag"
    write_bag(open_sequence(dataset), out, BagWriteOptions(depth_encoding="16UC1"))
    return out


def test_bag_has_every_topic_type_and_count(bag, dataset):
    r = open_bag(bag)
    assert not r.salvaged and not r.problems
    assert r.topics == {"/camera/image_raw": M.IMAGE, "/camera/camera_info": M.CAMERA_INFO,
                        "/depth/image_raw": M.IMAGE, "/events": M.POINTCLOUD2,
                        "/lidar/points": M.POINTCLOUD2, "/labels/semantic": M.IMAGE}
    assert set(r.counts.values()) == {12}
    assert 1.0 < (r.end_ns - r.start_ns) / 1e9 < 1.3
    meta = (bag / "metadata.yaml").read_text()  # what `ros2 bag info` reads
    assert "storage_identifier: mcap" in meta and "seq.bag.mcap" in meta and "message_count: 72" in meta
    assert (bag / "seq.bag.mcap").is_file()
    assert json.loads(r.custom["rmmss.T_cam_lidar"]) == np.eye(4).reshape(-1).tolist()
    assert r.custom["rmmss.source"].endswith("day/val/seq0") and r.custom["rmmss.events"] == "points"


def test_messages_round_trip_exactly(bag, dataset):
    seq = open_sequence(dataset)
    r = open_bag(bag)
    first = {}
    for msg in r.messages():
        first.setdefault(msg.topic, M.deserialize(msg.raw, msg.msgtype))
    img = first["/camera/image_raw"]
    assert (img.encoding, img.height, img.width, img.step) == ("rgb8", 24, 32, 96)
    np.testing.assert_array_equal(img.data.reshape(24, 32, 3), seq.rgb("000000"))
    depth = first["/depth/image_raw"]
    mm = depth.data.view("<u2").reshape(24, 32)
    assert depth.encoding == "16UC1" and mm[0, 0] == 0  # NaN -> 0 = invalid (REP 118)
    np.testing.assert_allclose(mm[1:, 1:] / 1000.0, seq.depth("000000")[1:, 1:], atol=5e-4)
    label = first["/labels/semantic"]
    lab = label.data.reshape(24, 32)
    assert label.encoding == "mono8" and (lab[:2] == 255).all() and lab[2:].max() <= 4
    assert M.stamp_to_ns(label.header) == M.stamp_to_ns(img.header)  # the label is the camera frame
    cloud = first["/lidar/points"]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"] and cloud.point_step == 16
    np.testing.assert_array_equal(cloud.data.view("<f4").reshape(-1, 4), seq.points("000000"))
    ev = first["/events"]
    assert [f.name for f in ev.fields] == ["x", "y", "t", "polarity"] and ev.width == 300
    info = first["/camera/camera_info"]
    assert info.k[0] == 20.0 and info.p[2] == 16.0 and info.distortion_model == "plumb_bob"


def test_timing_has_jitter_rates_and_receive_order(dataset):
    seq = open_sequence(dataset)
    plan = plan_messages(seq, with_timing(BagWriteOptions(), "lidar", rate_hz=5.0))
    recv = [p[0] for p in plan]
    assert recv == sorted(recv)
    lidar = [p for p in plan if p[2] == "lidar"]
    assert [p[3] for p in lidar] == [0, 2, 4, 6, 8, 10]
    rgb = {p[3]: p[1] for p in plan if p[2] == "rgb"}
    depth = {p[3]: p[1] for p in plan if p[2] == "depth"}
    offsets = np.array([depth[i] - rgb[i] for i in rgb]) / 1e9
    assert offsets.std() > 1e-4 and np.abs(offsets).max() < 0.02  # jittery but within a sync slop
    assert all(p[0] > p[1] for p in plan if p[2] != "rgb")  # received after acquisition
    assert plan == plan_messages(seq, with_timing(BagWriteOptions(), "lidar", rate_hz=5.0))  # deterministic


def test_sqlite3_and_event_frames(dataset, tmp_path):
    out = tmp_path / "b"
    write_bag(open_sequence(dataset), out, BagWriteOptions(storage="sqlite3", events="frame", max_frames=4))
    r = open_bag(out)
    assert r.storage == "sqlite3" and r.topics["/events"] == M.IMAGE and r.counts["/events"] == 4
    assert (out / "b.db3").is_file()
    with pytest.raises(ValueError, match="already exists"):
        write_bag(open_sequence(dataset), out, BagWriteOptions(storage="sqlite3"))


def test_truncated_mcap_keeps_what_is_readable(bag, tmp_path):
    data = (bag / "seq.bag.mcap").read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    r = open_bag(cut)
    assert r.salvaged and any("truncated" in p for p in r.problems)
    n = sum(r.counts.values())
    assert 0 < n < 72
    assert sum(1 for _ in r.messages()) == n
    with pytest.raises(BagError, match="no readable message"):
        small = tmp_path / "tiny.mcap"
        small.write_bytes(data[:40])
        open_bag(small)


def test_corrupt_and_missing_inputs_give_clear_errors(bag, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_bag(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no .mcap or .db3"):
        open_bag(tmp_path / "empty")
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all" * 10)
    with pytest.raises(BagError, match="bad magic"):
        open_bag(junk)
    broken = tmp_path / "broken"
    shutil.copytree(bag, broken)
    mcap = broken / "seq.bag.mcap"
    mcap.write_bytes(mcap.read_bytes()[:-100])  # footer gone: rosbags refuses, we salvage
    r = open_bag(broken)
    assert r.salvaged and sum(r.counts.values()) == 72  # only the summary section was lost
    assert r.require({"/camera/image_raw": M.IMAGE, "/radar/points": M.POINTCLOUD2}) == ["/radar/points"]
    with pytest.raises(BagError, match="has type sensor_msgs/msg/Image, expected"):
        r.require({"/camera/image_raw": M.POINTCLOUD2})
    with pytest.raises(ValueError, match="unknown message type"):
        M.deserialize(b"\x00\x01\x00\x00", "my_msgs/msg/Radar")
    with pytest.raises(ValueError, match="corrupt sensor_msgs/msg/Image"):
        M.deserialize(b"\x00\x01\x00\x00\x05", M.IMAGE)


def test_truncated_sqlite_is_salvaged(dataset, tmp_path):
    out = tmp_path / "s"
    write_bag(open_sequence(dataset), out, BagWriteOptions(storage="sqlite3"))
    db = out / "s.db3"
    (out / "metadata.yaml").unlink()
    r = open_bag(out)
    assert r.salvaged and sum(r.counts.values()) == 72
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    try:
        r = open_bag(out)
        assert sum(r.counts.values()) < 72
    except BagError as e:  # sqlite may find no intact row at all: still a clear error
        assert "no readable message" in str(e)
    assert isinstance(sqlite3.DatabaseError("x"), Exception)


def test_cli_options(tmp_path):
    import argparse

    from rmmss_ros.bag.cli import add_arguments
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["write", "ds", "out", "--rate", "lidar=5", "--jitter", "depth=0.003",
                         "--topic", "lidar=/velodyne_points", "--storage", "sqlite3"])
    opts = options_from_args(args)
    assert opts.timings["lidar"].rate_hz == 5.0 and opts.timings["depth"].jitter_s == 0.003
    assert opts.topics["lidar"] == "/velodyne_points" and opts.topics["rgb"] == DEFAULT_TOPICS["rgb"]
    for bad in (["--rate", "radar=5"], ["--rate", "lidar"], ["--jitter", "lidar=abc"], ["--topic", "x=/y"]):
        with pytest.raises(ValueError):
            options_from_args(p.parse_args(["write", "ds", "out", *bad]))
