"""Is the published confidence honest? Reliability diagram and expected calibration error (ECE).

Per labelled pixel the published confidence ``c`` (uint8, ``c / 255`` = the winning class's softmax
probability, rmmss_core.deploy.confidence) is binned into ``bins`` equal-width bins of [0, 1]; per
bin the mean confidence and the accuracy (prediction == label) are compared. ECE is the
pixel-weighted mean gap ``sum_b n_b / N * |acc_b - conf_b|`` (Guo et al. 2017, "On Calibration of
Modern Neural Networks", 15 bins), one number per sensor subset: a model can be well calibrated
with all sensors and over-confident with the camera alone.

Pixels the ground truth ignores (``ignore_index``) and pixels the mask marks unlabeled (255, e.g.
below ``output.min_confidence``: no prediction to score) are left out; their count is kept.
Memory is a few counters per bin and pattern, whatever the number of frames.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmmss_core.deploy.confidence import SCALE, UNLABELED

DEFAULT_BINS = 15


@dataclass
class Calibration:
    """Counters of one sensor subset: per bin pixels, summed confidence, correct pixels."""

    bins: int = DEFAULT_BINS
    count: np.ndarray = field(init=False)
    conf_sum: np.ndarray = field(init=False)
    correct: np.ndarray = field(init=False)
    refused: int = 0  # labelled pixels the mask marked unlabeled (255)

    def __post_init__(self):
        self.count = np.zeros(self.bins, np.int64)
        self.conf_sum = np.zeros(self.bins, np.float64)
        self.correct = np.zeros(self.bins, np.int64)
        # uint8 level -> bin (level / 255 in [0, 1], the top edge belongs to the last bin)
        self._bin_of = np.minimum((np.arange(SCALE + 1) / SCALE * self.bins).astype(np.int64), self.bins - 1)

    def update(self, mask: np.ndarray, confidence: np.ndarray, label: np.ndarray, ignore_index: int = 255) -> None:
        """One frame: ``mask``, ``confidence`` (uint8) and ``label`` of the same ``H x W``."""
        if not (mask.shape == confidence.shape == label.shape):
            raise ValueError(f"mask {mask.shape}, confidence {confidence.shape} and label {label.shape} differ in size")
        valid = label != ignore_index
        predicted = mask != UNLABELED
        self.refused += int(np.count_nonzero(valid & ~predicted))
        keep = valid & predicted
        levels = confidence[keep].astype(np.int64)
        hits = (mask[keep] == label[keep]).astype(np.int64)
        level_count = np.bincount(levels, minlength=SCALE + 1)
        level_hits = np.bincount(levels, weights=hits, minlength=SCALE + 1)
        idx = self._bin_of
        self.count += np.bincount(idx, weights=level_count, minlength=self.bins).astype(np.int64)
        self.correct += np.bincount(idx, weights=level_hits, minlength=self.bins).astype(np.int64)
        self.conf_sum += np.bincount(idx, weights=level_count * np.arange(SCALE + 1) / SCALE, minlength=self.bins)

    def merge(self, other: Calibration) -> None:
        self.count += other.count
        self.conf_sum += other.conf_sum
        self.correct += other.correct
        self.refused += other.refused

    @property
    def pixels(self) -> int:
        return int(self.count.sum())

    def summary(self) -> dict[str, Any]:
        """``{"ece", "pixels", "refused", "mean_confidence", "accuracy", "bins": [{"lo", "hi",
        "pixels", "confidence", "accuracy"}]}``; ece etc. None without pixels."""
        n = self.pixels
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = self.conf_sum / self.count
            acc = self.correct / self.count
        rows = [{"lo": b / self.bins, "hi": (b + 1) / self.bins, "pixels": int(self.count[b]),
                 "confidence": float(conf[b]) if self.count[b] else None,
                 "accuracy": float(acc[b]) if self.count[b] else None} for b in range(self.bins)]
        if not n:
            return {"ece": None, "pixels": 0, "refused": self.refused, "mean_confidence": None,
                    "accuracy": None, "bins": rows}
        used = self.count > 0
        ece = float(np.sum(self.count[used] / n * np.abs(acc[used] - conf[used])))
        return {"ece": ece, "pixels": n, "refused": self.refused, "mean_confidence": float(self.conf_sum.sum() / n),
                "accuracy": float(self.correct.sum() / n), "bins": rows}


def plot_reliability(summaries: Mapping[str, Mapping[str, Any]], out: str | Path,
                     title: str = "reliability: confidence vs accuracy") -> Path:
    """A reliability diagram: accuracy per confidence bin, one line per sensor subset (ECE in the
    legend), the diagonal = perfect calibration, and a histogram of pixels per bin below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, s in summaries.items() if s.get("pixels")]
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5.2, 6.0), sharex=True, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], "--", color="0.6", lw=1, label="perfectly calibrated")
    width = 1.0 / max(len(names), 1)
    for k, name in enumerate(names):
        s = summaries[name]
        rows = [r for r in s["bins"] if r["pixels"]]
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", ms=3, lw=1.2,
                label=f"{name}: ECE {100 * s['ece']:.1f}%")
        bins = s["bins"]
        centers = np.array([(r["lo"] + r["hi"]) / 2 for r in bins])
        step = bins[0]["hi"] - bins[0]["lo"]
        frac = np.array([r["pixels"] for r in bins]) / s["pixels"]
        hx.bar(centers - step / 2 + step * width * (k + 0.5), frac, width=step * width, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    hx.set_xlabel("confidence (published ~/confidence / 255)")
    hx.set_ylabel("pixels")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
