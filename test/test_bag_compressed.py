"""Bags as robots record them: compressed camera / compressedDepth topics, the extrinsic on
/tf_static, ``bag info`` on compressed topics, and the "no metadata.yaml" label."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_bag import fake_dataset

from rmmss_ros.bag import messages as M
from rmmss_ros.bag.cli import compressed_summary
from rmmss_ros.bag.reader import open_bag
from rmmss_ros.bag.sequence import open_sequence
from rmmss_ros.bag.writer import BagWriteOptions, write_bag
from rmmss_ros.conversions import to_depth_m, to_rgb8
from rmmss_ros.conversions.compressed import decode_compressed
from rmmss_ros.tf.buffer import TransformBuffer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return fake_dataset(tmp_path_factory.mktemp("ds"), frames=6)


@pytest.fixture(scope="module")
def bags(dataset, tmp_path_factory):
    d = tmp_path_factory.mktemp("bags")
    seq = open_sequence(dataset)
    raw = write_bag(seq, d / "raw", BagWriteOptions(depth_encoding="16UC1", events="frame")).path
    comp = write_bag(seq, d / "comp", BagWriteOptions(depth_encoding="16UC1", events="frame",
                                                       transport="compressed", tf=True, depth_max=65.535)).path
    return raw, comp, seq


def first(bag, topic):
    m = next(bag.messages([topic]))
    return M.deserialize(m.raw, m.msgtype)


def test_compressed_bag_has_image_transport_topics_and_decodes_like_its_raw_twin(bags):
    raw_path, comp_path, seq = bags
    raw, comp = open_bag(raw_path), open_bag(comp_path)
    assert comp.topics["/camera/image_raw/compressed"] == M.COMPRESSED_IMAGE
    assert comp.topics["/depth/image_raw/compressedDepth"] == M.COMPRESSED_IMAGE
    assert comp.topics["/events/compressed"] == M.COMPRESSED_IMAGE
    assert "/camera/image_raw" not in comp.topics and "/depth/image_raw" not in comp.topics
    assert comp.topics["/tf_static"] == M.TF_MESSAGE and comp.counts["/tf_static"] == 1
    assert "rmmss.T_cam_lidar" not in comp.custom  # the extrinsic is on /tf_static
    cam = first(comp, "/camera/image_raw/compressed")
    assert cam.format == "rgb8; jpeg compressed bgr8"
    rgb_c = to_rgb8(decode_compressed(cam, "camera"))
    rgb_r = to_rgb8(first(raw, "/camera/image_raw"))
    assert rgb_c.shape == rgb_r.shape
    # the fixture's images are pure noise: jpeg's 4:2:0 chroma cannot keep it, its luma can
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(rgb_c @ luma - rgb_r @ luma).mean() < 4.0
    dep = first(comp, "/depth/image_raw/compressedDepth")
    assert dep.format == "16UC1; compressedDepth png"
    np.testing.assert_array_equal(to_depth_m(decode_compressed(dep, "depth")), to_depth_m(first(raw, "/depth/image_raw")))
    # the plugin's default depth_max (10 m) drops farther depth, as on a robot
    d10 = write_bag(seq, comp_path.parent / "d10", BagWriteOptions(depth_encoding="16UC1", transport="compressed",
                                                                   max_frames=1)).path
    far = to_depth_m(decode_compressed(first(open_bag(d10), "/depth/image_raw/compressedDepth"), "depth"))
    assert np.nanmax(far) <= 10.0 and np.isnan(far).sum() > np.isnan(to_depth_m(first(raw, "/depth/image_raw"))).sum()
    ev = decode_compressed(first(comp, "/events/compressed"), "event")  # png: the codes exactly
    np.testing.assert_array_equal(to_rgb8(ev), to_rgb8(first(raw, "/events")))


def test_tf_static_in_the_bag_gives_the_sequence_extrinsic(bags):
    _, comp_path, seq = bags
    buf = TransformBuffer()
    buf.add_message(first(open_bag(comp_path), "/tf_static"), static=True)
    np.testing.assert_allclose(buf.lookup("camera_optical_frame", "lidar"), np.asarray(seq.T_cam_lidar), atol=1e-12)


def test_bag_info_reports_compressed_formats(bags):
    lines = compressed_summary(open_bag(bags[1]))
    assert any("/camera/image_raw/compressed | format 'rgb8; jpeg compressed bgr8' | decodes to 32 x 24 rgb8" in x
               for x in lines)
    assert any("/depth/image_raw/compressedDepth | format '16UC1; compressedDepth png' | decodes to 32 x 24 16UC1"
               in x for x in lines)


def test_a_bag_without_metadata_says_so_not_corrupt(bags, tmp_path):
    import shutil
    b = tmp_path / "nometa"
    shutil.copytree(bags[0], b)
    (b / "metadata.yaml").unlink()
    text = open_bag(b).describe()
    assert "(salvaged: no metadata.yaml)" in text and "truncated or corrupt" not in text


def test_schedule_corrupts_compressed_images_as_their_decoded_images():
    from types import SimpleNamespace

    from rmmss_ros.conversions.compressed import encode_compressed
    from rmmss_ros.replay.schedule import Schedule

    rgb = np.full((16, 24, 3), 200, np.uint8)
    fmt, data = encode_compressed(rgb, "rgb8", "png")
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0), frame_id="c"),
                          format=fmt, data=np.frombuffer(data, np.uint8))
    out = Schedule.parse("rgb@0-10s:blank").apply("rgb", 1.0, msg)
    img = decode_compressed(out, "rgb")
    assert out.format == fmt and not img.data.any()  # a blank image, still a decodable packet


@pytest.mark.parametrize("flags,expected", [
    (["--jpeg", "/camera/image_rect"], "/camera/image_rect not in the bag"),
    (["--depth", "/camera/image_raw"], "/camera/image_raw: compressedDepth needs 16UC1 or 32FC1 depth, got 'rgb8'"),
    (["--tf"], "--tf needs the LiDAR extrinsic"),
])
def test_bag_compress_mistakes_are_one_line_naming_the_input(bags, tmp_path, capsys, flags, expected):
    """A topic asked for that the bag lacks was skipped without a word (exit 0, the camera left
    raw), a non-depth topic given to --depth failed without naming it, and --tf on a bag without
    the extrinsic wrote no /tf_static silently: each is one line naming the input, nothing written."""
    from rmmss_cli import main as rmmss

    src = tmp_path / "src"
    shutil.copytree(bags[0], src)
    if flags == ["--tf"]:
        meta = src / "metadata.yaml"
        meta.write_text(meta.read_text().replace("rmmss.T_cam_lidar", "rmmss.other"))
    out = tmp_path / "out"
    assert rmmss(["bag", "compress", str(src), str(out), *flags]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("action,flag,value", [("compress", "--depth-max", "0"), ("compress", "--depth-max", "-5"),
                                               ("compress", "--jpeg-quality", "0"), ("write", "--jpeg-quality", "500"),
                                               ("write", "--depth-max", "0")])
def test_codec_settings_outside_their_range_are_argument_errors(bags, tmp_path, capsys, action, flag, value):
    """--depth-max 0 wrote a bag whose depth was all invalid (exit 0), -5 ended in an OverflowError
    traceback, and jpeg qualities outside image_transport's 1..100 were taken silently."""
    from rmmss_cli import main as rmmss

    src = str(bags[0]) if action == "compress" else str(bags[2].root)
    with pytest.raises(SystemExit) as e:
        rmmss(["bag", action, src, str(tmp_path / "out"), f"{flag}={value}"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert e.value.code == 2 and len(err) == 1 and flag in err[0], err
    assert not (tmp_path / "out").exists()
