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
