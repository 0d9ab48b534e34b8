"""Supervised segmentation losses."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.losses._common import check_dim, zero_like_graph


def _check_ohem_inputs(logits: torch.Tensor, label: torch.Tensor, thresh: float) -> None:
    """Both OHEM losses: ``logits B x K x H x W`` and ``label B x H x W`` agree, ``0 < thresh <= 1``."""
    check_dim(logits, 4, "logits", "B x K x H x W")
    check_dim(label, 3, "label", "B x H x W")
    if logits.shape[0] != label.shape[0] or logits.shape[2:] != label.shape[1:]:
        raise ValueError(f"logits {tuple(logits.shape)} and label {tuple(label.shape)} disagree on B, H, W")
    if not 0 < thresh <= 1:
        raise ValueError(f"thresh must be in (0, 1], got {thresh}")


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
    _check_ohem_inputs(logits, label, thresh)
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


def prob_ohem_cross_entropy(logits: torch.Tensor, label: torch.Tensor, thresh: float = 0.7,
                            min_kept: int = 0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """M3L's supervised loss, the probability-threshold OHEM (``ProbOhemCrossEntropy2d``).

    Read from harshm121/M3L@df83f1d:src/utils/seg_opr/loss_func.py:51-81 (criterion built in
    src/semi_supervised/get_framework.py:15-18,49 with ``thresh=0.7`` and
    ``min_kept = int(0.08 * H * W) * batch_size``). Written from that reading; differences from
    ``ohem_cross_entropy`` (the AnySeg / RMMSS rule):

    - the rule is on the softmax probability of the true class: a pixel is kept when
      ``p <= threshold`` (ties included), where ``threshold`` is ``thresh`` unless the
      ``min_kept``-th smallest ``p`` is above it, then that ``p``;
    - ``min_kept`` is an absolute pixel count, not a fraction of the valid pixels;
    - no mining at all (plain CE over every valid pixel) when ``min_kept`` exceeds the number of
      valid pixels or is 0 (the code's ``if self.min_kept > num_valid`` / ``if self.min_kept > 0``).

    Args:
        logits: ``B x K x H x W``; label: ``B x H x W`` (``ignore_index`` = ignore).
    Returns the mean CE over the kept pixels; 0 (attached to the graph) when no pixel is valid
    (the code would give NaN there).
    """
    _check_ohem_inputs(logits, label, thresh)
    if min_kept < 0:
        raise ValueError(f"min_kept must be >= 0, got {min_kept}")
    valid = label != ignore_index
    num_valid = int(valid.sum())
    if num_valid == 0:
        return zero_like_graph(logits)
    ce = F.cross_entropy(logits, label, ignore_index=ignore_index, reduction="none")[valid]
    if 0 < min_kept <= num_valid:
        with torch.no_grad():
            prob = F.softmax(logits.detach(), dim=1).gather(1, label.masked_fill(~valid, 0)[:, None])[:, 0][valid]
            kth = prob.kthvalue(min_kept).values
            threshold = torch.maximum(kth, torch.as_tensor(thresh, dtype=prob.dtype))
            keep = prob <= threshold
        ce = ce[keep]
    return ce.mean()
