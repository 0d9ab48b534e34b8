"""End to end on a tiny synthetic world, through the CLI: synth -> teacher (interrupted by SIGINT,
then resumed) -> rmmss-hpdm -> rmmss-fsm -> ``rmmss eval`` in a fresh process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rmmss_cli import main as rmmss
from rmmss_core.models import load_model
from rmmss_core.train.checkpoint import load_training_checkpoint

COMMON = ["model.options.size=tiny", "model.options.drop_path_rate=0", "data.input_size=[32,40]",
          "data.batch_size=4", "data.num_workers=0", "data.val_frames=4", "val_subsets=[RDEL,R,DL]",
          "optim.warmup_iters=1", "optim.lr=1e-3", "log_every=2", "progress=false"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    assert rmmss(["synth", "--out", str(root / "data"), "--frames", "30", "--size", "80x64", "--sequences", "3",
                  "--splits", "train=0.34,val=0.33,test=0.33", "--no-progress"]) == 0
    return root


def _train(recipe: str, out: Path, data: Path, *extra: str) -> dict:
    assert rmmss(["train", recipe, "--data", str(data), "--out", str(out), *extra, *COMMON]) == 0
    return json.loads((out / "result.json").read_text())


def test_teacher_hpdm_fsm_eval(world, capsys):
    data, runs = world / "data", world / "runs"
    # the teacher is interrupted mid-run (SIGINT -> checkpoint at the step boundary) and resumed
    cmd = [sys.executable, "-m", "rmmss_cli", "train", "teacher", "--data", str(data), "--out",
           str(runs / "teacher"), "iters=100000", "ckpt_every=2", *COMMON]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = runs / "teacher" / "last.pt"
    deadline = time.time() + 120
    while not (last.is_file() and load_training_checkpoint(last)["step"] >= 4):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    stopped = load_training_checkpoint(last)["step"]
    assert 4 <= stopped < 100000 and '"interrupted": true' in output
    # resume (here with a shorter schedule so the test ends): it continues from the saved step
    resumed = _train("teacher", runs / "teacher", data, "--resume", f"iters={stopped + 4}", "ckpt_every=2")
    assert resumed["step"] == stopped + 4 and "miou_full" in resumed["metrics"]
    assert resumed["metrics"]["miou_full_present"] >= resumed["metrics"]["miou_full"]  # 25-class vs present
    hpdm = _train("rmmss-hpdm", runs / "hpdm", data, "--teacher", str(runs / "teacher" / "best.pt"), "iters=6")
    fsm = _train("rmmss-fsm", runs / "fsm", data, "--teacher", str(runs / "teacher" / "best.pt"),
                 "--robust", str(runs / "hpdm" / "best.pt"), "iters=6")
    assert hpdm["step"] == fsm["step"] == 6
    # the resolved config sits beside the outputs
    assert "recipe: rmmss-fsm" in (runs / "fsm" / "config.yaml").read_text()
    model, spec = load_model(runs / "fsm" / "best.pt")
    assert spec.input_size == (32, 40) and type(model).__name__ == "FSMStudent"
    # evaluation in a fresh process: load_model must rebuild the registered FSM student
    out = world / "eval"
    r = subprocess.run([sys.executable, "-m", "rmmss_cli", "eval", "--checkpoint",
                        str(runs / "teacher" / "best.pt"), str(runs / "fsm" / "best.pt"), "--data", str(data),
                        "--dataset", "synthetic", "--split", "test", "--protocols", "emm,rmm", "--out", str(out),
                        "--max-samples", "4", "--no-progress"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "eval.json").read_text())
    assert len(report["checkpoints"]) == 2
    for res in report["checkpoints"].values():
        assert len(res["emm"]["subsets"]) == 15 and 0.0 <= res["emm"]["miou_avg"] <= 1.0
    assert torch.isfinite(torch.tensor(report["checkpoints"][next(iter(report["checkpoints"]))]["emm"]["miou_avg"]))


@pytest.mark.slow
def test_benchmark_harness_smoke(tmp_path):
    """The whole benchmark (every recipe, evaluation, report, plots) at toy size (make test-all)."""
    from rmmss_core.train.benchmark import load_preset, main
    cfg = load_preset("smoke", overrides=[
        f"out={tmp_path / 'bench'}", "synth.frames=24", "synth.sequences=3", "train.iters=2",
        "train.data.input_size=[32,40]", "train.data.val_frames=2", "eval.max_samples=2",
        "eval.protocols=[emm,emm_told]", "eval.latency_iters=1", "seeds=[0,1]", "jobs=1",
        "runs=[teacher,teacher_lidar,dropout,anyseg,rmmss-hpdm,rmmss-fsm,m3l,u2mkd,compress,dropout_semi,m3l_semi]"])
    md = main(cfg, "rmmss benchmark --preset smoke (test)")
    text = md.read_text()
    assert md.parent == tmp_path / "bench" / "report"
    for label in ("Teacher (all sensors)", "Dropout baseline", "AnySeg", "RMMSS-FSM", "M3L", "U2MKD",
                  "Compressed RMMSS-FSM", "M3L, 10% labels", "Dropout baseline, 10% labels"):
        assert f"| {label} |" in text
    assert "RMMSS-FSM above the best other robust recipe" in text and "M3L with 10% labels above" in text
    assert " ± " in text and "Seeds [0, 1]" in text
    assert (md.parent / "robustness_subsets.png").stat().st_size > 1000
    agg = json.loads((md.parent / "robustness.json").read_text())["aggregate"]
    assert agg["teacher"]["full"]["n"] == 2 and len(agg["teacher"]["full"]["values"]) == 2
    # a second run reuses every trained model of every seed
    res = tmp_path / "bench" / "seed1" / "runs" / "teacher" / "result.json"
    t = json.loads(res.read_text())
    main(cfg)
    assert json.loads(res.read_text()) == t
