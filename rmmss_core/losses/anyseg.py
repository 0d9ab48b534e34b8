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
             valid: torch.Tensor | None = None) -> torch.Tensor:
    """L_mad (AnySeg, multi-modal distillation of predictions).

    Per pixel KL(teacher || student) between the class distributions (softmax over K), averaged
    over pixels. ``student_logits`` / ``teacher_logits``: ``B x K x H x W``; ``valid``: optional
    bool ``B x H x W``.
    """
    check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
    return pixel_kl(student_logits, teacher_logits, 1.0, valid)


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


def umd_loss(student_features: torch.Tensor | Sequence[torch.Tensor],
             teacher_features: torch.Tensor | Sequence[torch.Tensor], available: torch.Tensor,
             modalities: Sequence[int] | None = None, temperature: float = 1.0) -> torch.Tensor:
    """L_umd (AnySeg, uni-modal distillation of features).

    For each stage and each (sample, modality) pair that is available to the student (and among
    ``modalities`` when given), the KL(teacher || student) between the feature distributions of
    that same modality: softmax over the channel axis at every pixel, averaged over pixels, then
    over the pairs, then over stages.

    Args:
        student_features, teacher_features: per stage ``B x M x C_s x H_s x W_s`` (one tensor or a list).
        available: bool ``B x M``, the student's availability mask.
        modalities: optional indices of the selected modalities (default: all).
    Returns 0 (attached to the graph) when no pair is available.
    """
    s_stages, t_stages = _paired_stages(student_features, teacher_features)
    losses = []
    for i, (s, t) in enumerate(zip(s_stages, t_stages, strict=True)):
        _check_stage(s, t, available, i)
        sel = _selected(available.to(s.device), modalities)
        if not sel.any():
            continue
        losses.append(pixel_kl(s[sel], t[sel], temperature, None, dim=1))  # N x C x H x W
    if not losses:
        return zero_like_graph(s_stages[0])
    return torch.stack(losses).mean()


def modality_similarity(features: torch.Tensor) -> torch.Tensor:
    """Cosine similarities among modalities: ``B x M x C x H x W`` -> ``B x M x M``.

    Each modality's feature map is flattened to one vector of ``C * H * W`` values.
    """
    flat = F.normalize(features.flatten(2), dim=2, eps=1e-8)
    return flat @ flat.transpose(1, 2)


def cmd_loss(student_features: torch.Tensor | Sequence[torch.Tensor],
             teacher_features: torch.Tensor | Sequence[torch.Tensor],
             available: torch.Tensor) -> torch.Tensor:
    """L_cmd (AnySeg, cross-modal distillation).

    Per stage, the matrix of cosine similarities among the student's modality features
    (``modality_similarity``: each modality's ``C x H x W`` map flattened) should match the
    teacher's: MSE over the off-diagonal entries ``(i, j)`` whose modalities are both available
    to the student (samples with fewer than two available modalities contribute nothing), then
    mean over stages. Invariant to a positive rescaling of any modality's features.

    Args:
        student_features, teacher_features: per stage ``B x M x C_s x H_s x W_s``.
        available: bool ``B x M``, the student's availability mask.
    """
    s_stages, t_stages = _paired_stages(student_features, teacher_features)
    losses = []
    for i, (s, t) in enumerate(zip(s_stages, t_stages, strict=True)):
        _check_stage(s, t, available, i)
        avail = available.to(s.device).bool()
        pairs = avail[:, :, None] & avail[:, None, :]
        pairs &= ~torch.eye(avail.shape[1], dtype=torch.bool, device=s.device)
        if not pairs.any():
            continue
        diff = modality_similarity(s) - modality_similarity(t.detach())
        losses.append(diff[pairs].pow(2).mean())
    if not losses:
        return zero_like_graph(s_stages[0])
    return torch.stack(losses).mean()
