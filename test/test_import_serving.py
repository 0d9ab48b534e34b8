"""An imported authors' model is an ordinary rmmss checkpoint: `rmmss replay` on the sample bag and
the perception_node process over DDS serve it, and keep producing masks when a sensor dies.

The file is random weights in the authors' RobustSeg layout (test/authors_ref), imported with
``--input-size 80x64`` so a CPU test stays in seconds (the network is the released B0 with its
768-wide head: at the authors' 256 x 256 one frame takes ~0.7 s on one core).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from authors_ref.segformer_mm_ref import RefSeg, randomize

from rmmss_cli import main as rmmss_main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "rosbags" / "sample"


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("imported")
    torch.save(randomize(RefSeg(25), seed=3).state_dict(), d / "RobustSeg.pth")
    out = d / "robustseg.pt"
    assert rmmss_main(["import", "robustseg", str(d / "RobustSeg.pth"), "--out", str(out),
                       "--input-size", "80x64"]) == 0
    return out


def test_replay_on_the_sample_bag_with_the_lidar_dying(imported, tmp_path):
    pytest.importorskip("rosbags")
    out = tmp_path / "replay"
    assert rmmss_main(["replay", str(SAMPLE), "--model", str(imported), "--drop", "lidar@3-7s",
                       "--out", str(out)]) == 0
    rep = json.loads((out / "replay.json").read_text())
    assert {"RDEL", "RDE"} <= set(rep["per_pattern"])          # frames with and without the LiDAR
    assert rep["per_pattern"]["RDE"]["frames"] >= 30 and rep["per_pattern"]["RDEL"]["frames"] >= 30
    assert rep["frames"]["emitted"] == rep["frames"]["expected"] > 50 and rep["frames"]["no_sensor"] == 0
    assert rep["miou"] is not None and len(rep["iou_per_class"]) == 25


@pytest.mark.ros
def test_node_over_dds_serves_it_with_a_sensor_dying(imported, node_processes):
    pytest.importorskip("rclpy")
    import test_node_dds as dds

    proc = node_processes.start(imported, *dds.FAST)
    rig = dds.Rig()
    try:
        assert rig.wait_for(lambda: len(rig.masks) >= 2, timeout=90.0), "no mask:\n" + node_processes.stop(proc)
        m = rig.masks[-1]
        assert (m.height, m.width, m.encoding) == (dds.H, dds.W, "mono8")
        assert np.frombuffer(m.data, np.uint8).max() < 25
        rig.run(0.6, sensors=("rgb", "depth", "event"))
        n1 = len(rig.used)
        assert rig.wait_for(lambda: len(rig.used) >= n1 + 2, timeout=30.0, sensors=("rgb", "depth", "event"))
        got = rig.used[n1:]
        assert all("lidar" not in u["used"] and "lidar" in u["missing"] for u in got)
    finally:
        rig.close()
        log = node_processes.stop(proc)
    assert "Traceback" not in log, log


def test_export_serves_every_subset_like_torch(imported, tmp_path):
    """`rmmss export` of the imported model: ONNX Runtime equals PyTorch on all 15 subsets."""
    pytest.importorskip("onnxruntime")
    from rmmss_core.deploy.export import load_for_export
    from rmmss_core.deploy.verify import compare_with_torch

    out = tmp_path / "robustseg.onnx"
    assert rmmss_main(["export", "--checkpoint", str(imported), "--out", str(out)]) == 0
    model, _, _ = load_for_export(imported)
    rows = compare_with_torch(model, out)
    assert len(rows) == 15
    assert max(r["max_abs_diff"] for r in rows) < 1e-3
    assert min(r["argmax_agreement"] for r in rows) > 0.999
