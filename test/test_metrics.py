"""Confusion matrix, IoU, mIoU conventions and the expected mIoU over subsets."""
from __future__ import annotations

import math

import pytest
import torch

from rmmss_core.eval.metrics import (
    ConfusionMatrix,
    expected_miou,
    iou_per_class,
    miou,
    pixel_accuracy,
    subset_weights,
)
from rmmss_core.modalities import SUBSET_NAMES


def _cm():
    cm = ConfusionMatrix(4)
    label = torch.tensor([[0, 0, 1, 1], [2, 255, 255, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [1, 3, 0, 0]])
    cm.update(pred, label)
    return cm


def test_confusion_counts_non_ignore_pixels():
    m = _cm().matrix
    assert m.dtype == torch.int64 and int(m.sum()) == 6
    want = torch.zeros(4, 4, dtype=torch.int64)
    want[0, 0], want[0, 1], want[1, 1], want[2, 1] = 2, 1, 2, 1
    assert torch.equal(m, want)


def test_iou_conventions_by_hand():
    m = _cm().matrix
    iou = iou_per_class(m)
    # class 0: tp 2, union 2+1 = 3 ; class 1: tp 2, union 4 ; class 2: tp 0, union 1 ; class 3: absent
    assert iou[:3].tolist() == pytest.approx([2 / 3, 0.5, 0.0])
    assert math.isnan(iou[3])
    assert miou(m) == pytest.approx((2 / 3 + 0.5 + 0) / 4)
    assert miou(m, "nanmean") == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert pixel_accuracy(m) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="convention"):
        miou(m, "mean")


def test_streaming_equals_one_shot_and_merge():
    label = torch.randint(0, 5, (4, 8, 8))
    label[0, :2] = 255
    pred = torch.randint(0, 5, (4, 8, 8))
    one = ConfusionMatrix(5)
    one.update(pred, label)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(pred[:1], label[:1])
    a.update(pred[1:3], label[1:3])
    b.update(pred[3:], label[3:])
    a.merge(b)
    assert torch.equal(a.matrix, one.matrix)
    perfect = ConfusionMatrix(5)
    perfect.update(label.clamp(max=4), label)
    s = perfect.summary()
    assert s["miou"] == pytest.approx(1.0) and s["pixel_acc"] == pytest.approx(1.0)


def test_confusion_rejects_bad_ids():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="pred"):
        cm.update(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="label"):
        cm.update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0]))


def test_summary_marks_absent_classes_none():
    s = _cm().summary()
    assert s["iou"][3] is None and s["pixels"] == 6


def test_present_class_miou_leaves_out_classes_absent_from_the_truth():
    cm = ConfusionMatrix(5)
    cm.update(torch.tensor([0, 3, 1]), torch.tensor([0, 0, 1]))   # class 3 predicted, never true
    m = cm.matrix
    # IoU: class 0 1/2, class 1 1, class 3 0 (predicted only), classes 2 and 4 absent from both
    assert miou(m) == pytest.approx(1.5 / 5)                       # DELIVER: absent ones count 0
    assert miou(m, "nanmean") == pytest.approx(1.5 / 3)            # class 3 still counts
    assert miou(m, "present") == pytest.approx(1.5 / 2)            # only classes 0 and 1 are in the truth
    s = cm.summary()
    assert s["present"] == [0, 1] and s["miou_present"] == pytest.approx(0.75)
    assert math.isnan(miou(torch.zeros(3, 3, dtype=torch.int64), "present"))


def test_expected_miou_weights():
    w = subset_weights(0.2)
    assert len(w) == 15 and sum(w.values()) == pytest.approx(1.0)
    z = 1 - 0.2 ** 4                                      # the empty subset's mass is renormalised out
    assert w["RDEL"] == pytest.approx(0.8 ** 4 / z)
    assert w["R"] == pytest.approx(0.2 ** 3 * 0.8 / z)
    assert w["RD"] == pytest.approx(0.2 ** 2 * 0.8 ** 2 / z)
    constant = {n: 0.42 for n in SUBSET_NAMES}
    assert expected_miou(constant, 0.1) == pytest.approx(0.42)
    per = {n: float(len(n)) for n in SUBSET_NAMES}      # mIoU = number of modalities
    # E[#available | non-empty] = 4 (1-p) / (1 - p^4)
    assert expected_miou(per, 0.05) == pytest.approx(4 * 0.95 / (1 - 0.05 ** 4))
    assert expected_miou(per, 0.2) < expected_miou(per, 0.05)
    with pytest.raises(ValueError, match="RDEL"):
        expected_miou({n: 1.0 for n in SUBSET_NAMES[:-1]}, 0.1)
