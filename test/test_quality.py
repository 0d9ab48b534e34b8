"""Expected quality per sensor subset: ``rmmss eval --store-quality`` keeps the measured EMM table
with the model (checkpoint key, ONNX metadata via ``rmmss export``, or a JSON file beside an ONNX
file), and the ROS-free formatter says "RDL: 0.51 expected, -0.07 vs all" or "unknown"."""
from __future__ import annotations

import datetime as dt
import json

import onnx
import pytest
import torch
from test_eval import _write_fixture_dataset

from rmmss_core.deploy.quality import (
    CHECKPOINT_KEY,
    QualityTable,
    QualityTableError,
    load_quality,
    sidecar_path,
    store_quality,
    table_from_eval,
)
from rmmss_core.modalities import SUBSET_NAMES
from rmmss_core.models.checkpoint import load_model, save_model_checkpoint
from rmmss_core.models.registry import create_model
from rmmss_core.spec import PreprocessSpec
from rmmss_ros.outputs.quality import ExpectedQuality, subset_letters


def _table(**over) -> QualityTable:
    miou = {s: 0.3 + 0.02 * len(s) for s in SUBSET_NAMES}  # more sensors, better
    miou.update(over)
    return QualityTable(miou=miou, protocol="emm_told", data={"dataset": "deliver", "split": "val", "samples": 10},
                        measured="2026-12-07T15:00:00+00:00", source="m.pt")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny checkpoint after ``rmmss eval --store-quality --protocols emm_told,rmm`` on a fixture set."""
    from rmmss_core.cli import main

    root = tmp_path_factory.mktemp("quality")
    _write_fixture_dataset(root / "deliver")
    torch.manual_seed(0)
    model = create_model("anymodal", size="tiny", num_classes=25)
    save_model_checkpoint(root / "m.pt", model, PreprocessSpec(input_size=(32, 32)))
    before = torch.load(root / "m.pt", weights_only=True)
    rc = main(["eval", "--checkpoint", str(root / "m.pt"), "--data", str(root / "deliver"), "--split", "val",
               "--out", str(root / "report"), "--batch-size", "2", "--device", "cpu", "--protocols", "emm_told",
               "--store-quality", "--no-progress"])
    assert rc == 0
    return root, before


def test_eval_stores_the_measured_table_in_the_checkpoint(evaluated):
    root, before = evaluated
    ckpt = torch.load(root / "m.pt", weights_only=True)
    report = json.loads((root / "report" / "eval.json").read_text())["checkpoints"]["m"]["emm_told"]["subsets"]
    table = load_quality(root / "m.pt")
    assert table is not None and ckpt[CHECKPOINT_KEY] == table.to_dict()
    assert table.miou == {s: pytest.approx(report[s]["miou"]) for s in SUBSET_NAMES}
    assert table.protocol == "emm_told" and not table.note
    assert table.data["dataset"] == "deliver" and table.data["split"] == "val" and table.data["samples"] == 3
    assert str(root / "deliver") == table.data["data"] and table.source == "m.pt"
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(table.measured)
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=30)
    # everything else is untouched and the model still loads
    assert set(ckpt) == set(before) | {CHECKPOINT_KEY}
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in before["state_dict"].items())
    load_model(root / "m.pt")
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_export_carries_the_table_and_a_file_beside_the_onnx_overrides_it(evaluated, tmp_path):
    from rmmss_core.cli import main

    root, _ = evaluated
    assert main(["export", "--checkpoint", str(root / "m.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["rmmss.quality"]) == load_quality(root / "m.pt").to_dict()
    assert load_quality(tmp_path / "m.onnx") == load_quality(root / "m.pt")
    newer = _table()
    assert store_quality(tmp_path / "m.onnx", newer) == sidecar_path(tmp_path / "m.onnx") == tmp_path / "m.quality.json"
    assert load_quality(tmp_path / "m.onnx") == newer
    sidecar_path(tmp_path / "m.onnx").write_text("{not json")
    with pytest.raises(QualityTableError, match="m.quality.json"):
        load_quality(tmp_path / "m.onnx")


def test_models_without_a_table_and_bad_requests(tmp_path):
    from rmmss_core.cli import main

    torch.manual_seed(0)
    save_model_checkpoint(tmp_path / "plain.pt", create_model("anymodal", size="tiny"), PreprocessSpec(input_size=(32, 32)))
    assert load_quality(tmp_path / "plain.pt") is None
    mtime = (tmp_path / "plain.pt").stat().st_mtime_ns
    _write_fixture_dataset(tmp_path / "deliver", n=1)
    rc = main(["eval", "--checkpoint", str(tmp_path / "plain.pt"), "--data", str(tmp_path / "deliver"),
               "--out", str(tmp_path / "r"), "--device", "cpu", "--protocols", "nm", "--store-quality", "--no-progress"])
    assert rc == 1 and not (tmp_path / "r").exists()
    assert (tmp_path / "plain.pt").stat().st_mtime_ns == mtime, "a refused request must not touch the checkpoint"
    with pytest.raises(ValueError, match="checkpoint"):
        store_quality(tmp_path / "model.txt", _table())
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        store_quality(tmp_path / "absent.onnx", _table())


def test_table_validation_and_protocol_choice():
    with pytest.raises(QualityTableError, match="missing"):
        QualityTable(miou={"RDEL": 0.5})
    with pytest.raises(QualityTableError, match=r"\[0, 1\]"):
        _table(RDEL=51.0)  # a percentage where a fraction belongs
    with pytest.raises(QualityTableError, match="format"):
        QualityTable.from_dict({"miou": {}}, "x.json")
    assert QualityTable.from_dict(_table().to_dict()) == _table()
    subsets = {s: {"miou": 0.4} for s in SUBSET_NAMES}
    told = table_from_eval({"samples": 5, "emm": {"subsets": subsets, "told": False},
                            "emm_told": {"subsets": {s: {"miou": 0.5} for s in SUBSET_NAMES}, "told": True}},
                           {"dataset": "deliver", "seed": 0})
    assert told.protocol == "emm_told" and told.get("R") == 0.5 and "seed" not in told.data
    authors = table_from_eval({"emm": {"subsets": subsets, "told": False}}, {})
    assert authors.protocol == "emm" and "emm_told" in authors.note
    assert table_from_eval({"emm": {"subsets": subsets, "told": True}}, {}).protocol == "emm_told"  # --tell-missing
    with pytest.raises(ValueError, match="emm_told"):
        table_from_eval({"nm": {}}, {})


def test_expected_quality_text():
    t = _table(RDEL=0.58, RDL=0.51, R=0.30)
    q = ExpectedQuality(t, floor=0.35)
    e = q.of(("rgb", "depth", "lidar"))
    assert e.text == "RDL: 0.51 expected, -0.07 vs all"
    assert (e.subset, e.miou, e.drop, e.below_floor) == ("RDL", 0.51, pytest.approx(-0.07), False)
    low = q.of(["rgb"])
    assert low.below_floor and low.text == "R: 0.30 expected, -0.28 vs all, below the floor 0.35"
    assert q.of(["lidar", "rgb", "event", "depth"]).text == "RDEL: 0.58 expected, +0.00 vs all"
    # "all" is the node's enabled sensors
    assert ExpectedQuality(t, ("rgb", "depth")).of(["rgb"]).drop == pytest.approx(0.30 - t.get("RD"))
    unknown = ExpectedQuality(None, floor=0.35).of(["rgb", "lidar"])
    assert unknown.text == "RL: unknown" and unknown.miou is None and not unknown.below_floor
    assert "rmmss eval --store-quality" in ExpectedQuality(None).describe_table()
    assert "deliver/val" in q.describe_table() and "10 samples" in q.describe_table()
    assert json.loads(json.dumps(e.as_dict()))["expected_miou"] == 0.51
    assert subset_letters(["lidar", "rgb"]) == "RL"
    with pytest.raises(ValueError, match="radar"):
        q.of(["radar"])
    with pytest.raises(ValueError, match="quality_floor"):
        ExpectedQuality(t, floor=51)


def test_rmmss_info_shows_the_classes_and_the_table(evaluated, capsys):
    from rmmss_core.cli import main

    root, _ = evaluated
    assert main(["info", "--checkpoint", str(root / "m.pt"), "--size", "32x32"]) == 0
    out = capsys.readouterr().out
    assert "classes    0 Building, 1 Fence" in out and "255 unlabeled" in out
    assert "quality    mIoU per sensor subset (emm_told, deliver/val" in out and " RDEL " in out


def test_eval_stores_the_table_beside_the_exported_onnx_too(tmp_path):
    from rmmss_core.cli import main
    from rmmss_core.deploy import export_checkpoint

    _write_fixture_dataset(tmp_path / "deliver", n=2)
    torch.manual_seed(0)
    spec = PreprocessSpec(input_size=(32, 32))
    save_model_checkpoint(tmp_path / "m.pt", create_model("anymodal", size="tiny", num_classes=25), spec)
    export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx")
    base = ["eval", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(tmp_path / "deliver"), "--device", "cpu",
            "--protocols", "emm_told", "--no-progress"]
    # refused before any work: a file that is not there, an ONNX file of another model, two checkpoints
    other = tmp_path / "other.pt"
    save_model_checkpoint(other, create_model("anymodal", size="tiny", num_classes=3),
                          PreprocessSpec(input_size=(32, 32), class_names=("a", "b", "c"),
                                         palette=((0, 0, 0), (1, 1, 1), (2, 2, 2))))
    export_checkpoint(other, tmp_path / "other.onnx")
    for extra in (["--store-quality", str(tmp_path / "absent.onnx")],
                  ["--store-quality", str(tmp_path / "other.onnx")],
                  ["--checkpoint", str(tmp_path / "m.pt"), str(other), "--store-quality", str(tmp_path / "m.onnx")]):
        assert main([*base, "--out", str(tmp_path / "bad"), *extra]) == 1
        assert not (tmp_path / "bad").exists() and not sidecar_path(tmp_path / "m.onnx").exists()
    assert main([*base, "--out", str(tmp_path / "r"), "--store-quality", str(tmp_path / "m.onnx")]) == 0
    assert load_quality(tmp_path / "m.onnx") == load_quality(tmp_path / "m.pt") is not None
    assert sidecar_path(tmp_path / "m.onnx").is_file()
