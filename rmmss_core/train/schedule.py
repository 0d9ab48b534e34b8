"""Learning-rate schedule: linear warm-up from ``warmup_ratio * lr`` then poly decay to the end."""
from __future__ import annotations

import torch

from rmmss_core.train.config import OptimConfig


def lr_factor(step: int, total: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based) of ``total``.

    Warm-up: ``ratio + (1 - ratio) * step / warmup`` for ``step < warmup``; then
    ``(1 - (step - warmup) / (total - warmup)) ** power``, floored at ``min_lr_ratio``.
    """
    warmup = min(cfg.warmup_iters, max(total - 1, 0))
    if step < warmup:
        return cfg.warmup_ratio + (1.0 - cfg.warmup_ratio) * step / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return max((1.0 - progress) ** cfg.poly_power, cfg.min_lr_ratio)


def build_scheduler(optimizer: torch.optim.Optimizer, total: int,
                    cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR (its state is the step count, so it resumes exactly from a checkpoint)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, cfg))
