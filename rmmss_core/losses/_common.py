"""Small shared helpers for the loss functions (shape checks, pixel KL, stage lists)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {tuple(a.shape)} but {name_b} has {tuple(b.shape)}")


def check_dim(x: torch.Tensor, dim: int, name: str, layout: str) -> None:
    if x.dim() != dim:
        raise ValueError(f"{name} must be {layout} ({dim}-D), got shape {tuple(x.shape)}")


def as_stages(x: torch.Tensor | Sequence[torch.Tensor], name: str) -> list[torch.Tensor]:
    """A single tensor or a sequence of per-stage tensors -> a non-empty list of stages."""
    stages = [x] if torch.is_tensor(x) else list(x)
    if not stages:
        raise ValueError(f"{name} is empty: give at least one stage")
    return stages


def zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that stays attached to ``x``'s graph (so ``backward`` works and gives 0 grads)."""
    return x.sum() * 0.0


KL_REDUCTIONS = ("element", "pixel")


def check_reduction(reduction: str) -> None:
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"KL reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")


def pixel_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
             valid: torch.Tensor | None, dim: int = 1, reduction: str = "pixel") -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)) along ``dim``, reduced over positions.

    ``reduction="pixel"``: the mean over positions of the per-position KL (summed along ``dim``).
    ``reduction="element"``: PyTorch's ``KLDivLoss(reduction='mean')`` as the authors call it,
    i.e. the mean over *all elements* including ``dim``, which is the per-position mean divided by
    ``size(dim)`` (RobustSeg/RobustSeg@ea9add7:tools/train_deliver_mad50.py:65,128-130).
    The teacher is detached. ``valid`` (shape of the logits without ``dim``) selects positions.
    Not multiplied by T^2; callers decide.
    """
    check_reduction(reduction)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p_s = F.log_softmax(student_logits / temperature, dim=dim)
    log_p_t = F.log_softmax(teacher_logits.detach() / temperature, dim=dim)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=dim)
    if reduction == "element":
        kl = kl / student_logits.shape[dim]
    if valid is None:
        return kl.mean()
    if valid.shape != kl.shape:
        raise ValueError(f"valid mask has shape {tuple(valid.shape)}, expected {tuple(kl.shape)}")
    valid = valid.bool()
    if not valid.any():
        return zero_like_graph(student_logits)
    return kl[valid].mean()
