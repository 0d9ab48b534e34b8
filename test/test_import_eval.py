"""`rmmss eval --authors-protocol`: the authors' own data pipeline and table for imported models.

DELIVER and MUSES are not on this machine: the pipeline is checked on the synthetic DELIVER-layout
data and on a tiny MUSES-layout folder of PNGs, written here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from authors_ref.segformer_mm_ref import RefSeg, randomize

from rmmss_cli import main as rmmss_main
from rmmss_core.eval.authors import AnySegMusesPngs, authors_summary, short_side_size
from rmmss_core.importers.anyseg import spec as anyseg_spec

ROOT = Path(__file__).resolve().parents[1]


def test_short_side_rule():
    assert short_side_size(1042, 1042) == (256, 256)        # DELIVER frames
    assert short_side_size(480, 640) == (256, 352)          # 341.3 -> 352: multiples of 32
    assert short_side_size(64, 80) == (256, 320)


def test_robustseg_protocol_on_deliver_layout(tmp_path, monkeypatch):
    """The whole `--authors-protocol robustseg` run on DELIVER-layout data (short side 64 instead of
    their 256 to stay fast): 15 subsets not told, their mean and expectations, scored at the resized size."""
    import rmmss_core.eval.authors as authors
    monkeypatch.setattr(authors, "SHORT_SIDE", 64)
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "rmmss_core.cli", "synth", "--out", str(data), "--frames", "2",
                    "--size", "80x64", "--sequences", "1", "--conditions", "sun", "--splits", "val=1.0",
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True, env={"OMP_NUM_THREADS": "1"})
    torch.save(randomize(RefSeg(25), seed=4).state_dict(), tmp_path / "RobustSeg.pth")
    ckpt = tmp_path / "robustseg.pt"
    assert rmmss_main(["import", "robustseg", str(tmp_path / "RobustSeg.pth"), "--out", str(ckpt)]) == 0
    out = tmp_path / "eval"
    assert rmmss_main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--authors-protocol", "robustseg",
                       "--max-samples", "1", "--batch-size", "1", "--out", str(out), "--device", "cpu",
                       "--no-progress"]) == 0
    res = json.loads((out / "eval.json").read_text())["checkpoints"]["robustseg"]
    table = res["authors"]
    assert len(table["subsets"]) == 15 and not res["emm"]["told"]
    assert table["mean"] == pytest.approx(100 * res["emm"]["miou_avg"])
    assert set(table["expected"]) == {"0.2", "0.1", "0.05"}
    assert res["emm"]["subsets"]["RDEL"]["pixels"] == 64 * 96        # 80x64 -> short side 64, width 80 -> 96


def _muses_pngs(root: Path, names=("x",)) -> Path:
    """A MUSES folder as AnySeg's loader reads it: frame, SDK-projected event and LiDAR PNGs, labels."""
    from PIL import Image
    rng = np.random.default_rng(0)
    rel = Path("val/fog/night")
    for n in names:
        for folder in ("frame_camera", "event_camera", "lidar"):
            p = root / folder / rel / f"{n}_{folder}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (54, 96, 3), dtype=np.uint8)).save(p)
        lab = np.full((54, 96), 255, np.uint8)
        lab[:, :40] = 13
        p = root / "gt_semantic" / rel / f"{n}_gt_labelTrainIds.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(lab).save(p)
    return rel / f"{names[0]}_frame_camera.png"


def test_anyseg_loader_reads_like_theirs(tmp_path):
    from PIL import Image
    rel = _muses_pngs(tmp_path)
    ds = AnySegMusesPngs(tmp_path, "val", anyseg_spec())
    s = ds[0]
    assert s["rgb"].shape == (3, 1024, 1024) and s["available"].tolist() == [True, False, True, True]
    with Image.open(tmp_path / "frame_camera" / rel) as im:
        theirs = np.array(im.convert("RGB").resize((1024, 1024))).transpose(2, 0, 1).astype(np.float32)
    assert np.abs(s["rgb"].numpy() - theirs).max() < 1e-3             # raw 0..255, their resize
    assert set(s["label"].unique().tolist()) == {0, 13}                # 255 scored as road, as theirs
    emm = {"subsets": {k: {"miou": 0.5} for k in ("R", "E", "L", "RE", "RL", "EL", "REL")}}
    assert authors_summary("anyseg", emm)["mean"] == pytest.approx(50.0)
    assert authors_summary("anyseg", emm)["reported"]["mean"] == 40.23


def test_anyseg_protocol_end_to_end(tmp_path, monkeypatch):
    """The whole `--authors-protocol anyseg` run (at 64 x 64 instead of their 1024 x 1024 to stay fast):
    the 7 subsets, the model told which sensors are fed (it drops the others), their numbers beside."""
    import rmmss_core.eval.authors as authors
    monkeypatch.setattr(authors.AnySegMusesPngs, "SIZE", (64, 64))
    _muses_pngs(tmp_path / "muses", names=("a", "b"))
    torch.save(randomize(RefSeg(19), seed=6).state_dict(), tmp_path / "anyseg.pth")
    ckpt = tmp_path / "anyseg.pt"
    assert rmmss_main(["import", "anyseg", str(tmp_path / "anyseg.pth"), "--out", str(ckpt)]) == 0
    out = tmp_path / "eval"
    assert rmmss_main(["eval", "--checkpoint", str(ckpt), "--data", str(tmp_path / "muses"), "--authors-protocol",
                       "anyseg", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    rep = json.loads((out / "eval.json").read_text())
    res = rep["checkpoints"]["anyseg"]
    assert res["emm"]["told"] and sorted(res["authors"]["subsets"]) == sorted(["R", "E", "L", "RE", "RL", "EL", "REL"])
    assert res["authors"]["reported"]["mean"] == 40.23
    assert res["emm"]["subsets"]["REL"]["pixels"] == 2 * 64 * 64          # 255 scored as road: nothing ignored
