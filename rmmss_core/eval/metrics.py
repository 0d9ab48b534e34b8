"""Segmentation metrics: streaming confusion matrix, IoU, mIoU (DELIVER convention, nan-mean and
over the classes present in the evaluated frames), pixel accuracy, and the expected mIoU over
missing-modality subsets (mIoU^E)."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.modalities import NUM_MODALITIES, SUBSET_NAMES, SUBSETS


class ConfusionMatrix:
    """Streaming ``K x K`` confusion matrix (rows: ground truth, columns: prediction), int64.

    ``update(pred, label)`` counts the non-ignore pixels with ``torch.bincount``; ignore pixels
    (``ignore_index``) are skipped. Predictions outside ``0..K-1`` raise.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: str | torch.device = "cpu"):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """pred, label: class ids of the same shape (e.g. ``B x H x W``)."""
        if pred.shape != label.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and label {tuple(label.shape)} differ in shape")
        k = self.num_classes
        pred = pred.to(self.matrix.device).long().flatten()
        label = label.to(self.matrix.device).long().flatten()
        keep = label != self.ignore_index
        pred, label = pred[keep], label[keep]
        if label.numel() and (label.min() < 0 or label.max() >= k):
            raise ValueError(f"label holds ids outside 0..{k - 1} (and not ignore {self.ignore_index})")
        if pred.numel() and (pred.min() < 0 or pred.max() >= k):
            raise ValueError(f"pred holds ids outside 0..{k - 1}")
        self.matrix += torch.bincount(label * k + pred, minlength=k * k).reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix.to(self.matrix.device)

    def summary(self) -> dict[str, object]:
        """JSON-ready metrics: miou (DELIVER), miou_nanmean, miou_present (over the classes with
        ground-truth pixels), present (their ids), pixel_acc, iou (per class, None where absent
        from both prediction and truth)."""
        iou = iou_per_class(self.matrix)
        return {"miou": miou(self.matrix), "miou_nanmean": miou(self.matrix, "nanmean"),
                "miou_present": miou(self.matrix, "present"),
                "present": present_classes(self.matrix).nonzero().flatten().tolist(),
                "pixel_acc": pixel_accuracy(self.matrix), "pixels": int(self.matrix.sum()),
                "iou": [None if v != v else float(v) for v in iou.tolist()]}


def iou_per_class(matrix: torch.Tensor) -> torch.Tensor:
    """``K x K`` confusion -> IoU per class ``K`` (float64); NaN where a class is absent from both
    prediction and truth (union 0)."""
    m = matrix.double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def present_classes(matrix: torch.Tensor) -> torch.Tensor:
    """Bool ``K``: the classes with ground-truth pixels in the counted frames (rows of the matrix)."""
    return matrix.sum(dim=1) > 0


MIOU_CONVENTIONS = ("deliver", "nanmean", "present")


def miou(matrix: torch.Tensor, convention: str = "deliver") -> float:
    """Mean IoU.

    ``deliver``: over the full class list; a class absent from both prediction and truth counts as
    IoU 0 (DELIVER / CMNeXt code, ``ious[ious.isnan()] = 0``). ``nanmean``: such classes are left
    out (a class predicted but absent from the truth still counts, with IoU 0). ``present``: over
    the classes with ground-truth pixels only (``present_classes``), whatever was predicted, so
    the value does not depend on how many classes the class list has but the data lacks. NaN when
    no class qualifies.
    """
    iou = iou_per_class(matrix)
    if convention == "deliver":
        return float(torch.nan_to_num(iou, nan=0.0).mean())
    if convention == "nanmean":
        return float(iou.nanmean())
    if convention == "present":
        keep = present_classes(matrix)
        return float(iou[keep].mean()) if keep.any() else float("nan")
    raise ValueError(f"unknown mIoU convention {convention!r}; use one of {MIOU_CONVENTIONS}")


def pixel_accuracy(matrix: torch.Tensor) -> float:
    """Correct / all non-ignore pixels (NaN for an empty matrix)."""
    total = matrix.sum()
    return float(matrix.diag().sum().double() / total) if total > 0 else float("nan")


def subset_weights(p: float, num_modalities: int = NUM_MODALITIES) -> dict[str, float]:
    """mIoU^E weights: ``p^#missing (1-p)^(M-#missing)`` per non-empty subset, renormalised to sum 1."""
    if not 0 <= p < 1:
        raise ValueError(f"missing probability p must be in [0, 1), got {p}")
    if num_modalities != NUM_MODALITIES:
        raise ValueError(f"subsets are defined for {NUM_MODALITIES} modalities, got {num_modalities}")
    raw = {name: p ** (num_modalities - len(s)) * (1 - p) ** len(s) for name, s in zip(SUBSET_NAMES, SUBSETS, strict=True)}
    total = sum(raw.values())
    return {name: w / total for name, w in raw.items()}


def expected_miou(per_subset: Mapping[str, float], p: float) -> float:
    """mIoU^E(p): per-subset mIoU (keys ``"R"``, ..., ``"RDEL"``, all 15) weighted by the
    probability of that subset when each modality is missing independently with probability p,
    renormalised over the 15 non-empty subsets."""
    missing = [n for n in SUBSET_NAMES if n not in per_subset]
    if missing:
        raise ValueError(f"expected_miou needs all 15 subsets; missing {missing}")
    return float(sum(w * float(per_subset[n]) for n, w in subset_weights(p).items()))
