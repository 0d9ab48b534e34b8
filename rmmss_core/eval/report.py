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


def present_avg(summary: Mapping[str, Any], proto: str = "emm") -> float | None:
    """mIoU^Avg over the classes present in the evaluated frames: the mean of the subsets'
    ``miou_present`` (None for summaries written before it existed)."""
    subsets = _get(summary, proto, "subsets") or {}
    vals = [v.get("miou_present") for v in subsets.values()]
    if not vals or any(v is None for v in vals):
        return None
    return sum(vals) / len(vals)


def markdown_report(report: Mapping[str, Any]) -> str:
    """Markdown: EMM per-subset mIoU (rows) x checkpoints (columns) with mIoU^Avg and mIoU^E(p),
    then RMM and NM, then per-class IoU with all modalities (EMM ``RDEL``)."""
    ckpts = report["checkpoints"]
    names = list(ckpts)
    out = ["# Evaluation", "", "mIoU in % (DELIVER convention: over every class of the class list, a class "
           "absent from both prediction and truth counts as 0; nan-mean leaves it out; present classes: "
           "over the classes with ground-truth pixels in the evaluated frames only).", ""]
    meta = report.get("meta") or {}
    if meta:
        out += [", ".join(f"{k}: {v}" for k, v in sorted(meta.items())), ""]
    first = next(iter(ckpts.values()))
    for proto in ("emm", "emm_told"):
        if proto not in first:
            continue
        told = "the model told which are missing" if first[proto].get("told", True) else \
            "inputs of missing sensors zeroed, the model not told (the authors' protocol)"
        out += [f"## {proto.upper().replace('_TOLD', ' (told)')}: entire missing modalities (per available subset; {told})", ""]
        rows = [[s, *(_pct(_get(ckpts[n], proto, "subsets", s, "miou")) for n in names)]
                for s in first[proto]["subsets"]]
        rows.append(["**mIoU^Avg**", *(_pct(_get(ckpts[n], proto, "miou_avg")) for n in names)])
        rows.append(["mIoU^Avg (nan-mean)", *(_pct(_get(ckpts[n], proto, "miou_avg_nanmean")) for n in names)])
        rows.append(["mIoU^Avg (present classes)", *(_pct(present_avg(ckpts[n], proto)) for n in names)])
        for p in first[proto]["miou_e"]:
            rows.append([f"mIoU^E(p={p})", *(_pct(_get(ckpts[n], proto, "miou_e", p)) for n in names)])
        out += _table(["subset", *names], rows) + [""]
    if "rmm" in first:
        out += ["## RMM: random missing modalities (per rate r, mean over the 15 combinations of 0-3 "
                "affected modalities; each element of an affected input zeroed with probability r)", ""]
        rows = []
        for r in first["rmm"]:
            rows.append([f"r={r} mIoU^Avg", *(_pct(_get(ckpts[n], "rmm", r, "miou_avg")) for n in names)])
            for p in first["rmm"][r]["miou_e"]:
                rows.append([f"r={r} mIoU^E(p={p})", *(_pct(_get(ckpts[n], "rmm", r, "miou_e", p)) for n in names)])
        out += _table(["rate", *names], rows) + [""]
        out += ["### RMM per combination of affected modalities", ""]
        rows = [[f"r={r} {c}", *(_pct(_get(ckpts[n], "rmm", r, "combinations", c, "miou")) for n in names)]
                for r in first["rmm"] for c in first["rmm"][r]["combinations"]]
        out += _table(["rate / affected", *names], rows) + [""]
    if "nm" in first:
        out += ["## NM: noisy modalities (salt-and-pepper 0.05/0.1/0.2 on R, D, E, L and Gaussian std "
                "0.1/0.2/0.5 on R, D, L, together, on the normalised input)", ""]
        rows = [[lv, *(_pct(_get(ckpts[n], "nm", lv, "miou")) for n in names)] for lv in first["nm"]]
        out += _table(["level", *names], rows) + [""]
    if "emm" in first and "RDEL" in first["emm"]["subsets"]:
        present = set(_get(first, "emm", "subsets", "RDEL", "present") or [])
        out += ["## Per-class IoU, all modalities (RDEL)", ""]
        if present:
            out += [f"{len(present)} of {len(report['class_names'])} classes have pixels in the evaluated frames; "
                    "the others are marked *absent*.", ""]
        rows = [["**mIoU (DELIVER)**", *(_pct(_get(ckpts[n], "emm", "subsets", "RDEL", "miou")) for n in names)],
                ["**mIoU (present classes)**",
                 *(_pct(_get(ckpts[n], "emm", "subsets", "RDEL", "miou_present")) for n in names)]]
        for i, cls in enumerate(report["class_names"]):
            vals = [_get(ckpts[n], "emm", "subsets", "RDEL", "iou") for n in names]
            name = cls if not present or i in present else f"{cls} *absent*"
            rows.append([name, *(_pct(v[i] if v else None) for v in vals)])
        out += _table(["class", *names], rows) + [""]
    return "\n".join(out)


def write_report(report: Mapping[str, Any], out_dir: str | Path, stem: str = "eval") -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["markdown"], markdown_report(report) + "\n")
    return paths
