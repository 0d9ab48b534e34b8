"""Evaluation report: one JSON (atomic) and one Markdown file comparing checkpoints.

The JSON holds fractions in [0, 1]; the Markdown shows percentages with two decimals.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmmss_core.utils.io import atomic_write_json, atomic_write_text

REPORT_FORMAT = "rmmss-eval-v1"


def build_report(results: Mapping[str, Mapping[str, Any]], class_names: Sequence[str],
                 meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``results``: checkpoint name -> ``EvalRun.summary()``; returns the JSON-ready report."""
    if not results:
        raise ValueError("no checkpoint results to report")
    return {"format": REPORT_FORMAT, "units": "fraction", "class_names": list(class_names),
            "meta": dict(meta or {}), "checkpoints": {k: dict(v) for k, v in results.items()}}


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * float(v):.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _get(d: Mapping[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


def markdown_report(report: Mapping[str, Any]) -> str:
    """Markdown: EMM per-subset mIoU (rows) x checkpoints (columns) with mIoU^Avg and mIoU^E(p),
    then RMM and NM, then per-class IoU with all modalities (EMM ``RDEL``)."""
    ckpts = report["checkpoints"]
    names = list(ckpts)
    out = ["# Evaluation", "", "mIoU in % (DELIVER convention: a class absent from both prediction and "
           "truth counts as 0; nan-mean leaves it out).", ""]
    meta = report.get("meta") or {}
    if meta:
        out += [", ".join(f"{k}: {v}" for k, v in sorted(meta.items())), ""]
    first = next(iter(ckpts.values()))
    if "emm" in first:
        out += ["## EMM: entire missing modalities (per available subset)", ""]
        rows = [[s, *(_pct(_get(ckpts[n], "emm", "subsets", s, "miou")) for n in names)]
                for s in first["emm"]["subsets"]]
        rows.append(["**mIoU^Avg**", *(_pct(_get(ckpts[n], "emm", "miou_avg")) for n in names)])
        rows.append(["mIoU^Avg (nan-mean)", *(_pct(_get(ckpts[n], "emm", "miou_avg_nanmean")) for n in names)])
        for p in first["emm"]["miou_e"]:
            rows.append([f"mIoU^E(p={p})", *(_pct(_get(ckpts[n], "emm", "miou_e", p)) for n in names)])
        out += _table(["subset", *names], rows) + [""]
    robust: list[list[str]] = []
    for r in first.get("rmm", {}):
        robust.append([f"RMM r={r}", *(_pct(_get(ckpts[n], "rmm", r, "miou")) for n in names)])
    for kind, levels in first.get("nm", {}).items():
        label = "salt-and-pepper density" if kind == "salt_pepper" else "Gaussian std (R, D, L)"
        for lv in levels:
            robust.append([f"NM {label} {lv}", *(_pct(_get(ckpts[n], "nm", kind, lv, "miou")) for n in names)])
    if robust:
        out += ["## RMM (random missing pixels) and NM (noisy modalities), all modalities available", ""]
        out += _table(["condition", *names], robust) + [""]
    if "emm" in first and "RDEL" in first["emm"]["subsets"]:
        out += ["## Per-class IoU, all modalities (RDEL)", ""]
        rows = []
        for i, cls in enumerate(report["class_names"]):
            vals = [_get(ckpts[n], "emm", "subsets", "RDEL", "iou") for n in names]
            rows.append([cls, *(_pct(v[i] if v else None) for v in vals)])
        out += _table(["class", *names], rows) + [""]
    return "\n".join(out)


def write_report(report: Mapping[str, Any], out_dir: str | Path, stem: str = "eval") -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["markdown"], markdown_report(report) + "\n")
    return paths
