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


def _sum_dtype(features: torch.Tensor) -> torch.dtype:
    """The dtype class sums and centres are computed in: the features' own for float32 / float64
    (float64 inputs give float64 centres, as the authors' formula evaluated in float64), float32
    for half types."""
    return features.dtype if features.dtype in (torch.float32, torch.float64) else torch.float32


def _one_hot(label: torch.Tensor, num_classes: int, ignore_index: int,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``B x h x w`` ids -> ``B x K x (h*w)`` one-hot in ``dtype``; ignore (and out-of-range) pixels are 0."""
    flat = label.flatten(1)
    valid = (flat != ignore_index) & (flat >= 0) & (flat < num_classes)
    bad = flat[(flat != ignore_index) & ~valid]
    if bad.numel():
        raise ValueError(f"label holds class id {int(bad[0])} outside 0..{num_classes - 1}")
    onehot = F.one_hot(flat.clamp(0, num_classes - 1), num_classes) * valid[..., None]
    return onehot.transpose(1, 2).to(dtype)


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
    onehot = _one_hot(resize_label(label, tuple(features.shape[2:])), num_classes, ignore_index,
                     _sum_dtype(features))
    if sample_mask is not None:
        if sample_mask.shape != features.shape[:1]:
            raise ValueError(f"sample_mask must be B = ({features.shape[0]},), got {tuple(sample_mask.shape)}")
        onehot = onehot * sample_mask.to(onehot.device, onehot.dtype)[:, None, None]
    sums = torch.einsum("bkn,bcn->kc", onehot, features.flatten(2).to(onehot.dtype))
    counts = onehot.sum(dim=(0, 2))
    present = counts > 0
    return sums / counts.clamp(min=1)[:, None], present


def image_prototypes(features: torch.Tensor, label: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Class prototypes of every image separately: ``B x C x h x w`` -> (``B x K x C``, present ``B x K``).

    All K rows are kept; a class absent from an image has a zero row, as the authors'
    ``calculate_batch_prototypes`` (RobustSeg/UMMSS@de81cfd:mmkd/Prototype.py, called per image by
    mmkd/PCUMD.py:13-34, which RobustSeg/RobustSeg@5898146:tools/train_deliver_mad50_proto_cur_reg.py:32
    imports) returns; the division by the pixel count happens once. Sums and centres are computed
    in the features' dtype (float64 in, float64 out).
    """
    check_dim(features, 4, "features", "B x C x h x w")
    if label.shape[0] != features.shape[0]:
        raise ValueError(f"label batch {label.shape[0]} != features batch {features.shape[0]}")
    onehot = _one_hot(resize_label(label, tuple(features.shape[2:])), num_classes, ignore_index,
                     _sum_dtype(features))  # B x K x N
    sums = torch.einsum("bkn,bcn->bkc", onehot, features.flatten(2).to(onehot.dtype))
    counts = onehot.sum(dim=2)
    return sums / counts.clamp(min=1)[..., None], counts > 0


def image_prototype_kd(student_prototypes: torch.Tensor, teacher_prototypes: torch.Tensor,
                       present: torch.Tensor | None = None) -> torch.Tensor:
    """Per image KL(teacher || student) over the class axis of ``B x K x C`` prototypes -> ``B``.

    ``present is None`` (the authors): all K rows take part (absent classes as zero rows) and the
    KL is ``KLDivLoss(reduction='mean')`` over the ``K*C`` elements (RobustSeg/UMMSS@de81cfd:
    mmkd/PCUMD.py:11,38-40). With ``present`` (bool ``B x K``, our reading): only the present rows
    take part in the softmax, the KL is summed over classes and averaged over channels (an image
    with fewer than two present classes gives 0).
    """
    check_dim(student_prototypes, 3, "student_prototypes", "B x K x C")
    if student_prototypes.shape != teacher_prototypes.shape:
        raise ValueError(f"student_prototypes {tuple(student_prototypes.shape)} != "
                         f"teacher_prototypes {tuple(teacher_prototypes.shape)}")
    t_in = teacher_prototypes.detach()
    if present is None:
        log_s = F.log_softmax(student_prototypes, dim=1)
        log_t = F.log_softmax(t_in, dim=1)
        return (log_t.exp() * (log_t - log_s)).mean(dim=(1, 2))
    present = present.bool()
    neg = torch.finfo(student_prototypes.dtype).min
    keep = present[:, :, None]
    log_s = F.log_softmax(student_prototypes.masked_fill(~keep, neg), dim=1)
    log_t = F.log_softmax(t_in.masked_fill(~keep, neg), dim=1)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~keep, 0.0).sum(dim=1).mean(dim=1)
    return torch.where(present.sum(dim=1) >= 2, kl, torch.zeros_like(kl))


def prototype_kd_loss(student_prototypes: torch.Tensor, teacher_prototypes: torch.Tensor,
                      present: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """L_proto (RMMSS HPDM, cross-modal prototype distillation) for one modality pair.

    The student's prototypes of modality A are matched to the teacher's prototypes of a paired
    modality B (``recipes/rmmss_hpdm.proto_loss`` chooses the pairing): for every channel, the
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
    """For each modality A of the first list, one of the second list drawn uniformly: ``[(A, B), ...]``.

    L_proto's ``pairing="random"`` calls it with the teacher's modalities first (for every teacher
    slot a student slot at random, as RobustSeg/UMMSS@de81cfd:mmkd/PCUMD_zero_padding_random.py:19-24
    does) and swaps each pair back to (student, teacher).
    """
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
    (similarity ``B x (h*w)``, valid bool ``B x (h*w)``; invalid (ignore) pixels have similarity 0).
    """
    check_dim(features, 4, "features", "B x C x h x w")
    onehot = _one_hot(resize_label(label, tuple(features.shape[2:])), num_classes, ignore_index,
                      _sum_dtype(features))
    centres = _per_sample_centres(features, onehot)
    sim = F.cosine_similarity(features.flatten(2), centres.to(features.dtype), dim=1, eps=1e-8)
    return sim, onehot.sum(dim=1) > 0


IFV_SOFTMAX = ("row", "flat")


def ifv_kd_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, label: torch.Tensor,
                num_classes: int, temperature: float = 2.0,
                ignore_index: int = IGNORE_INDEX, softmax: str = "row") -> torch.Tensor:
    """L_ifv (RMMSS HPDM, intra-class feature variation distillation).

    Each pixel's cosine similarity to its class centre gives an ``h x w`` map for teacher and
    student (``intra_class_similarity``); the loss is ``T^2 * KL(softmax(map_t / T) || softmax(map_s / T))``.

    ``softmax="row"`` (default, the authors' RMMSS mmkd/IFV.py as METHODS.md records it; that
    repository cannot be fetched here): the softmax runs along each row (over w) and
    ``KLDivLoss('batchmean')`` over a ``1 x h x w`` map sums the h row KLs; ignore pixels stay in
    with similarity 1; the per-image sums are averaged over images (so the loss grows with h).
    ``softmax="flat"`` (our reading): one softmax over all positions of an image, ignore pixels
    excluded, averaged over images.

    Args:
        student_features: ``B x C_s x h x w``; teacher_features: ``B x C_t x h x w``.
        label: ``B x H x W`` class ids.
    """
    if softmax not in IFV_SOFTMAX:
        raise ValueError(f"ifv softmax must be one of {IFV_SOFTMAX}, got {softmax!r}")
    check_dim(student_features, 4, "student_features", "B x C x h x w")
    check_dim(teacher_features, 4, "teacher_features", "B x C x h x w")
    if (student_features.shape[0], *student_features.shape[2:]) != \
            (teacher_features.shape[0], *teacher_features.shape[2:]):
        raise ValueError(f"student_features {tuple(student_features.shape)} and teacher_features "
                         f"{tuple(teacher_features.shape)} differ in batch or spatial size")
    sim_s, valid = intra_class_similarity(student_features, label, num_classes, ignore_index)
    sim_t, _ = intra_class_similarity(teacher_features.detach(), label, num_classes, ignore_index)
    if softmax == "row":
        b, (h, w) = sim_s.shape[0], student_features.shape[2:]
        one = torch.ones((), dtype=sim_s.dtype, device=sim_s.device)
        map_s = torch.where(valid, sim_s, one).reshape(b, h, w)
        map_t = torch.where(valid, sim_t, one).reshape(b, h, w)
        log_s = F.log_softmax(map_s / temperature, dim=2)
        log_t = F.log_softmax(map_t / temperature, dim=2)
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=(1, 2))
        return kl.mean() * temperature ** 2
    rows = valid.any(dim=1)
    if not rows.any():
        return zero_like_graph(student_features)
    neg = torch.finfo(sim_s.dtype).min
    log_s = F.log_softmax((sim_s / temperature).masked_fill(~valid, neg), dim=1)
    log_t = F.log_softmax((sim_t / temperature).masked_fill(~valid, neg), dim=1)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~valid, 0.0).sum(dim=1)
    return kl[rows].mean() * temperature ** 2
