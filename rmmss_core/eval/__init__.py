"""Evaluation: metrics, the EMM / RMM / NM protocols, reports and plots (docs/METHODS.md)."""
from rmmss_core.eval.metrics import (
    ConfusionMatrix,
    expected_miou,
    iou_per_class,
    miou,
    pixel_accuracy,
    subset_weights,
)
from rmmss_core.eval.protocols import Condition, EvalRun, Evaluator, build_conditions, evaluate

__all__ = [
    "Condition", "ConfusionMatrix", "EvalRun", "Evaluator", "build_conditions", "evaluate",
    "expected_miou", "iou_per_class", "miou", "pixel_accuracy", "subset_weights",
]
