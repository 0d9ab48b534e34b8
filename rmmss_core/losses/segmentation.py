"""Supervised segmentation losses."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.losses._common import check_dim, zero_like_graph


def ohem_cross_entropy(logits: torch.Tensor, label: torch.Tensor, thresh: float = 0.7,
                       min_kept_fraction: float = 1 / 16,
                       ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Online hard example mining cross-entropy (OhemCrossEntropy of the AnySeg / RMMSS code).

    Args:
        logits: ``B x K x H x W`` class scores.
        label: ``B x H x W`` class ids, ``ignore_index`` = ignore.
        thresh: keep pixels whose probability of the true class is below ``thresh``
            (equivalently, per-pixel CE above ``-log(thresh)``).
        min_kept_fraction: keep at least ``floor(valid * min_kept_fraction)`` pixels (the hardest),
            ``valid`` being the number of non-ignore pixels in the batch (the code's ``valid // 16``).

    Returns the mean CE over the kept pixels (a scalar); 0 (attached to the graph) when no pixel is valid.
    """
    check_dim(logits, 4, "logits", "B x K x H x W")
    check_dim(label, 3, "label", "B x H x W")
    if logits.shape[0] != label.shape[0] or logits.shape[2:] != label.shape[1:]:
        raise ValueError(f"logits {tuple(logits.shape)} and label {tuple(label.shape)} disagree on B, H, W")
    if not 0 < thresh <= 1:
        raise ValueError(f"thresh must be in (0, 1], got {thresh}")
    valid = label != ignore_index
    num_valid = int(valid.sum())
    if num_valid == 0:
        return zero_like_graph(logits)
    loss = F.cross_entropy(logits, label, ignore_index=ignore_index, reduction="none")[valid]
    n_min = int(num_valid * min_kept_fraction)
    hard = loss[loss > -math.log(thresh)]
    if hard.numel() < n_min:
        hard, _ = loss.topk(n_min)
    if hard.numel() == 0:
        return zero_like_graph(logits)
    return hard.mean()
