"""From a resolved ``TrainConfig`` to a trained run: spec, datasets, validation, recipe, ``fit``.

Used by ``rmmss train`` and by the robustness benchmark.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from rmmss_core.spec import PreprocessSpec
from rmmss_core.train.config import TrainConfig
from rmmss_core.train.data import PartiallyLabeled
from rmmss_core.train.distributed import resolve_device
from rmmss_core.train.recipes import build_recipe
from rmmss_core.train.trainer import TrainResult, fit

log = logging.getLogger("rmmss.train")


def dataset_spec(cfg: TrainConfig) -> PreprocessSpec:
    """The dataset's own spec (``rmmss_dataset.json``) or the class set's, at ``data.input_size``."""
    from rmmss_core.data.deliver import read_dataset_info
    info = read_dataset_info(cfg.data.root) if cfg.data.root else {}
    spec = PreprocessSpec.from_dict(info["spec"]) if "spec" in info else PreprocessSpec.for_class_set(cfg.data.class_set)
    return dataclasses.replace(spec, input_size=tuple(cfg.data.input_size))


def build_train_set(cfg: TrainConfig, spec: PreprocessSpec) -> Dataset:
    """The training split with paired augmentation; a labeled fraction below 1 hides labels."""
    from rmmss_core.data import build_dataset
    from rmmss_core.data.augment import train_transform
    if not cfg.data.root:
        raise ValueError("no training data: pass --data DIR (or data.root=DIR)")
    transform = train_transform(tuple(cfg.data.input_size)) if cfg.data.augment else None
    data = build_dataset(cfg.data.dataset, root=cfg.data.root, split=cfg.data.train_split, spec=spec,
                         transform=transform)
    if cfg.data.labeled_fraction < 1.0:
        data = PartiallyLabeled(data, cfg.data.labeled_fraction, cfg.seed)
    return data


def build_validate(cfg: TrainConfig, spec: PreprocessSpec) -> Callable[[torch.nn.Module], Mapping[str, float]]:
    """``validate(model) -> {miou_avg, miou_full, miou_e0.1, ...}`` over the EMM subsets of
    ``cfg.val_subsets`` (all 15 by default) on the first ``data.val_frames`` validation frames."""
    from rmmss_core.data import build_dataset
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.modalities import parse_subset, subset_name
    val = build_dataset(cfg.data.dataset, root=cfg.data.root, split=cfg.data.val_split, spec=spec)
    if cfg.data.val_frames:
        val = Subset(val, range(min(cfg.data.val_frames, len(val))))
    conditions = build_conditions(["emm"])
    if cfg.val_subsets:
        wanted = {subset_name(parse_subset(s)) for s in cfg.val_subsets}
        conditions = [c for c in conditions if c.name in wanted]
    device = resolve_device(cfg.device)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        from rmmss_core.eval.metrics import expected_miou
        loader = DataLoader(val, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers)
        evaluator = Evaluator(spec, conditions, device=device, seed=cfg.seed)
        run = evaluator.run(model, loader, progress=False)
        per = {c.name: run.confusion[c.key].summary() for c in conditions}
        out = {"miou_avg": sum(s["miou"] for s in per.values()) / len(per),
               "miou_avg_nanmean": sum(s["miou_nanmean"] for s in per.values()) / len(per)}
        if "RDEL" in per:
            out["miou_full"] = per["RDEL"]["miou"]
        if len(per) == 15:
            out.update({f"miou_e{p:g}": expected_miou({k: s["miou"] for k, s in per.items()}, p)
                        for p in (0.2, 0.1, 0.05)})
        return out

    return validate


def train_recipe(cfg: TrainConfig, out: str | Path, resume: bool = False,
                 should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Build everything ``cfg`` names and train it into ``out``."""
    spec = dataset_spec(cfg)
    train_set = build_train_set(cfg, spec)
    validate = build_validate(cfg, spec)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every resume
    recipe = build_recipe(cfg.recipe, cfg, spec)
    log.info("recipe %s: %d trainable / %d parameters, %d training frames", cfg.recipe,
             sum(p.numel() for p in recipe.parameters() if p.requires_grad),
             sum(p.numel() for p in recipe.output_model().parameters()), len(train_set))
    return fit(cfg, recipe, train_set, out, spec=spec, validate=validate, resume=resume, should_stop=should_stop)
