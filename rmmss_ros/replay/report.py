"""Replay / demo results: mIoU per availability pattern, frames emitted vs. expected, latency,
and (when the confidence is given) its calibration per pattern.

:class:`ReplayStats` accumulates one record per emitted frame set (shared by ``rmmss replay`` and the
live ``rmmss demo`` monitor) and writes ``<stem>.json``, ``<stem>.md``, a timeline plot, a bar
chart of mIoU per pattern, overlay images (RGB | prediction | ground truth) and, for frames with a
confidence image, a reliability diagram with the expected calibration error per sensor subset
(rmmss_ros.replay.calibration).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmmss_core.eval.metrics import ConfusionMatrix
from rmmss_core.modalities import MODALITIES, SUBSET_NAMES, subset_name
from rmmss_core.utils.io import atomic_write_json, atomic_write_text
from rmmss_ros.replay.calibration import Calibration, plot_reliability


def pattern_name(present: Sequence[bool]) -> str:
    """``(True, False, True, True)`` -> ``"REL"``; ``"none"`` when nothing is present."""
    return subset_name(list(map(bool, present))) if any(present) else "none"


@dataclass
class ReplayStats:
    """Per frame: bag time, present sensors, latency; confusion matrices overall and per pattern."""

    num_classes: int
    palette: Sequence[Sequence[int]]
    ignore_index: int = 255
    max_overlays: int = 6
    expected: int = 0
    times_s: list[float] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    frame_acc: list[float] = field(default_factory=list)
    unlabeled: int = 0
    no_mask: list[float] = field(default_factory=list)  # bag times of frame sets without a usable sensor
    overlays: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.total = ConfusionMatrix(self.num_classes, self.ignore_index)
        self.per_pattern: dict[str, ConfusionMatrix] = {}
        self.calibration: dict[str, Calibration] = {}  # pattern -> counters (frames with a confidence)

    @property
    def emitted(self) -> int:
        return len(self.times_s)

    def add(self, t_s: float, present: Sequence[bool], mask: np.ndarray, label: np.ndarray | None,
            latency_s: float | None = None, rgb: np.ndarray | None = None,
            confidence: np.ndarray | None = None) -> None:
        """One emitted mask ``H x W`` (class ids) at bag time ``t_s`` with its ground truth and,
        optionally, its published confidence ``H x W`` uint8."""
        name = pattern_name(present)
        self.times_s.append(float(t_s))
        self.patterns.append(name)
        self.latencies_s.append(float("nan") if latency_s is None else float(latency_s))
        if label is None:
            self.unlabeled += 1
            self.frame_acc.append(float("nan"))
            return
        pred = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
        lab = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
        if pred.shape != lab.shape:
            raise ValueError(f"mask {tuple(pred.shape)} and label {tuple(lab.shape)} differ in size at t={t_s:.3f}s")
        self.total.update(pred, lab)
        self.per_pattern.setdefault(name, ConfusionMatrix(self.num_classes, self.ignore_index)).update(pred, lab)
        if confidence is not None:
            self.calibration.setdefault(name, Calibration()).update(
                np.asarray(mask), np.asarray(confidence), np.asarray(label), self.ignore_index)
        valid = lab != self.ignore_index
        self.frame_acc.append(float((pred[valid] == lab[valid]).float().mean()) if valid.any() else float("nan"))
        if rgb is not None and self._overlay_slot(name):
            self.overlays.append({"index": self.emitted - 1, "name": f"t={t_s:.1f}s sensors {name}",
                                  "pattern": name, "rgb": rgb, "preds": {"mask": mask}, "label": label})

    def _overlay_slot(self, pattern: str) -> bool:
        """Whether a frame of ``pattern`` gets an overlay: while there is room, yes; when full, a new
        pattern replaces the newest overlay of a pattern shown more than once (one per pattern
        first); when every pattern shown is shown once, or ``max_overlays`` is 0, no."""
        if self.max_overlays <= 0:
            return False
        if len(self.overlays) < self.max_overlays:
            return True
        shown = [o["pattern"] for o in self.overlays]
        if pattern in shown:
            return False
        repeats = [i for i, p in enumerate(shown) if shown.count(p) > 1]
        if not repeats:
            return False
        self.overlays.pop(repeats[-1])
        return True

    def running_miou(self) -> float:
        return float(self.total.summary()["miou"]) if self.total.matrix.sum() > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-ready results."""
        lat = np.array([v for v in self.latencies_s if v == v])
        per = {}
        order = {n: i for i, n in enumerate((*SUBSET_NAMES, "none"))}
        for name in sorted(set(self.patterns), key=lambda n: order.get(n, 99)):
            frames = self.patterns.count(name)
            cm = self.per_pattern.get(name)
            per[name] = {"frames": frames, **({"miou": cm.summary()["miou"], "pixel_acc": cm.summary()["pixel_acc"]}
                                              if cm is not None else {"miou": None, "pixel_acc": None})}
        tot = self.total.summary() if self.total.matrix.sum() > 0 else {"miou": None, "pixel_acc": None, "iou": []}
        return {
            "frames": {"expected": self.expected, "emitted": self.emitted, "unlabeled": self.unlabeled,
                       "no_sensor": len(self.no_mask),
                       "ratio": self.emitted / self.expected if self.expected else None},
            "miou": tot["miou"], "pixel_acc": tot["pixel_acc"], "iou_per_class": tot["iou"],
            "per_pattern": per,
            "latency_ms": {k: (float(np.percentile(lat, q)) * 1e3 if len(lat) else None)
                           for k, q in (("p50", 50), ("p90", 90), ("p99", 99))}
                          | {"max": float(lat.max()) * 1e3 if len(lat) else None},
            "calibration": self.calibration_summary(),
            "notes": list(self.notes),
        }

    def calibration_summary(self) -> dict[str, Any]:
        """ECE and reliability bins per pattern plus ``"all"`` ({} when no confidence was given)."""
        if not self.calibration:
            return {}
        order = {n: i for i, n in enumerate(SUBSET_NAMES)}
        total = Calibration()
        for c in self.calibration.values():
            total.merge(c)
        out = {"all": total.summary()}
        for name in sorted(self.calibration, key=lambda n: order.get(n, 99)):
            out[name] = self.calibration[name].summary()
        return out

    def write(self, out_dir: str | Path, stem: str = "replay", meta: dict[str, Any] | None = None) -> dict[str, Path]:
        """``<stem>.json``, ``<stem>.md`` and PNG figures in ``out_dir``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result = {"meta": meta or {}, **self.summary()}
        paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
        atomic_write_json(paths["json"], result)
        paths.update(self._plots(out, stem))
        atomic_write_text(paths["md"], markdown(result, {k: p.name for k, p in paths.items()}))
        return paths

    def _plots(self, out: Path, stem: str) -> dict[str, Path]:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from rmmss_core.eval.plots import plot_overlays

        paths: dict[str, Path] = {}
        if self.emitted:
            fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, height_ratios=(1, 1.4))
            t = np.array(self.times_s)
            for i in range(len(MODALITIES)):
                on = np.array([p != "none" and "RDEL"[i] in p for p in self.patterns], dtype=bool)
                ax0.scatter(t[on], np.full(on.sum(), i), s=6, marker="s", color="tab:green")
                ax0.scatter(t[~on], np.full((~on).sum(), i), s=6, marker="s", color="tab:red")
            ax0.set_yticks(range(4), MODALITIES)
            ax0.set_title("sensors present (green) / missing (red) per emitted frame", fontsize=9)
            ax1.plot(t, np.array(self.frame_acc) * 100, ".", ms=3, label="pixel accuracy %")
            ax1.plot(t, np.array(self.latencies_s) * 1e3, ".", ms=3, label="latency ms")
            ax1.set_xlabel("bag time (s)")
            ax1.legend(fontsize=8)
            fig.tight_layout()
            paths["timeline"] = out / f"{stem}_timeline.png"
            fig.savefig(paths["timeline"], dpi=110)
            plt.close(fig)
        per = self.summary()["per_pattern"]
        names = [n for n, v in per.items() if v["miou"] is not None]
        if names:
            fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 3))
            ax.bar(names, [per[n]["miou"] * 100 for n in names], color="tab:blue")
            for i, n in enumerate(names):
                ax.text(i, per[n]["miou"] * 100, f"{per[n]['frames']}f", ha="center", va="bottom", fontsize=7)
            ax.set_ylabel("mIoU %")
            ax.set_title("mIoU per availability pattern (f = frames)", fontsize=9)
            fig.tight_layout()
            paths["patterns"] = out / f"{stem}_patterns.png"
            fig.savefig(paths["patterns"], dpi=110)
            plt.close(fig)
        cal = self.calibration_summary()
        if cal:
            paths["reliability"] = plot_reliability(cal, out / f"{stem}_reliability.png",
                                                    title="confidence vs accuracy per sensor subset")
        if self.overlays:
            recs = sorted(self.overlays, key=lambda o: o["index"])
            paths["overlays"] = plot_overlays(recs, self.palette, out / f"{stem}_overlays.png",
                                              title="camera | predicted mask (with the sensors present) | ground truth")
        return paths


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def markdown(result: dict[str, Any], figures: dict[str, str]) -> str:
    """The Markdown report of a :meth:`ReplayStats.write` result."""
    f, lat, meta = result["frames"], result["latency_ms"], result.get("meta", {})
    lines = ["# rmmss replay report", ""]
    lines += [f"- {k}: `{v}`" for k, v in meta.items()]
    ratio = "-" if f["ratio"] is None else f"{100 * f['ratio']:.1f}%"
    lines += ["", f"**mIoU {_pct(result['miou'])}%**, pixel accuracy {_pct(result['pixel_acc'])}%, "
              f"frames emitted {f['emitted']} / expected {f['expected']} ({ratio}), unlabeled {f['unlabeled']}", "",
              "| latency | p50 | p90 | p99 | max |", "| --- | --- | --- | --- | --- |",
              "| ms | " + " | ".join("-" if lat[k] is None else f"{lat[k]:.1f}" for k in ("p50", "p90", "p99", "max"))
              + " |", "", "## mIoU per availability pattern", "",
              "| pattern | frames | mIoU % | pixel acc % |", "| --- | --- | --- | --- |"]
    for name, v in result["per_pattern"].items():
        lines.append(f"| {name} | {v['frames']} | {_pct(v['miou'])} | {_pct(v['pixel_acc'])} |")
    cal = result.get("calibration") or {}
    if cal:
        lines += ["", "## Confidence calibration", "",
                  "Expected calibration error (15 bins): the pixel-weighted gap between the published confidence "
                  "and the accuracy; 0 = the confidence is the probability of being right.", "",
                  "| pattern | pixels | ECE % | mean confidence % | accuracy % | refused (255) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, v in cal.items():
            lines.append(f"| {name} | {v['pixels']} | {_pct(v['ece'])} | {_pct(v['mean_confidence'])} | "
                         f"{_pct(v['accuracy'])} | {v['refused']} |")
    for note in result.get("notes", []):
        lines += ["", f"> {note}"]
    for key in ("patterns", "timeline", "reliability", "overlays"):
        if key in figures:
            lines += ["", f"![{key}]({figures[key]})"]
    return "\n".join(lines) + "\n"


def load_result(path: str | Path) -> dict[str, Any]:
    """Read back a ``<stem>.json``."""
    return json.loads(Path(path).read_text())
