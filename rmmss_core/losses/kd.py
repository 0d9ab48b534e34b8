"""Generic knowledge-distillation losses: logits (KL with temperature) and features (MSE).

Used by RMMSS-HPDM (logit KD), U2MKD (logit + bottleneck feature KD), the FSM stage and compression.
The teacher is always detached: gradients flow only to the student.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rmmss_core.losses._common import check_same_shape, pixel_kl, zero_like_graph


def logit_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                  valid: torch.Tensor | None = None, reduction: str = "pixel") -> torch.Tensor:
    """Logit distillation (Hinton KD): ``T^2 * KL(softmax(t/T) || softmax(s/T))`` reduced over pixels.

    Args:
        student_logits, teacher_logits: ``B x K x H x W`` (or ``B x K``).
        temperature: T > 0.
        valid: optional bool mask ``B x H x W`` of pixels to include.
        reduction: ``"pixel"`` (default here; U2MKD, FSM and compression): the mean over pixels of
            the per-pixel KL. ``"element"``: ``KLDivLoss(reduction='mean')`` over ``B*K*H*W`` as
            the RMMSS/RobustSeg code computes its logit KD (= the per-pixel mean / K;
            RobustSeg/RobustSeg@ea9add7:tools/train_deliver_mad50_proto_cur_reg.py:75,162-165).
            Its weight 50 was tuned on ``"element"``: with ``"pixel"`` it is K times stronger.
    """
    check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
    return pixel_kl(student_logits, teacher_logits, temperature, valid, reduction=reduction) * temperature ** 2


def feature_kd_loss(student: torch.Tensor, teacher: torch.Tensor,
                    sample_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Feature distillation: MSE between student and (detached) teacher features.

    Args:
        student, teacher: ``B x ...`` feature maps of the same shape (e.g. ``B x C x h x w``).
        sample_mask: optional bool ``B``; only these samples count.
    """
    check_same_shape(student, teacher, "student", "teacher")
    teacher = teacher.detach()
    if sample_mask is None:
        return F.mse_loss(student, teacher)
    if sample_mask.shape != student.shape[:1]:
        raise ValueError(f"sample_mask must be B = ({student.shape[0]},), got {tuple(sample_mask.shape)}")
    sample_mask = sample_mask.bool()
    if not sample_mask.any():
        return zero_like_graph(student)
    return F.mse_loss(student[sample_mask], teacher[sample_mask])
