"""Learning curves of the benchmark: snapshots every N steps, their evaluation, the aggregate
over seeds, the sweep over model / input size, and the report's plot and tables (seconds-sized)."""
from __future__ import annotations

import json
import math

import pytest

from rmmss_core.train.learning_curves import CurveSettings, aggregate_curves, reached


def _rows(values, k=3):
    return [{"step": s, "full": v, "full_present": v * 1.5, "missing14": v / 2, "missing14_present": v * 0.75,
             "iou": [v, None, 2 * v][:k], "present": [0, 2]} for s, v in values]


def test_aggregate_curves_mean_std_over_seeds_and_common_steps():
    per_seed = [{"curves": {"main": {"teacher": _rows([(2, 0.1), (4, 0.2), (6, 0.3)])}}},
                {"curves": {"main": {"teacher": _rows([(2, 0.3), (4, 0.4)])}}}]
    agg = aggregate_curves(per_seed)
    pts = agg["main"]["teacher"]
    assert [p["step"] for p in pts] == [2, 4]                  # step 6 only one seed has
    assert pts[0]["full"]["mean"] == pytest.approx(0.2) and pts[0]["full"]["std"] == pytest.approx(math.sqrt(0.02))
    assert pts[1]["iou"][2]["mean"] == pytest.approx(0.6) and math.isnan(pts[1]["iou"][1]["mean"])
    assert reached(pts, 0.5) == pytest.approx(0.2 / 0.3)


def test_curve_settings_are_checked():
    with pytest.raises(ValueError, match="every"):
        CurveSettings(every=-1)
    with pytest.raises(ValueError, match="protocol"):
        CurveSettings(every=2, protocol="rmm")
    with pytest.raises(ValueError, match="variants needs"):
        CurveSettings(variants={"b0": {}})


def test_benchmark_records_curves_for_teacher_and_dropout_and_sweeps_model_size(tmp_path):
    """A seconds-sized benchmark: teacher + dropout, snapshots every 2 of 4 steps, one variant with
    MiT-B0 at another input size; the report has the curves, their plots and tables."""
    from rmmss_core.train.benchmark import load_preset, main
    cfg = load_preset("smoke", overrides=[
        f"out={tmp_path / 'bench'}", "synth.frames=20", "synth.sequences=5", "synth.size=[40,32]",
        "train.iters=4", "train.data.input_size=[32,40]", "train.data.val_frames=2", "eval.max_samples=2",
        "eval.protocols=[emm,emm_told]", "eval.latency_iters=1", "seeds=[0]", "jobs=1", "runs=[teacher,dropout]",
        "curve.max_samples=2", 'curve.variants={b0-40x48: {model: {options: {size: b0}}, data: {input_size: [40, 48]}}}'])
    md = main(cfg, "test").read_text()
    snaps = sorted(p.name for p in (tmp_path / "bench" / "seed0" / "runs" / "teacher" / "curve").glob("*.pt"))
    assert snaps == ["step0000002.pt", "step0000004.pt"]
    assert (tmp_path / "bench" / "seed0" / "curves" / "b0-40x48" / "dropout" / "curve" / "step0000004.pt").is_file()
    spec = json.loads((tmp_path / "bench" / "seed0" / "curves" / "b0-40x48" / "teacher" / "spec.json").read_text())
    assert spec["input_size"] == [40, 48]
    seed = json.loads((tmp_path / "bench" / "seed0" / "results.json").read_text())
    assert set(seed["curves"]) == {"main", "b0-40x48"}
    rows = seed["curves"]["main"]["dropout"]
    assert [r["step"] for r in rows] == [2, 4] and len(rows[0]["iou"]) == 25
    assert all(0.0 <= r["full"] <= r["full_present"] <= 1.0 for r in rows)
    assert "### Learning curves" in md and "#### variant `b0-40x48`" in md
    assert "| step | Teacher (all sensors): all (DELIVER) |" in md and "#### Per-class IoU vs steps, Dropout baseline" in md
    report = tmp_path / "bench" / "report"
    for png in ("robustness_curves.png", "robustness_curves_classes.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((report / "robustness.json").read_text())
    assert [p["step"] for p in saved["curves"]["main"]["teacher"]] == [2, 4]
