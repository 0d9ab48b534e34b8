"""Evaluator, protocols, corruptions, report and plots on a fake model and an in-memory dataset."""
from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from rmmss_core.eval import Evaluator, build_conditions, evaluate
from rmmss_core.eval.plots import colorize, plot_overlays, plot_subset_bars
from rmmss_core.eval.report import build_report, markdown_report, write_report
from rmmss_core.modalities import MODALITIES, SUBSET_NAMES, parse_subset
from rmmss_core.spec import PreprocessSpec

K = 3
SPEC = PreprocessSpec(class_names=("a", "b", "c"), palette=((200, 0, 0), (0, 200, 0), (0, 0, 200)),
                      input_size=(32, 32))


def _samples(n=6, h=8, w=8, available=None):
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        label = torch.randint(0, K, (h, w), generator=g)
        label[0, 0] = 255
        onehot = torch.nn.functional.one_hot(label.clamp(max=K - 1), K).permute(2, 0, 1).float()
        s = {m: torch.rand(3, h, w, generator=g) + 0.5 for m in MODALITIES}
        s["rgb"] = onehot
        s["label"] = label
        s["available"] = torch.ones(4, dtype=torch.bool) if available is None else available(i)
        s["name"] = f"frame{i}"
        out.append(s)
    return out


class RgbOracle(torch.nn.Module):
    """Perfect when RGB is available (reads the one-hot label from it), else predicts class 0.
    Records (available, inputs) of every call and checks that missing inputs are zeros."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, inputs, available):
        for i, m in enumerate(MODALITIES):
            assert inputs[m][~available[:, i]].abs().sum() == 0, f"{m} missing but not zero"
        self.calls.append((available.clone(), {m: v.clone() for m, v in inputs.items()}))
        rgb = inputs["rgb"]
        fallback = torch.zeros_like(rgb)
        fallback[:, 0] = 1
        use = available[:, 0, None, None, None]
        return {"logits": torch.where(use, rgb, fallback) * 10}


def _loader(samples, batch_size=4):
    return DataLoader(samples, batch_size=batch_size, shuffle=False)


def _class0_only_miou(samples):
    from rmmss_core.eval.metrics import ConfusionMatrix
    cm = ConfusionMatrix(K)
    for s in samples:
        cm.update(torch.zeros_like(s["label"]), s["label"])
    return cm.summary()["miou"]


def test_build_conditions():
    conds = build_conditions(["emm", "rmm", "nm"])
    assert len(conds) == 15 + 3 * 15 + 3
    assert [c.name for c in conds[:15]] == list(SUBSET_NAMES)
    assert [c.name for c in conds if c.protocol == "nm"] == ["low", "mid", "high"]
    assert [c.name for c in conds if c.protocol == "rmm"][:2] == ["0.25/none", "0.25/R"]
    told = build_conditions(["emm", "emm_told"], tell_missing=False)
    assert [c.tell for c in told] == [False] * 15 + [True] * 15
    with pytest.raises(ValueError, match="bogus"):
        build_conditions(["emm", "bogus"])


def test_emm_per_subset_with_oracle():
    samples = _samples()
    model = RgbOracle()
    run = Evaluator(SPEC, build_conditions(["emm"])).run(model, _loader(samples), progress=False)
    s = run.summary()
    assert s["samples"] == 6
    low = _class0_only_miou(samples)
    for name in SUBSET_NAMES:
        want = 1.0 if "R" in name else low
        assert s["emm"]["subsets"][name]["miou"] == pytest.approx(want), name
    n_r = sum("R" in n for n in SUBSET_NAMES)
    assert s["emm"]["miou_avg"] == pytest.approx((n_r + (15 - n_r) * low) / 15)
    assert s["emm"]["miou_e"]["0.05"] > s["emm"]["miou_e"]["0.2"] > s["emm"]["miou_avg"]
    seen = {tuple(a[0].tolist()) for a, _ in model.calls}
    assert len(seen) == 15


def test_emm_respects_dataset_availability():
    # samples 0..2 have only depth; under subset "R" they have nothing and are skipped
    samples = _samples(available=lambda i: torch.tensor([i >= 3, True, True, True]))
    s = evaluate(RgbOracle(), _loader(samples), SPEC, ["emm"], progress=False)
    sub = s["emm"]["subsets"]
    assert sub["R"]["pixels"] == 3 * 63 and sub["D"]["pixels"] == 6 * 63
    assert sub["R"]["miou"] == pytest.approx(1.0)
    assert sub["RD"]["miou"] < 1.0                    # the depth-only samples fall back to class 0


def test_rmm_nm_seeded_and_monotone():
    samples = _samples()
    ev = Evaluator(SPEC, build_conditions(["rmm", "nm"]), seed=3)
    a = ev.run(RgbOracle(), _loader(samples), progress=False).summary()
    b = Evaluator(SPEC, build_conditions(["rmm", "nm"]), seed=3).run(
        RgbOracle(), _loader(samples, batch_size=4), progress=False).summary()
    assert a == b
    c = Evaluator(SPEC, build_conditions(["rmm", "nm"]), seed=4).run(
        RgbOracle(), _loader(samples), progress=False).summary()
    assert c != a
    rmm = [a["rmm"][r]["miou_avg"] for r in ("0.25", "0.5", "0.75")]
    assert 1.0 > rmm[0] > rmm[1] > rmm[2]
    # the oracle reads RGB only: combinations that leave RGB alone are perfect
    assert a["rmm"]["0.75"]["combinations"]["DEL"]["miou"] == pytest.approx(1.0)
    assert a["rmm"]["0.75"]["combinations"]["R"]["miou"] < 1.0
    assert set(a["nm"]) == {"low", "mid", "high"}
    assert 1.0 > a["nm"]["low"]["miou"] > a["nm"]["high"]["miou"]


def test_nm_leaves_event_without_gaussian_noise():
    samples = _samples(n=2)
    model = RgbOracle()
    Evaluator(SPEC, build_conditions(["nm"])[:1]).run(model, _loader(samples), progress=False)
    _, inputs = model.calls[0]
    clean = torch.stack([s["event"] for s in samples])
    changed = inputs["event"] != clean
    assert changed.any()                                   # salt-and-pepper only: max or min values
    assert set(inputs["event"][changed].unique().tolist()) <= {clean.max().item(), clean.min().item()}
    assert not torch.equal(inputs["depth"], torch.stack([s["depth"] for s in samples]))


def test_max_samples_callable_model_and_resize():
    samples = _samples(n=7)

    def low_res(inputs, available):                       # a plain callable, tensor output at H/2
        x = inputs["rgb"] * 10
        return torch.nn.functional.avg_pool2d(x, 2)

    s = evaluate(low_res, _loader(samples, 3), SPEC, ["emm"], max_samples=5, progress=False)
    assert s["samples"] == 5
    assert s["emm"]["subsets"]["RDEL"]["pixels"] == 5 * 63
    with pytest.raises(ValueError, match="logits"):
        evaluate(lambda i, a: torch.zeros(2, 3), _loader(samples), SPEC, ["emm"], progress=False)


def test_rmm_corrupts_only_the_affected_modalities_of_the_normalised_input():
    conds = {c.key: c for c in build_conditions(["rmm"])}
    ev = Evaluator(SPEC, list(conds.values()))
    x = {m: torch.randn(2, 3, 64, 64) for m in MODALITIES}
    y = ev._corrupt(conds["rmm/0.5/RL"], x, torch.Generator().manual_seed(0))
    for m in ("rgb", "lidar"):
        assert 0.45 < (y[m] == 0).float().mean() < 0.55
        keep = y[m] != 0
        assert torch.equal(y[m][keep], x[m][keep])
    for m in ("depth", "event"):
        assert torch.equal(y[m], x[m])
    again = ev._corrupt(conds["rmm/0.5/RL"], x, torch.Generator().manual_seed(0))
    assert torch.equal(again["rgb"], y["rgb"])
    assert all(torch.equal(v, x[k]) for k, v in ev._corrupt(conds["rmm/0.75/none"], x, torch.Generator()).items())


def test_report_and_plots(tmp_path):
    samples = _samples()
    ev = Evaluator(SPEC, build_conditions(["emm", "rmm", "nm"]), overlay_samples=[1, 4],
                   overlay_subsets=["RDEL", "D"])
    run = ev.run(RgbOracle(), _loader(samples), progress=False)
    assert [r["index"] for r in run.overlays] == [1, 4]
    rec = run.overlays[1]
    assert list(rec["preds"]) == ["RDEL", "D"] and rec["name"] == "frame4"
    assert torch.equal(rec["preds"]["RDEL"][rec["label"] != 255], samples[4]["label"][rec["label"] != 255])
    assert (rec["preds"]["D"] == 0).all()
    good = run.summary()
    bad = Evaluator(SPEC, build_conditions(["emm", "rmm", "nm"]), seed=1).run(
        lambda i, a: torch.zeros(i["rgb"].shape[0], K, 8, 8), _loader(samples), progress=False).summary()
    report = build_report({"oracle": good, "zeros": bad}, SPEC.class_names, {"split": "val"})
    paths = write_report(report, tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert loaded["checkpoints"]["oracle"]["emm"]["subsets"]["R"]["miou"] == pytest.approx(1.0)
    md = paths["markdown"].read_text()
    assert "| R | 100.00 |" in md and "mIoU^E(p=0.2)" in md and "| r=0.75 mIoU^Avg |" in md
    assert "| r=0.25 mIoU^E(p=0.05) |" in md and "| r=0.5 DEL | 100.00 |" in md
    assert "| high |" in md and "| c |" in md
    assert md == markdown_report(report) + "\n"
    assert not list(tmp_path.glob(".*.tmp"))
    bars = plot_subset_bars(report, tmp_path / "emm_subsets.png")
    over = plot_overlays(run.overlays, SPEC.palette, tmp_path / "overlays.png", "oracle")
    for p in (bars, over):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_report_gives_present_class_miou_and_marks_absent_classes(tmp_path):
    samples = _samples()
    for smp in samples:                                  # class "c" never in the truth
        keep = smp["label"] == 2
        smp["label"][keep] = 0
        smp["rgb"][:, keep] = torch.tensor([1.0, 0.0, 0.0])[:, None]
    run = Evaluator(SPEC, build_conditions(["emm"])).run(RgbOracle(), _loader(samples), progress=False)
    s = run.summary()["emm"]["subsets"]
    assert s["RDEL"]["present"] == [0, 1]
    assert s["RDEL"]["miou"] == pytest.approx(2 / 3)      # DELIVER: c counts 0 over 3 classes
    assert s["RDEL"]["miou_present"] == pytest.approx(1.0)
    md = markdown_report(build_report({"oracle": run.summary()}, SPEC.class_names))
    assert "| c *absent* |" in md and "| a | 100.00 |" in md
    assert "| **mIoU (present classes)** | 100.00 |" in md and "| **mIoU (DELIVER)** | 66.67 |" in md
    from rmmss_core.eval.report import present_avg
    assert present_avg(run.summary()) == pytest.approx(sum(v["miou_present"] for v in s.values()) / 15)


def test_colorize_ignore_black():
    ids = torch.tensor([[0, 2], [255, -1]])
    img = colorize(ids, SPEC.palette)
    assert img[0, 0].tolist() == [200, 0, 0] and img[0, 1].tolist() == [0, 0, 200]
    assert img[1].tolist() == [[0, 0, 0], [0, 0, 0]]


def test_parse_subset_roundtrip_used_by_conditions():
    for c in build_conditions(["emm"]):
        assert parse_subset(c.name) == c.subset


# ---------------------------------------------------------------- end to end: rmmss eval
def _write_fixture_dataset(root, n=3, size=32):
    import numpy as np

    from rmmss_core.data.image_io import write_png
    from rmmss_core.data.layout import FrameKey, frame_path

    rng = np.random.default_rng(0)
    for i in range(n):
        key = FrameKey("cloud", "val", "MAP_1_point0", f"{i:06d}")
        for m in MODALITIES:
            write_png(frame_path(root, key, m), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        raw = rng.integers(1, 26, (size, size), dtype=np.uint8)
        raw[:4] = 0                                            # raw 0 -> ignore
        write_png(frame_path(root, key, "semantic"), np.stack([raw] * 3, axis=2))


def test_cli_eval_end_to_end(tmp_path):
    from rmmss_cli import main
    from rmmss_core.models.checkpoint import save_model_checkpoint
    from rmmss_core.models.registry import create_model

    data = tmp_path / "deliver"
    _write_fixture_dataset(data)
    spec = PreprocessSpec(input_size=(32, 32))
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("anymodal", size="tiny", num_classes=spec.num_classes)
        ckpts.append(tmp_path / f"model{seed}.pt")
        save_model_checkpoint(ckpts[-1], model, spec)
    out = tmp_path / "report"
    rc = main(["eval", "--checkpoint", *map(str, ckpts), "--data", str(data), "--split", "val",
               "--out", str(out), "--batch-size", "2", "--device", "cpu", "--max-samples", "3",
               "--overlay-samples", "0,2", "--overlay-subsets", "RDEL,L", "--no-progress"])
    assert rc == 0
    report = json.loads((out / "eval.json").read_text())
    assert list(report["checkpoints"]) == ["model0", "model1"]
    r0 = report["checkpoints"]["model0"]
    assert r0["samples"] == 3 and len(r0["emm"]["subsets"]) == 15
    assert r0["emm"]["subsets"]["RDEL"]["pixels"] == 3 * 28 * 32
    assert len(r0["emm"]["subsets"]["RDEL"]["iou"]) == 25
    assert set(r0["rmm"]) == {"0.25", "0.5", "0.75"} and set(r0["nm"]) == {"low", "mid", "high"}
    assert len(r0["rmm"]["0.5"]["combinations"]) == 15 and r0["emm"]["told"] is False
    assert r0 != report["checkpoints"]["model1"]
    md = (out / "eval.md").read_text()
    assert "| subset | model0 | model1 |" in md and ("| Truck |" in md or "| Truck *absent* |" in md)
    # present-class mIoU beside DELIVER's 25-class one, and the per-class table marks absent classes
    full = r0["emm"]["subsets"]["RDEL"]
    present = full["present"]
    assert 0 < len(present) <= 25 and full["miou_present"] >= full["miou"]
    assert "| mIoU^Avg (present classes) |" in md and "| **mIoU (present classes)** |" in md
    assert md.count("*absent* |") == 25 - len(present)
    for png in ("emm_subsets.png", "overlays_model0.png", "overlays_model1.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(data),
                 "--out", str(out), "--device", "cpu"]) == 1


def test_subset_bars_of_a_told_only_eval(tmp_path):
    """`rmmss eval --protocols emm_told` (what --store-quality is run with) wrote no bar chart:
    the plot and the CLI looked for the authors' `emm` only."""
    samples = _samples()
    told = Evaluator(SPEC, build_conditions(["emm_told"])).run(RgbOracle(), _loader(samples),
                                                                progress=False).summary()
    assert "emm" not in told and "emm_told" in told
    report = build_report({"told": told}, SPEC.class_names, {"split": "val"})
    bars = plot_subset_bars(report, tmp_path / "emm_subsets.png")
    assert bars.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and bars.stat().st_size > 5000
