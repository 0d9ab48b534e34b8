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


# ----------------------------------------------------------------- replay through the node's pipeline
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_bag(tmp_path_factory):
    """A real `rmmss synth` sequence (8 frames, 80 x 64), its bag, and a tiny model at that size."""
    import torch

    from rmmss_core.models.checkpoint import save_model_checkpoint
    from rmmss_core.models.registry import create_model
    from rmmss_core.spec import PreprocessSpec
    from rmmss_ros.bag.sequence import open_sequence
    from rmmss_ros.bag.writer import BagWriteOptions, write_bag

    tmp = tmp_path_factory.mktemp("synth")
    data = tmp / "data"
    subprocess.run([sys.executable, "-m", "rmmss_cli", "synth", "--out", str(data), "--frames", "8",
                    "--size", "80x64", "--sequences", "1", "--conditions", "sun", "--splits", "val=1.0",
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True, env={"OMP_NUM_THREADS": "1"})
    bag = tmp / "seq"
    write_bag(open_sequence(data), bag, BagWriteOptions(seed=1, lidar_crop=True))
    torch.manual_seed(0)
    spec = PreprocessSpec(input_size=(64, 80))
    ckpt = tmp / "tiny.pt"
    save_model_checkpoint(ckpt, create_model("anymodal", size="tiny", num_classes=spec.num_classes), spec)
    return data, bag, ckpt


def _replayer(ckpt, values=None):
    from rmmss_core.deploy import create_backend
    from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
    from rmmss_ros.replay.replay import Replayer

    return Replayer(Pipeline(create_backend("torch", ckpt), PipelineParams.from_values(values)), values)


def test_replay_equals_eval_on_the_same_frames(synth_bag, tmp_path):
    """The pipeline adds no skew: replay mIoU == `rmmss eval` (EMM, all sensors) on the same frames."""
    from rmmss_cli import main
    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.replay.cli import node_values

    data, bag, ckpt = synth_bag
    b = open_bag(bag)
    values = node_values(None, [], b.custom)
    assert values["event.format"] == "cloud" and values["lidar.extrinsic"] != node_values(None, [], {})["lidar.extrinsic"]
    result = _replayer(ckpt, values).run(b)
    s = result.stats.summary()
    assert s["frames"] == {"expected": 8, "emitted": 8, "unlabeled": 0, "no_sensor": 0, "ratio": 1.0}
    assert list(s["per_pattern"]) == ["RDEL"]
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--dataset", "synthetic",
                 "--split", "val", "--protocols", "emm", "--out", str(tmp_path / "eval"), "--device", "cpu",
                 "--no-progress"]) == 0
    ev = json.loads((tmp_path / "eval" / "eval.json").read_text())["checkpoints"]["tiny"]["emm"]["subsets"]["RDEL"]
    assert ev["pixels"] == result.stats.total.matrix.sum()
    assert s["miou"] == pytest.approx(ev["miou"], abs=1e-12)
    assert s["pixel_acc"] == pytest.approx(ev["pixel_acc"], abs=1e-12)
    # zstd-compressed chunks and the full 360-degree LiDAR give the very same masks
    from rmmss_ros.bag.sequence import open_sequence
    from rmmss_ros.bag.writer import BagWriteOptions, write_bag
    other = tmp_path / "zstd"
    write_bag(open_sequence(data), other, BagWriteOptions(seed=1, compress=True))
    assert b"zstd" in (other / "zstd.mcap").read_bytes()[:4096] or b"zstd" in (other / "zstd.mcap").read_bytes()
    r2 = _replayer(ckpt, values).run(open_bag(other))
    assert all((r2.masks[k] == result.masks[k]).all() for k in result.masks) and len(r2.masks) == 8


def test_replay_with_schedule_reports_patterns_and_is_deterministic(synth_bag, tmp_path):
    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.replay.cli import node_values

    _, bag, ckpt = synth_bag
    b = open_bag(bag)
    values = node_values(None, [], b.custom)
    sched = "lidar@0.15-0.45s,depth@0.45-s:noise=0.2"
    r1 = _replayer(ckpt, values).run(b, Schedule.parse(sched))
    r2 = _replayer(ckpt, values).run(open_bag(bag), Schedule.parse(sched))
    s = r1.stats.summary()
    # 3 frames inside the window; the sync may mark a just-recovered (dead) sensor missing once more
    assert 3 <= s["per_pattern"]["RDE"]["frames"] <= 4
    assert s["per_pattern"]["RDE"]["frames"] + s["per_pattern"]["RDEL"]["frames"] == s["frames"]["emitted"] == 8
    assert all((r1.masks[k] == r2.masks[k]).all() for k in r1.masks) and r1.used == r2.used
    paths = r1.stats.write(tmp_path / "rep", "replay", {"bag": str(bag)})
    md = paths["md"].read_text()
    assert "| RDE | " in md and "![overlays](replay_overlays.png)" in md
    for key in ("timeline", "patterns", "overlays"):
        assert paths[key].read_bytes()[:4] == b"\x89PNG"


def test_replay_cli_bad_inputs_and_mask_bag(synth_bag, tmp_path):
    from rmmss_cli import main
    from rmmss_ros.bag.reader import open_bag

    _, bag, ckpt = synth_bag
    out_bag = tmp_path / "masks"
    assert main(["replay", str(bag), "--model", str(ckpt), "--out", str(tmp_path / "r"),
                 "--out-bag", str(out_bag), "--drop", "rgb@0.25-0.75s"]) == 0
    rep = json.loads((tmp_path / "r" / "replay.json").read_text())
    # the camera (reference) dies: after its timeout the node ticks at the fallback rate without it
    assert rep["per_pattern"]["DEL"]["frames"] >= 2 and rep["per_pattern"]["DEL"]["miou"] is not None
    assert rep["frames"]["emitted"] < 8 and rep["frames"]["unlabeled"] == 0
    masks = open_bag(out_bag)
    assert masks.counts == {"/rmmss/mask": rep["frames"]["emitted"], "/rmmss/mask_color": rep["frames"]["emitted"]}
    # a truncated bag: what was readable is still evaluated, and the report says what was lost
    cut = tmp_path / "cut.mcap"
    data = (bag / "seq.mcap").read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert main(["replay", str(cut), "--model", str(ckpt), "--out", str(tmp_path / "c")]) == 0
    rep = json.loads((tmp_path / "c" / "replay.json").read_text())
    assert 0 < rep["frames"]["emitted"] < 8 and any("truncated" in n for n in rep["notes"])
    # missing topics / wrong types / bad schedule: one clear line, exit 1
    assert main(["replay", str(bag), "--model", str(ckpt), "--param", "rgb.topic=/nope", "--param",
                 "depth.topic=/nope", "--param", "event.topic=/nope", "--param", "lidar.topic=/nope",
                 "--param", "reference=rate", "--out", str(tmp_path / "x")]) == 1
    assert main(["replay", str(bag), "--model", str(ckpt), "--param", "lidar.topic=/camera/image_raw",
                 "--out", str(tmp_path / "x")]) == 1
    assert main(["replay", str(bag), "--model", str(ckpt), "--drop", "radar@1-2s", "--out", str(tmp_path / "x")]) == 1
    assert main(["replay", str(bag), "--model", str(ckpt), "--param", "nope=1", "--out", str(tmp_path / "x")]) == 1


def test_a_drop_rule_after_the_bag_ends_is_said(synth_bag):
    """`--drop lidar@100-200s` on a 0.8 s bag applied nothing and said nothing: the run looked like
    a clean failure test."""
    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.replay.cli import node_values

    assert Schedule.parse("lidar@100-200s,event@flap=0.3/1s").unreached(10.0) == [
        "--drop rule lidar@100-200s starts after the bag ends (10.0 s): it never applies "
        "(times are seconds since the bag's first message)"]
    assert Schedule.parse("lidar@5-200s,event@9.9s-").unreached(10.0) == []
    _, bag, ckpt = synth_bag
    b = open_bag(bag)
    result = _replayer(ckpt, node_values(None, [], b.custom)).run(b, Schedule.parse("lidar@100-200s,depth@0.2-0.4s"))
    notes = result.stats.summary()["notes"]
    assert any("lidar@100-200s starts after the bag ends" in n for n in notes), notes
    assert not any("depth@" in n for n in notes), notes


def test_replay_says_why_a_sensor_could_not_be_used(tmp_path):
    """extrinsics.source tf on a bag without /tf_static: the LiDAR was missing throughout and replay
    said '100 undecodable message(s) on conversion:lidar were skipped'; it now gives the reason,
    naming the frames and extrinsics.source."""
    from pathlib import Path

    from rmmss_core.deploy import create_backend
    from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
    from rmmss_ros.replay.replay import Replayer

    root = Path(__file__).resolve().parents[1] / "rosbags"
    values = {"extrinsics.source": "tf", "event.enabled": False, "depth.enabled": False}
    from rmmss_ros.node import params as P
    with create_backend("torch", root / "student.pt") as b:
        res = Replayer(Pipeline(b, PipelineParams.from_values({**P.defaults(), **values})), values).run(root / "sample")
    note = next(n for n in res.stats.notes if "conversion:lidar" in n)
    assert "undecodable" not in note and "no transform from" in note and "extrinsics.source" in note, note
