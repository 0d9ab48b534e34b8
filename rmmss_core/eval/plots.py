"""PNG plots of an evaluation (matplotlib, Agg backend): per-subset bars and qualitative overlays."""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from rmmss_core.modalities import SUBSET_NAMES  # noqa: E402
from rmmss_core.utils.io import atomic_write_bytes  # noqa: E402


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_subset_bars(report: Mapping[str, Any], path: str | Path) -> Path:
    """Grouped bar chart: EMM mIoU (%) per subset (and the average), one bar colour per checkpoint;
    the authors' EMM (``emm``), or the told one (``emm_told``) for a checkpoint evaluated only so."""
    ckpts = {n: r.get("emm") or r["emm_told"] for n, r in report["checkpoints"].items()
             if "emm" in r or "emm_told" in r}
    if not ckpts:
        raise ValueError("the report has no EMM results to plot")
    told = {n for n, r in report["checkpoints"].items() if "emm" not in r and "emm_told" in r}
    present = set(next(iter(ckpts.values()))["subsets"])
    subsets = [s for s in SUBSET_NAMES if s in present]  # canonical order, whatever the JSON order
    groups = subsets + ["Avg"]
    x = np.arange(len(groups))
    width = 0.8 / len(ckpts)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.6 * len(groups) * max(1, len(ckpts)) ** 0.5), 4.2))
    top = 0.0
    for i, (name, emm) in enumerate(ckpts.items()):
        vals = [100 * emm["subsets"][s]["miou"] for s in subsets] + [100 * emm["miou_avg"]]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=name + (" (told)" if name in told else ""))
        top = max(top, *vals)
    ax.set_xticks(x, groups)
    ax.set_ylabel("mIoU (%)")
    ax.set_xlabel("available modalities (R=rgb, D=depth, E=event, L=lidar)")
    ax.set_title("EMM: mIoU per available subset")
    ax.set_ylim(0, min(100.0, max(10.0, np.ceil(top * 1.25 / 5) * 5)))  # room for the legend
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def colorize(ids: torch.Tensor | np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """``H x W`` class ids -> ``H x W x 3`` uint8 colours; ids outside the palette (ignore) are black."""
    ids = np.asarray(ids.cpu() if torch.is_tensor(ids) else ids).astype(np.int64)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lut[np.where((ids >= 0) & (ids < len(palette)), ids, 255)]


def plot_overlays(records: Sequence[Mapping[str, Any]], palette: Sequence[Sequence[int]], path: str | Path,
                  title: str = "", class_names: Sequence[str] | None = None) -> Path:
    """One row per sample: RGB | prediction under each recorded subset | ground truth; below, a
    legend of the colours of every class shown (``class_names`` index the palette; black = ignore)."""
    if not records:
        raise ValueError("no overlay samples recorded")
    subsets = list(records[0]["preds"])
    cols = 2 + len(subsets)
    fig, axes = plt.subplots(len(records), cols, figsize=(2.6 * cols, 2.2 * len(records)), squeeze=False)
    shown: set[int] = set()
    for row, rec in zip(axes, records, strict=True):
        panels = [(np.asarray(rec["rgb"]), f"#{rec['index']} {rec['name']}".strip())]
        panels += [(colorize(rec["preds"][s], palette), f"pred {s}") for s in subsets]
        panels.append((colorize(rec["label"], palette), "ground truth"))
        for ids in [rec["label"], *rec["preds"].values()]:
            shown.update(int(i) for i in np.unique(np.asarray(ids.cpu() if torch.is_tensor(ids) else ids))
                         if 0 <= i < len(palette))
        for ax, (img, name) in zip(row, panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    if class_names is not None and shown:
        add_class_legend(fig, [(class_names[i], palette[i]) for i in sorted(shown)])
    return _save(fig, path)


def add_class_legend(fig: Any, entries: Sequence[tuple[str, Sequence[int]]]) -> None:
    """A legend of ``(class name, RGB 0..255)`` colour patches under the figure's panels."""
    from matplotlib.patches import Patch
    handles = [Patch(facecolor=np.asarray(rgb) / 255.0, edgecolor="0.3", label=name) for name, rgb in entries]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.035 * ((len(handles) + 5) // 6)))
