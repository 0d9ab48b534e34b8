"""AnySeg (Zheng et al. 2024) distillation losses: L_mad, L_umd, L_cmd.

Student loss in AnySeg: ``L = L_sup + 50 L_mad + 5 L_umd + 10 L_cmd``. The teacher sees all
modalities; the student sees a subset given by the availability mask ``B x M``. Teacher tensors
are always detached, and modalities unavailable to the student contribute nothing.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rmmss_core.losses._common import as_stages, check_dim, check_same_shape, pixel_kl, zero_like_graph


def mad_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
             valid: torch.Tensor | None = None, reduction: str = "element") -> torch.Tensor:
    """L_mad (AnySeg, multi-modal distillation of predictions): KL(teacher || student) over classes.

    ``reduction="element"`` (default, the authors'): ``KLDivLoss(reduction='mean')`` of
    ``log_softmax(student)`` against ``softmax(teacher)``, i.e. the mean over all ``B*K*H*W``
    elements = the per-pixel KL averaged over pixels and divided by K
    (RobustSeg/RobustSeg@ea9add7:tools/train_deliver_mad50.py:65,128-130; weight 50 applies to this).
    ``reduction="pixel"`` (our former reading, K times stronger): the per-pixel KL averaged over pixels.

    Args:
        student_logits, teacher_logits: ``B x K x H x W``.
        valid: optional bool ``B x H x W`` of pixels to include.
    """
    check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
    return pixel_kl(student_logits, teacher_logits, 1.0, valid, reduction=reduction)


def _check_stage(s: torch.Tensor, t: torch.Tensor, available: torch.Tensor, i: int) -> None:
    check_dim(s, 5, f"student_features[{i}]", "B x M x C x H x W")
    check_same_shape(s, t, f"student_features[{i}]", f"teacher_features[{i}]")
    if available.shape != s.shape[:2]:
        raise ValueError(f"available must be B x M = {tuple(s.shape[:2])}, got {tuple(available.shape)}")


def _selected(available: torch.Tensor, modalities: Sequence[int] | None) -> torch.Tensor:
    """Availability ``B x M`` restricted to the selected modality indices."""
    available = available.bool()
    if modalities is None:
        return available
    keep = torch.zeros(available.shape[1], dtype=torch.bool, device=available.device)
    keep[list(modalities)] = True
    return available & keep


def _paired_stages(student_features, teacher_features) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Student and teacher features as lists of stages of equal length (ValueError otherwise)."""
    s_stages = as_stages(student_features, "student_features")
    t_stages = as_stages(teacher_features, "teacher_features")
    if len(s_stages) != len(t_stages):
        raise ValueError(f"{len(s_stages)} student stages but {len(t_stages)} teacher stages")
    return s_stages, t_stages


UMD_AXES = ("height", "channel")
STAGE_REDUCTIONS = ("sum", "mean")


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def umd_loss(student_features: torch.Tensor | Sequence[torch.Tensor],
             teacher_features: torch.Tensor | Sequence[torch.Tensor], available: torch.Tensor,
             modalities: Sequence[int] | None = None, temperature: float = 1.0,
             axis: str = "height", stages: str = "sum") -> torch.Tensor:
    """L_umd (AnySeg, uni-modal distillation of features): per stage and per (sample, modality)
    available to the student, KL(teacher || student) between the feature distributions of that
    same modality.

    Authors' definition (defaults ``axis="height"``, ``stages="sum"``;
    RobustSeg/RobustSeg@ea9add7:semseg/models/segformer/UMD.py:9-28): each ``C x H x W`` map is
    turned into a distribution by a softmax over its dim 1, i.e. the **H axis**; the KL is
    ``KLDivLoss(reduction='mean')`` (mean over the ``C*H*W`` elements); these are **summed** over
    the 4 stages and the selected modalities of every sample, and the sum is divided by B.

    Our readings, named options: ``axis="channel"`` (a softmax over C at every pixel, the KL summed
    over C and averaged over the pixels), ``stages="mean"`` (the mean over the (sample, modality)
    pairs, then over stages, instead of the sum / B).

    Args:
        student_features, teacher_features: per stage ``B x M x C_s x H_s x W_s`` (one tensor or a list).
        available: bool ``B x M``, the student's availability mask.
        modalities: optional indices of the selected modalities (default: all).
        temperature: softmax temperature (1 in the paper).
    Returns 0 (attached to the graph) when no pair is available.
    """
    _check_choice(axis, UMD_AXES, "umd axis")
    _check_choice(stages, STAGE_REDUCTIONS, "umd stage reduction")
    s_stages, t_stages = _paired_stages(student_features, teacher_features)
    batch = s_stages[0].shape[0]
    losses = []
    for i, (s, t) in enumerate(zip(s_stages, t_stages, strict=True)):
        _check_stage(s, t, available, i)
        sel = _selected(available.to(s.device), modalities)
        if not sel.any():
            continue
        s_sel, t_sel = s[sel], t[sel]                                   # N x C x H x W
        if axis == "height":    # softmax over dim 1 of a C x H x W map = H
            kl = pixel_kl(s_sel, t_sel, temperature, None, dim=2, reduction="element")
            # pixel_kl averages over all N pairs; the authors sum the pairs
            losses.append(kl * s_sel.shape[0] if stages == "sum" else kl)
        else:
            kl = pixel_kl(s_sel, t_sel, temperature, None, dim=1, reduction="pixel")
            losses.append(kl * s_sel.shape[0] if stages == "sum" else kl)
    if not losses:
        return zero_like_graph(s_stages[0])
    if stages == "sum":
        return torch.stack(losses).sum() / batch
    return torch.stack(losses).mean()


def modality_similarity(features: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Cosine similarities among modalities: ``B x M x C x H x W`` -> ``B x M x M``.

    ``per_channel=True`` (the authors' S(g^{i,j})): for every channel, the cosine between the two
    modalities' ``H*W`` maps, averaged over the channels
    (RobustSeg/RobustSeg@ea9add7:semseg/models/segformer/CMD.py:72-74, ``flatten(1)`` of a
    ``C x H x W`` map then ``cosine_similarity(dim=1).mean()``).
    ``per_channel=False`` (our former reading): each map flattened to one ``C*H*W`` vector.
    """
    if per_channel:
        unit = F.normalize(features.flatten(3), dim=3, eps=1e-8)          # B x M x C x HW
        return torch.einsum("bicn,bjcn->bij", unit, unit) / features.shape[2]
    flat = F.normalize(features.flatten(2), dim=2, eps=1e-8)
    return flat @ flat.transpose(1, 2)


def cmd_loss(student_features: torch.Tensor | Sequence[torch.Tensor],
             teacher_features: torch.Tensor | Sequence[torch.Tensor],
             available: torch.Tensor, per_channel: bool = True, stages: str = "sum") -> torch.Tensor:
    """L_cmd (AnySeg, cross-modal distillation).

    Per stage, the matrix of cosine similarities among the student's modality features
    (``modality_similarity``, per channel and averaged over channels by default, as the authors)
    should match the teacher's: MSE over the off-diagonal entries ``(i, j)`` whose modalities are
    both available to the student (samples with fewer than two available modalities contribute
    nothing). Stages are **summed** by default, as the authors sum the per-stage MSEs
    (RobustSeg/RobustSeg@ea9add7:semseg/models/segformer/CMD.py:30-37); ``stages="mean"`` averages.

    Not reproduced (documented in docs/METHODS-OURS.md): the authors' code builds one matrix over
    the selected modalities of *all samples accumulated so far* (cross-sample entries), compares
    ``log_softmax`` student features with ``softmax`` teacher features, counts the diagonal in the
    MSE and divides by B; we compare raw features within each sample.

    Args:
        student_features, teacher_features: per stage ``B x M x C_s x H_s x W_s``.
        available: bool ``B x M``, the student's availability mask.
    """
    _check_choice(stages, STAGE_REDUCTIONS, "cmd stage reduction")
    s_stages, t_stages = _paired_stages(student_features, teacher_features)
    losses = []
    for i, (s, t) in enumerate(zip(s_stages, t_stages, strict=True)):
        _check_stage(s, t, available, i)
        avail = available.to(s.device).bool()
        pairs = avail[:, :, None] & avail[:, None, :]
        pairs &= ~torch.eye(avail.shape[1], dtype=torch.bool, device=s.device)
        if not pairs.any():
            continue
        diff = modality_similarity(s, per_channel) - modality_similarity(t.detach(), per_channel)
        losses.append(diff[pairs].pow(2).mean())
    if not losses:
        return zero_like_graph(s_stages[0])
    return torch.stack(losses).sum() if stages == "sum" else torch.stack(losses).mean()
