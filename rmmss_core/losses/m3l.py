"""M3L (Maheshwari et al. 2023): mean-teacher pseudo-label loss and the EMA teacher update."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.losses._common import check_dim, check_same_shape, zero_like_graph


def pseudo_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """M3L pseudo-label loss: cross-entropy of the student against the teacher's argmax.

    Args:
        student_logits: ``B x K x H x W``; teacher_logits: ``B x K x H x W`` (mean teacher on
            unmasked inputs; detached, argmax taken per pixel).
        valid: optional bool ``B x H x W`` of pixels to include.
    """
    check_dim(student_logits, 4, "student_logits", "B x K x H x W")
    check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
    pseudo = teacher_logits.detach().argmax(dim=1)
    if valid is not None:
        if valid.shape != pseudo.shape:
            raise ValueError(f"valid must be B x H x W = {tuple(pseudo.shape)}, got {tuple(valid.shape)}")
        if not valid.any():
            return zero_like_graph(student_logits)
        pseudo = pseudo.masked_fill(~valid.bool(), IGNORE_INDEX)
    return F.cross_entropy(student_logits, pseudo, ignore_index=IGNORE_INDEX)


def ema_decay(step: int, max_decay: float = 0.99) -> float:
    """M3L mean-teacher decay ``min(1 - 1 / (step + 1), max_decay)`` (0 at step 0)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return min(1.0 - 1.0 / (step + 1), max_decay)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, step: int, max_decay: float = 0.99) -> float:
    """In place ``teacher = d * teacher + (1 - d) * student`` with ``d = ema_decay(step)``.

    Parameters and floating-point buffers are averaged; other buffers (e.g. BatchNorm's
    ``num_batches_tracked``) are copied. The two modules must have the same structure.
    Returns the decay used.
    """
    decay = ema_decay(step, max_decay)
    t_params, s_params = dict(teacher.named_parameters()), dict(student.named_parameters())
    t_bufs, s_bufs = dict(teacher.named_buffers()), dict(student.named_buffers())
    if t_params.keys() != s_params.keys() or t_bufs.keys() != s_bufs.keys():
        raise ValueError("ema_update: teacher and student have different parameters or buffers")
    for name, t in t_params.items():
        t.mul_(decay).add_(s_params[name].detach(), alpha=1.0 - decay)
    for name, t in t_bufs.items():
        if t.is_floating_point():
            t.mul_(decay).add_(s_bufs[name], alpha=1.0 - decay)
        else:
            t.copy_(s_bufs[name])
    return decay
