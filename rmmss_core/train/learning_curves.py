"""Learning curves of the robustness benchmark: mIoU vs training steps, per class, and the sweep
over input size and model size.

The runs named in ``curve.runs`` (by default the full-modality teacher and the any-modal dropout
baseline) keep their output model every ``curve.every`` steps (``TrainConfig.curve_every`` ->
``<run>/curve/step<N>.pt``). Each snapshot is evaluated on the benchmark's test split with the
EMM protocol over all 15 subsets (``curve.protocol``, told by default), giving per step: the
all-sensor mIoU (DELIVER's 25-class convention and over the classes present), the mean over the
14 missing-sensor subsets, and the per-class IoU with all sensors. ``curve.variants`` names extra
settings (input size, model size, ...) under which the same runs are trained again only for their
curves, in ``<out>/seed<N>/curves/<variant>/<run>``; e.g. ``rmmss benchmark --preset curves``.

The report (``curve_section``) gives the mean ± std over seeds as a plot and tables, and how much
of its final all-sensor mIoU each curve had reached at a quarter and at half of its steps.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmmss_core.modalities import SUBSET_NAMES
from rmmss_core.train.benchmark_stats import LABELS, mean_std, save_png
from rmmss_core.utils.io import atomic_write_json

MISSING = [s for s in SUBSET_NAMES if s != "RDEL"]
MAIN = "main"  # the curves of the benchmark's own runs


@dataclass(frozen=True)
class CurveSettings:
    """``curve:`` of a benchmark preset. ``every`` 0 = no learning curves."""

    every: int = 0
    runs: tuple[str, ...] = ("teacher", "dropout")
    protocol: str = "emm_told"  # emm_told (model told what is missing) or emm (the authors': not told)
    max_samples: int = 0  # test frames per snapshot evaluation; 0 = the whole split
    # variant name -> settings merged over the preset's ``train`` for extra curve-only runs, e.g.
    # {"b0-128x160": {"model": {"options": {"size": "b0"}}, "data": {"input_size": [128, 160]}}}
    variants: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.every < 0:
            raise ValueError(f"curve.every must be >= 0 (0: off), got {self.every}")
        if self.protocol not in ("emm", "emm_told"):
            raise ValueError(f"curve.protocol must be 'emm' or 'emm_told', got {self.protocol!r}")
        if self.variants and not self.every:
            raise ValueError("curve.variants needs curve.every > 0")
        if MAIN in self.variants:
            raise ValueError(f"curve variant name {MAIN!r} is reserved for the benchmark's own runs")


def snapshot_row(step: int, summary: Mapping[str, Any], protocol: str) -> dict[str, Any]:
    """One curve point from an ``EvalRun.summary()`` of the EMM protocol."""
    subs = summary[protocol]["subsets"]
    full = subs["RDEL"]
    return {"step": int(step), "full": full["miou"], "full_present": full["miou_present"],
            "missing14": sum(subs[k]["miou"] for k in MISSING) / len(MISSING),
            "missing14_present": sum(subs[k]["miou_present"] for k in MISSING) / len(MISSING),
            "iou": full["iou"], "present": full["present"]}


def evaluate_curve(run_dir: Path, data: Path, settings: CurveSettings, split: str, device: Any,
                   batch_size: int, seed: int) -> list[dict[str, Any]]:
    """Evaluate every ``run_dir/curve/step*.pt`` (cached in ``run_dir/curve_<split>.json``; a
    snapshot newer than its cached row is evaluated again). Returns the rows sorted by step."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from rmmss_core.data import build_dataset
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.models import load_model
    cache_path = run_dir / f"curve_{split}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    key = f"{settings.protocol}:{settings.max_samples}"
    rows = cache.get(key, {})
    snaps = sorted((run_dir / "curve").glob("step*.pt"))
    for snap in snaps:
        old = rows.get(snap.name)
        if old is not None and old.get("mtime") == snap.stat().st_mtime:
            continue
        step = int(snap.stem[4:])
        model, spec = load_model(snap, map_location=device)
        test = build_dataset("synthetic", root=str(data), split=split, spec=spec)
        if settings.max_samples:
            test = Subset(test, range(min(settings.max_samples, len(test))))
        loader = DataLoader(test, batch_size=batch_size, num_workers=0)
        ev = Evaluator(spec, build_conditions([settings.protocol]), device=device, seed=seed)
        with torch.inference_mode():
            summary = ev.run(model, loader, progress=False).summary()
        rows[snap.name] = {**snapshot_row(step, summary, settings.protocol), "mtime": snap.stat().st_mtime,
                           "class_names": list(spec.class_names)}
        cache[key] = rows
        atomic_write_json(cache_path, cache)
    have = {s.name for s in snaps}
    return sorted((r for name, r in rows.items() if name in have), key=lambda r: r["step"])


# ---------------------------------------------------------------- aggregation over seeds
FIGURES = ("full", "full_present", "missing14", "missing14_present")


def aggregate_curves(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``variant -> run -> [{"step", fig: {"mean", "std", "n"}, "iou": [{"mean", "std"}] per class}]``
    over the seeds' ``curves`` (``{variant: {run: rows}}``); steps every seed has."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    first = per_seed[0].get("curves") or {}
    for variant, runs in first.items():
        for run in runs:
            seeds = [(p.get("curves") or {}).get(variant, {}).get(run, []) for p in per_seed]
            steps = sorted(set.intersection(*(set(r["step"] for r in rows) for rows in seeds))) if seeds else []
            points = []
            for step in steps:
                at = [next(r for r in rows if r["step"] == step) for rows in seeds]
                point: dict[str, Any] = {"step": step}
                for fig in FIGURES:
                    m, sd = mean_std([r[fig] for r in at])
                    point[fig] = {"mean": m, "std": sd, "n": len(at)}
                k = len(at[0]["iou"])
                point["iou"] = [dict(zip(("mean", "std"), mean_std(
                    [math.nan if r["iou"][i] is None else r["iou"][i] for r in at]), strict=True)) for i in range(k)]
                point["present"] = sorted(set().union(*(r["present"] for r in at)))
                points.append(point)
            if points:
                out.setdefault(variant, {})[run] = points
    return out


def reached(points: Sequence[Mapping[str, Any]], fraction: float, fig: str = "full") -> float:
    """The share of the final ``fig`` (mean over seeds) reached at the last point at or before
    ``fraction`` of the final step; NaN when there is no such point or the final value is 0."""
    final = points[-1][fig]["mean"]
    early = [p for p in points if p["step"] <= fraction * points[-1]["step"]]
    if not early or not final:
        return math.nan
    return early[-1][fig]["mean"] / final


# ---------------------------------------------------------------- report
def _label(run: str) -> str:
    return LABELS.get(run, run)


def _pm(fig: Mapping[str, float]) -> str:
    if fig is None or math.isnan(fig["mean"]):
        return "-"
    return f"{100 * fig['mean']:.2f} ± {100 * fig['std']:.2f}"


def _plot(curves: Mapping[str, Any], class_names: Sequence[str], report_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharex=False)
    titles = {"full": "all sensors (DELIVER, 25 classes)", "full_present": "all sensors (present classes)",
              "missing14": "mean of the 14 missing-sensor subsets (DELIVER)"}
    for ax, (key, title) in zip(axes, titles.items(), strict=True):
        for variant, runs in curves.items():
            for run, pts in runs.items():
                x = [p["step"] for p in pts]
                m = [100 * p[key]["mean"] for p in pts]
                sd = [100 * p[key]["std"] for p in pts]
                name = _label(run) if variant == MAIN else f"{_label(run)} [{variant}]"
                line, = ax.plot(x, m, marker="o", ms=3, label=name, ls="-" if run == "teacher" else "--")
                ax.fill_between(x, [a - b for a, b in zip(m, sd, strict=True)],
                                [a + b for a, b in zip(m, sd, strict=True)], alpha=0.15, color=line.get_color())
        ax.set(xlabel="training step", ylabel="mIoU (%), mean ± std over seeds", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    names = [save_png(fig, report_dir / "robustness_curves.png")]
    runs = curves.get(MAIN) or next(iter(curves.values()))
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.4), squeeze=False)
    for ax, (run, pts) in zip(axes[0], runs.items(), strict=True):
        for j, i in enumerate(pts[-1]["present"]):
            ax.plot([p["step"] for p in pts], [100 * p["iou"][i]["mean"] for p in pts], marker=".", ms=3,
                    color=plt.cm.tab20(j % 20), ls="-" if j < 20 else ":",
                    label=class_names[i] if i < len(class_names) else str(i))
        ax.set(xlabel="training step", ylabel="IoU (%), all sensors, mean over seeds",
               title=f"{_label(run)}: per-class IoU")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    names.append(save_png(fig, report_dir / "robustness_curves_classes.png"))
    return names


def _share(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.0f} %"


def describe(train: Mapping[str, Any]) -> str:
    """``MiT <size>, input HxW, <iters> steps of batch B`` from a (partial) train settings dict."""
    model = ((train.get("model") or {}).get("options") or {}).get("size", "?")
    data = train.get("data") or {}
    size = data.get("input_size")
    parts = [f"MiT {model}", f"input {size[0]}x{size[1]}" if size else "input ?"]
    if "iters" in train:
        parts.append(f"{train['iters']} steps of batch {data.get('batch_size', '?')}")
    return ", ".join(parts)


def curve_section(per_seed: Sequence[Mapping[str, Any]], report_dir: Path, rel: str = "",
                  protocol: str = "emm_told", settings: Mapping[str, str] | None = None
                  ) -> tuple[list[str], dict[str, Any]]:
    """Markdown lines (plots + tables) of the learning curves, and their aggregate for the JSON;
    ``([], {})`` when the seeds recorded none. ``settings``: variant -> a description for titles."""
    curves = aggregate_curves(per_seed)
    if not curves:
        return [], {}
    class_names: Sequence[str] = ()
    for p in per_seed:
        for runs in (p.get("curves") or {}).values():
            for rows in runs.values():
                if rows and rows[0].get("class_names"):
                    class_names = rows[0]["class_names"]
    if not class_names:
        k = len(next(iter(next(iter(curves.values())).values()))[0]["iou"])
        class_names = [str(i) for i in range(k)]
    plots = _plot(curves, class_names, report_dir)
    told = "told" if protocol == "emm_told" else "authors' EMM, not told"
    lines = ["### Learning curves", "",
             f"mIoU vs training steps of {', '.join(_label(r) for r in next(iter(curves.values())))}: each kept "
             f"snapshot evaluated on the test split (EMM over the 15 subsets, {told}); mean ± std over the seeds. "
             "*reached at 25 % / 50 %*: the share of the final all-sensor mIoU reached at a quarter / half of the "
             "steps (with the same schedule compressed, a 4x shorter run ends higher than the quarter point).", "",
             f"![learning curves]({rel}{plots[0]})", "", f"![per-class curves]({rel}{plots[1]})", ""]
    for variant, runs in curves.items():
        title = "the benchmark's runs" if variant == MAIN else f"variant `{variant}`"
        if variant in (settings or {}):
            title += f" ({settings[variant]})"
        head = "| step | " + " | ".join(f"{_label(r)}: all (DELIVER) | {_label(r)}: all (present) | "
                                          f"{_label(r)}: missing 14" for r in runs) + " |"
        lines += [f"#### {title}", "", head, "| ---: | " + " | ".join("---: | ---: | ---:" for _ in runs) + " |"]
        steps = sorted(set.intersection(*(set(p["step"] for p in pts) for pts in runs.values())))
        for step in steps:
            cells = []
            for pts in runs.values():
                p = next(q for q in pts if q["step"] == step)
                cells += [_pm(p["full"]), _pm(p["full_present"]), _pm(p["missing14"])]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
        lines += [""] + [f"- {_label(r)}: reached at 25 % {_share(reached(pts, 0.25))}, at 50 % "
                         f"{_share(reached(pts, 0.5))} of its final all-sensor mIoU." for r, pts in runs.items()]
        lines.append("")
    main = curves.get(MAIN) or next(iter(curves.values()))
    for run, pts in main.items():
        shown = pts if len(pts) <= 8 else [pts[round(i * (len(pts) - 1) / 7)] for i in range(8)]
        lines += [f"#### Per-class IoU vs steps, {_label(run)} (all sensors, mean over seeds)", "",
                  "| class | " + " | ".join(str(p["step"]) for p in shown) + " |",
                  "| --- | " + " | ".join("---:" for _ in shown) + " |"]
        for i in pts[-1]["present"]:
            name = class_names[i] if i < len(class_names) else str(i)
            lines.append(f"| {name} | " + " | ".join(
                "-" if math.isnan(p["iou"][i]["mean"]) else f"{100 * p['iou'][i]['mean']:.1f}" for p in shown) + " |")
        lines.append("")
    return lines, curves
