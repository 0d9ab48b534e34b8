"""Trainer core: exact resume, atomic checkpoints, schedule, parameter groups, best-by-metric."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _trainer_helpers import SPEC, RandomFrames, TinyNet, TinyRecipe, tiny_config, weights

from rmmss_core.train.checkpoint import load_training_checkpoint
from rmmss_core.train.config import OptimConfig, TrainConfig
from rmmss_core.train.optim import build_optimizer, no_decay_names
from rmmss_core.train.schedule import lr_factor
from rmmss_core.train.trainer import fit
from rmmss_core.utils.config import load_config
from rmmss_core.utils.io import CheckpointError


def _fit(out, cfg=None, **kw):
    cfg = cfg or tiny_config()
    torch.manual_seed(123)  # the recipe's initial weights
    return fit(cfg, TinyRecipe(cfg), RandomFrames(), out, spec=SPEC, **kw)


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_resume_after_interrupt_is_exact(tmp_path):
    ref = _fit(tmp_path / "ref")
    assert ref.step == 12 and not ref.interrupted
    part = _fit(tmp_path / "run", should_stop=lambda step: step == 7)  # mid-epoch (6 batches/epoch)
    assert part.interrupted and part.step == 7
    assert load_training_checkpoint(tmp_path / "run" / "last.pt")["step"] == 7
    at_seven = weights(tmp_path / "run" / "last.pt")
    done = _fit(tmp_path / "run", resume=True)
    assert done.step == 12 and not done.interrupted
    _assert_same(weights(ref.last), weights(done.last))
    assert not torch.equal(at_seven["head.weight"], weights(done.last)["head.weight"])  # it did train on


def test_resume_with_worker_processes_is_exact(tmp_path):
    """Augmentation seeded per sample: the stream does not depend on workers or resume point."""
    cfg = tiny_config(iters=8, data=tiny_config().data.__class__(batch_size=4, num_workers=1))
    ref = _fit(tmp_path / "ref", cfg)
    _fit(tmp_path / "run", cfg, should_stop=lambda step: step == 3)
    done = _fit(tmp_path / "run", cfg, resume=True)
    _assert_same(weights(ref.last), weights(done.last))
    ref0 = _fit(tmp_path / "ref0", tiny_config(iters=8))  # same run with workers=0
    _assert_same(weights(ref.last), weights(ref0.last))


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads({threads})  # bit-exact comparison needs the parent's reduction order
    sys.path.insert(0, {test_dir!r})
    from _trainer_helpers import SPEC, RandomFrames, TinyRecipe, tiny_config
    from rmmss_core.train.trainer import fit
    cfg = tiny_config(iters=40, ckpt_every=2)
    torch.manual_seed(123)
    slow = lambda step: time.sleep(0.15) or False
    fit(cfg, TinyRecipe(cfg), RandomFrames(), {out!r}, spec=SPEC, should_stop=slow)
""")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    out = tmp_path / "killed"
    threads = torch.get_num_threads()
    script = _KILL_SCRIPT.format(test_dir=str(Path(__file__).parent), out=str(out), threads=threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (out / "last.pt").is_file() and load_training_checkpoint(out / "last.pt")["step"] >= 4:
                break
            assert proc.poll() is None, "training process died before the kill"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed_at = load_training_checkpoint(out / "last.pt")["step"]
    assert 4 <= killed_at < 40
    cfg = tiny_config(iters=40, ckpt_every=2)
    done = _fit(out, cfg, resume=True)
    ref = _fit(tmp_path / "ref", cfg)
    _assert_same(weights(ref.last), weights(done.last))


def test_checkpoint_contents_and_atomic_save(tmp_path, monkeypatch):
    res = _fit(tmp_path / "run", tiny_config(iters=5, ckpt_every=5))
    ckpt = load_training_checkpoint(res.last)
    assert ckpt["format"] == "rmmss-checkpoint-v1" and ckpt["step"] == 5
    assert ckpt["model"] == {"name": "tiny", "config": {"classes": 5}}
    assert ckpt["spec"]["input_size"] == [32, 40] and len(ckpt["git_revision"]) >= 7
    assert ckpt["train_config"]["optim"]["lr"] == 1e-2
    for key in ("optimizer", "scheduler", "rng"):
        assert key in ckpt
    # the resolved config is written next to the outputs and reads back identically
    assert load_config(TrainConfig, tmp_path / "run" / "config.yaml") == tiny_config(iters=5, ckpt_every=5)
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    # a save that dies half-way leaves the previous checkpoint intact and no temporary file
    before = res.last.read_bytes()
    import rmmss_core.utils.io as io_mod

    def boom(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(io_mod.torch, "save", boom)
    with pytest.raises(OSError):
        _fit(tmp_path / "run", tiny_config(iters=6, ckpt_every=5), resume=True)
    monkeypatch.undo()
    assert res.last.read_bytes() == before
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_training_checkpoint(tmp_path / "bad.pt")


def test_best_checkpoint_follows_named_metric(tmp_path):
    scores = iter([0.2, 0.9, 0.5, 0.1])

    def validate(model):
        assert not model.training
        return {"miou_avg": next(scores), "other": 1.0}
    res = _fit(tmp_path / "run", tiny_config(iters=12, val_every=3), validate=validate)
    best = load_training_checkpoint(res.best)
    assert best["step"] == 6 and best["metrics"]["miou_avg"] == 0.9
    assert res.metrics["miou_avg"] == 0.1  # the final validation
    with pytest.raises(KeyError, match="best_metric"):
        _fit(tmp_path / "bad", tiny_config(iters=2, best_metric="nope"), validate=lambda m: {"x": 1.0})


def test_warmup_then_poly_schedule():
    cfg = OptimConfig(lr=1.0, warmup_iters=10, warmup_ratio=0.1, poly_power=0.9)
    f = [lr_factor(s, 100, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[5] == pytest.approx(0.55) and f[10] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:10], f[1:11], strict=True))  # rising warm-up
    assert all(a > b for a, b in zip(f[10:-1], f[11:], strict=True))  # poly decay
    assert f[55] == pytest.approx((1 - 45 / 90) ** 0.9)
    assert lr_factor(100, 100, cfg) == 0.0


def test_trained_lr_follows_schedule(tmp_path):
    res = _fit(tmp_path / "run", tiny_config(iters=6, optim=OptimConfig(lr=1e-2, warmup_iters=3)))
    sched = load_training_checkpoint(res.last)["scheduler"]
    assert sched["last_epoch"] == 6
    assert sched["_last_lr"][0] == pytest.approx(1e-2 * lr_factor(6, 6, OptimConfig(lr=1e-2, warmup_iters=3)))


def test_no_weight_decay_on_norms_and_biases():
    net = TinyNet()
    assert no_decay_names(net) == {"conv.bias", "norm.weight", "norm.bias", "head.bias"}
    opt = build_optimizer(net, OptimConfig(weight_decay=0.05))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net.conv.weight), id(net.head.weight)}
    # frozen parameters are not optimised at all
    net.conv.weight.requires_grad_(False)
    assert id(net.conv.weight) not in {id(p) for g in build_optimizer(net, OptimConfig()).param_groups
                                       for p in g["params"]}


def test_nonfinite_loss_is_a_clear_error(tmp_path):
    class Bad(TinyRecipe):
        def forward(self, batch, step):
            loss, logs = super().forward(batch, step)
            return loss * float("nan"), logs
    cfg = tiny_config(iters=2)
    with pytest.raises(RuntimeError, match="step 0: loss is nan"):
        fit(cfg, Bad(cfg), RandomFrames(), tmp_path / "nan", spec=SPEC)


def test_resume_refuses_another_config(tmp_path):
    _fit(tmp_path / "run", tiny_config(iters=4), should_stop=lambda step: step == 2)
    with pytest.raises(ValueError, match="optim.lr"):
        _fit(tmp_path / "run", tiny_config(iters=4, optim=OptimConfig(lr=5e-3, warmup_iters=3)), resume=True)
    done = _fit(tmp_path / "run", tiny_config(iters=6), resume=True)  # a longer schedule is allowed
    assert done.step == 6
    again = _fit(tmp_path / "run", tiny_config(iters=6), resume=True, validate=lambda m: {"miou_avg": 0.5})
    assert again.step == 6 and again.metrics == {"miou_avg": 0.5}  # a finished run resumes to nothing
