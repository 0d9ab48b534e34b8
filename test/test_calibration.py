"""Replay report: reliability diagram and expected calibration error per sensor subset."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_replay import synth_bag  # noqa: F401,F811 - the fixture (a real synth bag and a tiny model)

from rmmss_ros.replay.calibration import Calibration
from rmmss_ros.replay.report import ReplayStats


def _frame(rng, p_correct: float, level: int, size=(40, 50), classes=5):
    """A label, a mask right on a ``p_correct`` fraction of pixels, and a constant confidence."""
    label = rng.integers(0, classes, size).astype(np.uint8)
    mask = label.copy()
    wrong = rng.random(size) >= p_correct
    mask[wrong] = (label[wrong] + 1) % classes
    return mask, np.full(size, level, np.uint8), label


def test_ece_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    good, over = Calibration(), Calibration()
    for _ in range(20):
        for p in (0.3, 0.6, 0.9):
            level = int(np.floor(p * 255 + 0.5))
            good.update(*_frame(rng, p, level))
            over.update(*_frame(rng, p - 0.2, level))  # says p, right only p - 0.2 of the time
    g, o = good.summary(), over.summary()
    assert g["ece"] < 0.01
    assert o["ece"] == pytest.approx(0.2, abs=0.01)
    assert g["pixels"] == 20 * 3 * 40 * 50 and sum(b["pixels"] for b in g["bins"]) == g["pixels"]
    hit = [b for b in o["bins"] if b["pixels"]]
    assert len(hit) == 3 and all(b["accuracy"] < b["confidence"] for b in hit)


def test_ignored_and_refused_pixels_are_left_out_and_counted():
    c = Calibration(bins=10)
    label = np.array([[0, 1, 255, 2]], np.uint8)
    mask = np.array([[0, 0, 1, 255]], np.uint8)
    conf = np.array([[255, 128, 200, 10]], np.uint8)
    c.update(mask, conf, label)
    s = c.summary()
    assert s["pixels"] == 2 and s["refused"] == 1
    assert s["bins"][9]["pixels"] == 1 and s["bins"][9]["accuracy"] == 1.0   # 255 -> the last bin
    assert s["bins"][5]["pixels"] == 1 and s["bins"][5]["accuracy"] == 0.0   # 128/255 = 0.502
    assert s["ece"] == pytest.approx(0.5 * (0 + 128 / 255))
    with pytest.raises(ValueError, match="differ in size"):
        c.update(mask, conf[:, :2], label)
    assert Calibration().summary()["ece"] is None


def test_replay_report_has_ece_per_pattern_and_the_diagram(tmp_path):
    rng = np.random.default_rng(1)
    stats = ReplayStats(num_classes=5, palette=[(i * 40, 0, 0) for i in range(5)])
    for i in range(12):
        present = (True, True, False, True) if i % 2 else (True, False, False, False)
        p = 0.9 if i % 2 else 0.5  # the camera alone is over-confident below
        mask, conf, label = _frame(rng, p if i % 2 else 0.3, int(p * 255))
        stats.add(i * 0.1, present, mask, label, 0.02, confidence=conf)
    stats.add(2.0, (True, True, True, True), mask, label, 0.02)  # no confidence: scored, not calibrated
    paths = stats.write(tmp_path, "r")
    result = json.loads(paths["json"].read_text())
    cal = result["calibration"]
    assert set(cal) == {"all", "RDL", "R"}
    assert cal["R"]["ece"] == pytest.approx(0.2, abs=0.03) and cal["RDL"]["ece"] < 0.03
    assert paths["reliability"].read_bytes()[:4] == b"\x89PNG"
    md = paths["md"].read_text()
    assert "## Confidence calibration" in md and "| R |" in md and "r_reliability.png" in md
    assert ReplayStats(num_classes=5, palette=[(0, 0, 0)] * 5).summary()["calibration"] == {}


def test_rmmss_replay_reports_calibration_per_sensor_subset(synth_bag, tmp_path):  # noqa: F811
    """End to end: `rmmss replay` computes the node's confidence and reports ECE per pattern."""
    from rmmss_cli import main

    _, bag, ckpt = synth_bag
    assert main(["replay", str(bag), "--model", str(ckpt), "--out", str(tmp_path / "r"),
                 "--drop", "lidar@0.15-0.45s"]) == 0
    rep = json.loads((tmp_path / "r" / "replay.json").read_text())
    cal = rep["calibration"]
    assert {"all", "RDEL", "RDE"} <= set(cal)
    assert sum(cal[p]["pixels"] for p in cal if p != "all") == cal["all"]["pixels"] > 0
    assert all(0.0 <= cal[p]["ece"] <= 1.0 for p in cal)
    assert (tmp_path / "r" / "replay_reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Confidence calibration" in (tmp_path / "r" / "replay.md").read_text()
    off = main(["replay", str(bag), "--model", str(ckpt), "--out", str(tmp_path / "off"),
                "--param", "output.confidence=false"])
    assert off == 0 and json.loads((tmp_path / "off" / "replay.json").read_text())["calibration"] == {}


def test_replay_says_a_lidar_waiting_for_camera_info_is_unusable_not_undecodable(synth_bag, tmp_path):  # noqa: F811
    from rmmss_cli import main

    _, bag, ckpt = synth_bag
    assert main(["replay", str(bag), "--model", str(ckpt), "--out", str(tmp_path / "r"),
                 "--param", "camera_info.topic=/no_camera_info"]) == 0
    notes = json.loads((tmp_path / "r" / "replay.json").read_text())["notes"]
    assert any(n.startswith("lidar: waiting for camera_info: not used in") for n in notes), notes
    assert not any("undecodable" in n and "lidar" in n for n in notes), notes


@pytest.mark.parametrize("max_overlays", [0, 1, 2, 3])
def test_overlays_never_exceed_the_limit_and_show_each_pattern_once_first(max_overlays):
    """`rmmss replay --overlays 0` raised StopIteration on the first frame; with a full list of
    distinct patterns a new one had nothing to replace either."""
    stats = ReplayStats(num_classes=5, palette=[(i * 40, 0, 0) for i in range(5)], max_overlays=max_overlays)
    rgb = np.zeros((4, 6, 3), np.uint8)
    mask = np.zeros((4, 6), np.uint8)
    patterns = [(True, True, True, True)] * 3 + [(True, False, True, True), (True, True, False, False)] * 2
    for k, present in enumerate(patterns):
        stats.add(0.1 * k, present, mask, mask, rgb=rgb)
        assert len(stats.overlays) <= max_overlays
    shown = [o["pattern"] for o in stats.overlays]
    assert len(set(shown)) == min(max_overlays, 3)  # every pattern once before any repeat
