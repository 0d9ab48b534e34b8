"""``rmmss replay`` of bags recorded as robots record them (issue #22): compressed / compressedDepth
topics only, the extrinsic on /tf_static, and the configuration warnings replay must say."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rmmss_ros.bag.reader import open_bag
from rmmss_ros.bag.transcode import CompressOptions, compress_bag
from rmmss_ros.replay.cli import node_values

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "rosbags" / "sample"
STUDENT = ROOT / "rosbags" / "student.pt"


def replay(bag, overrides=None):
    from rmmss_core.deploy import create_backend
    from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
    from rmmss_ros.replay.replay import Replayer

    b = open_bag(bag)
    values = {**node_values(None, [], b.custom), **(overrides or {})}
    pipe = Pipeline(create_backend("torch", STUDENT), PipelineParams.from_values(values))
    return Replayer(pipe, values).run(b), pipe


@pytest.fixture(scope="module")
def short_sample(tmp_path_factory):
    """The first 2 s of the committed sample bag (20 frames), raw."""
    from rosbags.rosbag2 import Reader, Writer

    from rmmss_ros.bag.messages import typestore

    out = tmp_path_factory.mktemp("b") / "short"
    with Reader(SAMPLE) as r, Writer(out, version=9) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=typestore()) for c in r.connections}
        end = r.start_time + 2_000_000_000
        for c, t, raw in r.messages():
            if t < end:
                w.write(conns[c.id], t, raw)
    custom = open_bag(SAMPLE).custom
    import yaml
    meta = yaml.safe_load((out / "metadata.yaml").read_text())
    meta["rosbag2_bagfile_information"]["custom_data"] = custom
    (out / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return out


def test_a_lossless_compressed_bag_with_tf_static_replays_to_the_same_masks(short_sample, tmp_path):
    comp = compress_bag(short_sample, tmp_path / "comp",
                        CompressOptions(jpeg=(), png=("/camera/image_raw", "/events"), depth_max=65.535, tf=True))
    b = open_bag(comp)
    assert "/camera/image_raw" not in b.topics and "rmmss.T_cam_lidar" not in b.custom
    raw, _ = replay(short_sample)
    got, pipe = replay(comp)
    assert len(raw.masks) == len(got.masks) == 20
    assert all(np.array_equal(raw.masks[k], got.masks[k]) for k in raw.masks)  # png + compressedDepth + TF: exact
    st = pipe.inputs.extrinsics.status()["lidar"]
    assert st.source == "tf" and "camera_optical_frame <- lidar" in st.detail
    notes = got.stats.summary()["notes"]
    assert any("using the compressedDepth transport" in n for n in notes)


@pytest.mark.slow
def test_a_jpeg_95_bag_replays_within_half_a_point_of_its_raw_twin(tmp_path):
    comp = compress_bag(SAMPLE, tmp_path / "comp", CompressOptions(jpeg_quality=95, depth_max=65.535, tf=True))
    raw, _ = replay(SAMPLE)
    got, _ = replay(comp)
    a, b = raw.stats.summary()["miou"], got.stats.summary()["miou"]
    assert len(got.masks) == len(raw.masks) == 100
    assert abs(a - b) * 100 < 0.5, (a, b)


def test_replay_says_what_the_node_says_and_names_the_parameter_for_zero_frames(short_sample):
    # the sample student serves 'unit' intensities; a byte scale setting on a 0..1 cloud zeroes them
    res, _ = replay(short_sample, {"lidar.intensity_units": "byte"})
    assert any("set lidar.intensity_units to unit" in n for n in res.stats.summary()["notes"])
    res, _ = replay(short_sample, {"reference": "lidar", "lidar.topic": "/nope", "fallback_on_dead_reference": False})
    notes = res.stats.summary()["notes"]
    assert any("0 frames: the reference sensor lidar (/nope) is not in the bag; set --param reference=" in n
               for n in notes), notes


def _half_depth_bag(src, out, with_info: bool):
    """``src`` with its depth at half resolution (a depth camera of its own size), and (``with_info``)
    that depth camera's CameraInfo on /depth/camera_info: unregistered depth as robots send it."""
    from rosbags.rosbag2 import Reader, Writer

    from rmmss_ros.bag import messages as M

    with Reader(src) as r, Writer(out, version=9) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=M.typestore()) for c in r.connections}
        info_c = w.add_connection("/depth/camera_info", M.CAMERA_INFO, typestore=M.typestore()) if with_info else None
        cam = None
        for c, t, raw in r.messages():
            if c.topic == "/camera/camera_info" and cam is None:
                cam = M.deserialize(raw, c.msgtype)
            if c.topic == "/depth/image_raw":
                d = M.deserialize(raw, c.msgtype)
                a = np.frombuffer(bytes(d.data), np.uint16).reshape(d.height, d.width)[::2, ::2]
                raw = M.serialize(M.image_msg(a, "16UC1", M.stamp_to_ns(d.header), d.header.frame_id))
                if info_c is not None and cam is not None:
                    k = np.asarray(cam.k, float).reshape(3, 3)
                    S = np.diag([0.5, 0.5, 1.0])
                    S[0, 2] = S[1, 2] = -0.25  # pixel centres on integers: u' = (u + 0.5) / 2 - 0.5
                    info = {"width": a.shape[1], "height": a.shape[0], "K": (S @ k).tolist(), "D": [0.0] * 5}
                    w.write(info_c, t, M.serialize(M.camera_info_msg(info, M.stamp_to_ns(d.header),
                                                                    d.header.frame_id)))
            w.write(conns[c.id], t, raw)
    import yaml
    meta = yaml.safe_load((out / "metadata.yaml").read_text())
    meta["rosbag2_bagfile_information"]["custom_data"] = open_bag(src).custom
    (out / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return out


def test_replay_registers_depth_with_the_bags_depth_camera_info_and_refuses_it_without(short_sample, tmp_path):
    raw, _ = replay(short_sample)
    refused, _ = replay(_half_depth_bag(short_sample, tmp_path / "noinfo", with_info=False))
    assert refused.errors.get("conversion:depth", 0) >= 18  # every frame's depth refused, never resized
    assert all("depth" not in u for u in refused.used.values())
    reg, pipe = replay(_half_depth_bag(short_sample, tmp_path / "info", with_info=True))
    assert not reg.errors.get("conversion:depth") and all("depth" in u for u in reg.used.values())
    assert any("/depth/camera_info" in n for n in reg.stats.summary()["notes"])
    # registered half-resolution depth serves the model about as well as the original
    a, b = raw.stats.summary()["miou"], reg.stats.summary()["miou"]
    assert abs(a - b) < 0.02, (a, b)
