"""Helpers shared by the recipes: building / loading models, masks, the supervised loss."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmmss_core.losses import ohem_cross_entropy
from rmmss_core.modalities import random_anymodal_mask
from rmmss_core.spec import PreprocessSpec
from rmmss_core.train.config import TrainConfig
from rmmss_core.utils.io import CheckpointError


def build_student(cfg: TrainConfig, spec: PreprocessSpec, **overrides: Any) -> nn.Module:
    """``create_model(cfg.model.name, **cfg.model.options, num_classes=spec.num_classes, **overrides)``,
    then optional ``cfg.init`` weights (e.g. a student initialised from its teacher)."""
    from rmmss_core.models import create_model
    options = {**cfg.model.options, **overrides}
    options.setdefault("num_classes", spec.num_classes)
    if options["num_classes"] != spec.num_classes:
        raise ValueError(f"model has {options['num_classes']} classes but the data has {spec.num_classes}")
    model = create_model(cfg.model.name, **options)
    if cfg.init:
        from rmmss_core.models.checkpoint import load_state_strict
        from rmmss_core.utils.io import load_checkpoint
        load_state_strict(model, load_checkpoint(cfg.init)["state_dict"], f"init checkpoint {cfg.init}")
    return model


def load_frozen(path: str, role: str, spec: PreprocessSpec) -> nn.Module:
    """A frozen model from a checkpoint (``teacher=...`` / ``robust=...``), checked against ``spec``."""
    from rmmss_core.models import load_model
    from rmmss_core.train.recipes.base import freeze
    if not path:
        raise ValueError(f"this recipe needs a {role} checkpoint: pass {role}=PATH (or --{role} PATH)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{role} checkpoint {path} does not exist")
    model, their_spec = load_model(path)
    if their_spec.class_names != spec.class_names:
        raise CheckpointError(f"{role} {path} predicts {their_spec.num_classes} classes "
                              f"({their_spec.class_set}), the data has {spec.num_classes} ({spec.class_set})")
    return freeze(model)


DROPOUT_PER = ("batch", "sample")


def anymodal_mask(available: torch.Tensor, per: str = "sample") -> torch.Tensor:
    """Any-modal dropout (AnySeg): a random non-empty subset of the modalities each sample has.

    ``per="sample"`` (METHODS' shared rule, our reading for AnySeg): per sample, k ~ U{1..n} over
    the n modalities the sample has, then a uniform random subset of size k of *those* modalities.
    ``per="batch"`` (the AnySeg/RobustSeg code: the student model draws one subset per forward,
    RobustSeg/RobustSeg@ea9add7:semseg/models/segformer/seg_block_select_UMD.py:91-100): one subset of
    all M modalities for the whole batch, intersected with what each sample has; a sample left
    with nothing keeps what it has.

    available: bool ``B x M`` -> bool ``B x M``; a row with at least one True never comes back
    empty (a row with none stays empty). Uses the global RNG, which the trainer seeds per step, so
    masks replay exactly on resume.
    """
    if per not in DROPOUT_PER:
        raise ValueError(f"any-modal dropout per must be one of {DROPOUT_PER}, got {per!r}")
    available = available.bool()
    b, m = available.shape
    if per == "batch":
        mask = random_anymodal_mask(1, num_modalities=m).to(available.device).expand(b, m) & available
        return torch.where(mask.any(dim=1, keepdim=True), mask, available)
    have = available.sum(dim=1)                                           # B
    k = (torch.rand(b) * have.cpu().clamp(min=1)).long().to(available.device) + 1   # U{1..n}
    scores = torch.rand(b, m).to(available.device).masked_fill(~available, 2.0)     # absent: last
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return (ranks < k[:, None]) & available


def one_or_none_mask(available: torch.Tensor) -> torch.Tensor:
    """M3L's masked modality learning: per sample, mask one available modality or none (uniform)."""
    b, m = available.shape
    choice = torch.randint(0, m + 1, (b,)).to(available.device)  # m = mask none
    mask = available.clone()
    rows = torch.arange(b, device=available.device)
    drop = (choice < m) & (available.sum(dim=1) > 1)
    idx = choice.clamp(max=m - 1)
    mask[rows[drop], idx[drop]] = False
    return mask


def supervised(cfg: TrainConfig, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """OHEM cross-entropy with the config's threshold and minimum kept fraction."""
    return ohem_cross_entropy(logits.float(), label, cfg.loss.ohem_thresh, cfg.loss.ohem_min_kept_frac,
                              ignore_index=255)

