"""RMMSS stage 1, HPDM (hybrid prototype distillation): prototypes, L_proto and L_ifv.

RMMSS code: ``L = OHEM-CE + 50 KL(teacher logits || student logits) + 100 L_proto + 12 L_ifv``.
Teacher tensors are always detached.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.losses._common import check_dim, zero_like_graph


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of a ``B x H x W`` label map to ``size`` = (h, w)."""
    check_dim(label, 3, "label", "B x H x W")
    if tuple(label.shape[1:]) == tuple(size):
        return label
    return F.interpolate(label[:, None].float(), size=size, mode="nearest")[:, 0].long()


def _one_hot(label: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """``B x h x w`` ids -> float ``B x K x (h*w)`` one-hot; ignore (and out-of-range) pixels are 0."""
    flat = label.flatten(1)
    valid = (flat != ignore_index) & (flat >= 0) & (flat < num_classes)
    bad = flat[(flat != ignore_index) & ~valid]
    if bad.numel():
        raise ValueError(f"label holds class id {int(bad[0])} outside 0..{num_classes - 1}")
    onehot = F.one_hot(flat.clamp(0, num_classes - 1), num_classes) * valid[..., None]
    return onehot.transpose(1, 2).float()


def class_prototypes(features: torch.Tensor, label: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX,
                     sample_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class prototypes (RMMSS HPDM): the mean feature of each class present in the batch.

    Labels are resized (nearest) to the feature size; ignore pixels are excluded; the sum of
    features per class is divided once by its pixel count (the public code's double division is
    a bug and is not reproduced).

    Args:
        features: ``B x C x h x w``.
        label: ``B x H x W`` class ids.
        sample_mask: optional bool ``B``: only these samples contribute (e.g. those where the
            modality is available).
    Returns:
        prototypes ``K x C`` (zeros for absent classes) and ``present`` bool ``K``.
    """
    check_dim(features, 4, "features", "B x C x h x w")
    if label.shape[0] != features.shape[0]:
        raise ValueError(f"label batch {label.shape[0]} != features batch {features.shape[0]}")
    onehot = _one_hot(resize_label(label, tuple(features.shape[2:])), num_classes, ignore_index)
    if sample_mask is not None:
        if sample_mask.shape != features.shape[:1]:
            raise ValueError(f"sample_mask must be B = ({features.shape[0]},), got {tuple(sample_mask.shape)}")
        onehot = onehot * sample_mask.to(onehot.device).float()[:, None, None]
    sums = torch.einsum("bkn,bcn->kc", onehot, features.flatten(2).to(onehot.dtype))
    counts = onehot.sum(dim=(0, 2))
    present = counts > 0
    return sums / counts.clamp(min=1)[:, None], present


def prototype_kd_loss(student_prototypes: torch.Tensor, teacher_prototypes: torch.Tensor,
                      present: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """L_proto (RMMSS HPDM, cross-modal prototype distillation) for one modality pair.

    The student's prototypes of modality A are matched to the teacher's prototypes of a randomly
    paired modality B (``random_modality_pairs`` draws the pairing): for every channel, the
    distributions over the present classes (softmax along the class axis) are compared with
    KL(teacher || student), averaged over channels.

    Args:
        student_prototypes, teacher_prototypes: ``K x C`` (from ``class_prototypes``).
        present: bool ``K``, classes present in both (others are left out of the softmax).
    Returns 0 (attached to the graph) when fewer than two classes are present.
    """
    check_dim(student_prototypes, 2, "student_prototypes", "K x C")
    if student_prototypes.shape != teacher_prototypes.shape:
        raise ValueError(f"student_prototypes {tuple(student_prototypes.shape)} != "
                         f"teacher_prototypes {tuple(teacher_prototypes.shape)}")
    if present.shape != student_prototypes.shape[:1]:
        raise ValueError(f"present must be K = ({student_prototypes.shape[0]},), got {tuple(present.shape)}")
    present = present.bool()
    if int(present.sum()) < 2:
        return zero_like_graph(student_prototypes)
    s = F.log_softmax(student_prototypes[present] / temperature, dim=0)
    t = F.log_softmax(teacher_prototypes.detach()[present] / temperature, dim=0)
    return (t.exp() * (t - s)).sum(dim=0).mean()


def random_modality_pairs(student_modalities: Sequence[int], teacher_modalities: Sequence[int],
                          generator: torch.Generator | None = None) -> list[tuple[int, int]]:
    """For each student modality A, a teacher modality B drawn uniformly: ``[(A, B), ...]``."""
    teacher_modalities = list(teacher_modalities)
    if not teacher_modalities:
        raise ValueError("teacher_modalities is empty")
    draws = torch.randint(len(teacher_modalities), (len(student_modalities),), generator=generator)
    return [(int(a), teacher_modalities[int(j)]) for a, j in zip(student_modalities, draws, strict=True)]


def _per_sample_centres(features: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """Each pixel's class centre (mean feature of its class in its own image): ``B x C x N``."""
    flat = features.flatten(2)                                        # B x C x N
    sums = torch.einsum("bkn,bcn->bck", onehot, flat.to(onehot.dtype))  # B x C x K
    centres = sums / onehot.sum(dim=2).clamp(min=1)[:, None, :]
    return centres @ onehot                                           # B x C x N


def intra_class_similarity(features: torch.Tensor, label: torch.Tensor, num_classes: int,
                           ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """IFV map: each pixel's cosine similarity to its class centre in its own image.

    ``features`` ``B x C x h x w``, ``label`` ``B x H x W`` (resized nearest) ->
    (similarity ``B x (h*w)``, valid bool ``B x (h*w)``).
    """
    check_dim(features, 4, "features", "B x C x h x w")
    onehot = _one_hot(resize_label(label, tuple(features.shape[2:])), num_classes, ignore_index)
    centres = _per_sample_centres(features, onehot)
    sim = F.cosine_similarity(features.flatten(2), centres.to(features.dtype), dim=1, eps=1e-8)
    return sim, onehot.sum(dim=1) > 0


def ifv_kd_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, label: torch.Tensor,
                num_classes: int, temperature: float = 2.0,
                ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """L_ifv (RMMSS HPDM, intra-class feature variation distillation).

    Each pixel's cosine similarity to its class centre gives a map for teacher and student
    (``intra_class_similarity``); the loss is ``T^2 * KL(softmax(map_t / T) || softmax(map_s / T))``
    with softmaxes over the spatial positions of one image (ignore pixels excluded), averaged over
    images. Channel counts of student and teacher may differ; spatial sizes must match.

    Args:
        student_features: ``B x C_s x h x w``; teacher_features: ``B x C_t x h x w``.
        label: ``B x H x W`` class ids.
    """
    check_dim(student_features, 4, "student_features", "B x C x h x w")
    check_dim(teacher_features, 4, "teacher_features", "B x C x h x w")
    if (student_features.shape[0], *student_features.shape[2:]) != \
            (teacher_features.shape[0], *teacher_features.shape[2:]):
        raise ValueError(f"student_features {tuple(student_features.shape)} and teacher_features "
                         f"{tuple(teacher_features.shape)} differ in batch or spatial size")
    sim_s, valid = intra_class_similarity(student_features, label, num_classes, ignore_index)
    sim_t, _ = intra_class_similarity(teacher_features.detach(), label, num_classes, ignore_index)
    rows = valid.any(dim=1)
    if not rows.any():
        return zero_like_graph(student_features)
    neg = torch.finfo(sim_s.dtype).min
    log_s = F.log_softmax((sim_s / temperature).masked_fill(~valid, neg), dim=1)
    log_t = F.log_softmax((sim_t / temperature).masked_fill(~valid, neg), dim=1)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~valid, 0.0).sum(dim=1)
    return kl[rows].mean() * temperature ** 2
