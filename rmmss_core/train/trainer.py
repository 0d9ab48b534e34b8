"""The training loop shared by every recipe.

    result = fit(cfg, recipe, train_set, out_dir, validate=fn, resume=True)

Per step: seed from (seed, step, rank) -> batch -> autocast forward of the recipe (DDP-wrapped
under torchrun) -> backward (GradScaler for fp16) -> clip -> AdamW -> warm-up/poly schedule ->
recipe.after_step. Every ``ckpt_every`` steps, at the end, and on SIGINT/SIGTERM (at the next
step boundary) rank 0 atomically writes ``last.pt``; ``best.pt`` follows the named validation
metric; with ``curve_every`` the output model alone is also kept every N steps as
``curve/step<N>.pt`` (learning curves, ``train/learning_curves.py``). Resuming from ``last.pt`` replays the exact same data order, augmentation and randomness,
so an interrupted run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from rmmss_core.spec import PreprocessSpec
from rmmss_core.train import distributed as D
from rmmss_core.train.checkpoint import (
    is_better,
    load_training_checkpoint,
    save_training_checkpoint,
    set_rng_state,
)
from rmmss_core.train.config import TrainConfig
from rmmss_core.train.data import SeededDataset, seed_everything, to_device
from rmmss_core.train.logger import RunLogger
from rmmss_core.train.optim import build_optimizer
from rmmss_core.train.recipes.base import Recipe
from rmmss_core.train.schedule import build_scheduler
from rmmss_core.utils.config import dump_config
from rmmss_core.utils.io import atomic_write_json

log = logging.getLogger("rmmss.train")

Validate = Callable[[torch.nn.Module], Mapping[str, float]]


@dataclass
class TrainResult:
    out: Path
    step: int
    last: Path
    best: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop at the next step boundary."""

    def __init__(self):
        self.raised = False
        self._pid = os.getpid()
        self._old: dict[int, Any] = {}

    def __enter__(self):
        self._pid = os.getpid()
        with contextlib.suppress(ValueError):  # not in the main thread: no handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        if os.getpid() != self._pid:  # a forked data-loader worker inherited the handler: the
            return  # trainer process gets the same Ctrl-C and speaks for the run, once
        if self.raised:  # a second signal: stop now
            raise KeyboardInterrupt
        log.warning("signal %d: checkpointing and stopping after this step", signum)
        self.raised = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def fit(cfg: TrainConfig, recipe: Recipe, train_set: Dataset, out: str | Path, *,
        spec: PreprocessSpec, validate: Validate | None = None, resume: bool = False,
        should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Train ``recipe`` on ``train_set`` for ``cfg.iters`` steps into ``out``.

    ``validate(model) -> {metric: value}`` runs on rank 0; ``cfg.best_metric`` picks ``best.pt``.
    ``should_stop(step)`` is checked at each step boundary (tests use it to interrupt a run).
    """
    out = Path(out)
    device = D.resolve_device(cfg.device, _local_rank())
    info = D.init_distributed(device)
    seed_everything(cfg.seed)
    recipe.to(device)
    model = D.wrap_ddp(recipe, info, device)
    trainable = [p for p in recipe.parameters() if p.requires_grad]
    optimizer = build_optimizer(recipe, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.iters, cfg.optim)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step, best, metrics, prior_s = 0, None, {}, 0.0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.is_file():
        ckpt = load_training_checkpoint(last_path, map_location=device)
        check_resumable(ckpt.get("train_config", {}), cfg, last_path)
        recipe.output_model().load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        recipe.load_extra_state(ckpt.get("recipe_state", {}))
        set_rng_state(ckpt["rng"])
        step, best = int(ckpt["step"]), ckpt.get("best_value")
        prior_s = float(ckpt.get("train_seconds", 0.0))
        metrics = dict(ckpt.get("metrics", {}))
        log.info("resumed %s at step %d of %d", last_path, step, cfg.iters)
    elif resume:
        log.info("nothing to resume in %s: starting from scratch", out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
        atomic_write_json(out / "spec.json", spec.to_dict())

    sampler = D.ShardedSampler(len(train_set), cfg.seed, info)  # type: ignore[arg-type]
    per_epoch = sampler.per_rank // cfg.data.batch_size
    if per_epoch < 1:
        raise ValueError(f"{sampler.per_rank} frames per process are fewer than one batch of "
                         f"{cfg.data.batch_size}; lower data.batch_size")
    seeded = SeededDataset(train_set)
    t0 = time.perf_counter()
    logger = RunLogger(out, spec, enabled=info.is_main, total=cfg.iters, start=step,
                       progress=cfg.progress)

    def save(path: Path, current_metrics: Mapping[str, float]) -> None:
        if info.is_main:
            save_training_checkpoint(
                path, model=recipe.output_model(), model_info=recipe.model_info(), spec=spec,
                step=step, config=cfg, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                recipe_state=recipe.extra_state(), metrics=current_metrics,
                extra={"best_value": best, "best_metric": cfg.best_metric, "recipe": recipe.name,
                       "train_seconds": prior_s + time.perf_counter() - t0})

    def save_snapshot(run_dir: Path, at: int) -> None:
        """The output model alone (no optimizer state) for learning curves: ``curve/step<N>.pt``."""
        save_training_checkpoint(run_dir / "curve" / f"step{at:07d}.pt", model=recipe.output_model(),
                                 model_info=recipe.model_info(), spec=spec, step=at, config=cfg)

    def run_validation() -> None:
        nonlocal best, metrics
        if validate is None:
            return
        if info.is_main:
            recipe.eval()
            with torch.no_grad(), _autocast(device, amp_dtype):
                metrics = {k: float(v) for k, v in validate(recipe.output_model()).items()}
            recipe.train()
            logger.scalars("val", metrics, step)
            if cfg.best_metric not in metrics:
                raise KeyError(f"best_metric {cfg.best_metric!r} not among validation metrics {sorted(metrics)}")
            if is_better(metrics[cfg.best_metric], best):
                best = metrics[cfg.best_metric]
                save(best_path, metrics)
                log.info("step %d: new best %s = %.4f", step, cfg.best_metric, best)
        metrics = D.broadcast_object(metrics, info)

    interrupted, batch = False, None
    recipe.train()
    with _StopFlag() as stop:
        while step < cfg.iters and not interrupted:
            sampler.set_epoch(step // per_epoch, (step % per_epoch) * cfg.data.batch_size)
            loader = DataLoader(seeded, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True,
                                num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                                generator=torch.Generator().manual_seed(cfg.seed))
            for batch in loader:
                seed_everything(cfg.seed * 1_000_003 + step * 1009 + info.rank)
                batch = to_device(batch, device)
                with _autocast(device, amp_dtype):
                    loss, logs = model(batch, step)
                if not torch.isfinite(loss):
                    raise RuntimeError(f"step {step}: loss is {loss.item()} (terms: "
                                       f"{ {k: float(v) for k, v in logs.items()} })")
                optimizer.zero_grad(set_to_none=True)
                (scaler.scale(loss) if scaler else loss).backward()
                if scaler:
                    scaler.unscale_(optimizer)
                grad_norm = (torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.clip_grad)
                             if cfg.optim.clip_grad > 0 else torch.zeros(()))
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                recipe.after_step(step)
                step += 1
                logger.progress(float(loss.detach()))
                if step % cfg.log_every == 0 or step == cfg.iters:
                    values = {"loss": float(loss.detach()), "grad_norm": float(grad_norm),
                              **{k: float(v) for k, v in logs.items()}}
                    values = D.all_reduce_mean(values, info)
                    values["lr"] = scheduler.get_last_lr()[0]
                    logger.scalars("train", values, step)
                if cfg.val_every and step % cfg.val_every == 0 and step < cfg.iters:
                    run_validation()
                    logger.images(recipe.output_model(), batch, step, cfg.images_every)
                stopping = stop.raised or (should_stop is not None and should_stop(step))
                if step % cfg.ckpt_every == 0 or step == cfg.iters or stopping:
                    save(last_path, metrics)
                if cfg.curve_every and info.is_main and (step % cfg.curve_every == 0 or step == cfg.iters):
                    save_snapshot(out, step)
                if stopping:
                    interrupted = True
                    log.warning("stopped at step %d; resume with --resume", step)
                    break
                if step >= cfg.iters:
                    break
    if not interrupted:
        run_validation()
        if validate is not None and batch is not None:
            logger.images(recipe.output_model(), batch, step, max(cfg.images_every, 1))
        save(last_path, metrics)
    D.barrier(info)
    logger.close()
    seconds = prior_s + time.perf_counter() - t0  # over every session of this run
    result = TrainResult(out=out, step=step, last=last_path, best=best_path if best_path.is_file() else None,
                         metrics=dict(metrics), interrupted=interrupted, seconds=seconds)
    if info.is_main and not interrupted:
        atomic_write_json(out / "result.json", {"recipe": recipe.name, "step": step, "seconds": seconds,
                                                "metrics": metrics, "best_metric": cfg.best_metric,
                                                "best_value": best})
    return result


# settings that may change between an interrupted run and its resumption
RESUME_MAY_CHANGE = ("iters", "log_every", "val_every", "ckpt_every", "progress", "images_every", "curve_every",
                     "data.num_workers", "device")


def check_resumable(saved: Mapping[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint trained under another config (other than RESUME_MAY_CHANGE)."""
    from rmmss_core.utils.config import config_to_dict

    def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
        return out
    a, b = flat(saved), flat(config_to_dict(cfg))
    # a setting added to TrainConfig after the checkpoint was written is absent from it: at its
    # default it changes nothing (e.g. data.modalities)
    defaults = flat(config_to_dict(TrainConfig()))
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUME_MAY_CHANGE
                  and not (k not in a and k in defaults and b.get(k) == defaults[k]))
    if diff:
        raise ValueError(f"cannot resume {path}: it was trained with another config "
                         f"({', '.join(f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in diff[:5])}); "
                         "use a new --out or the same settings")


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


__all__ = ["TrainResult", "Validate", "fit"]
