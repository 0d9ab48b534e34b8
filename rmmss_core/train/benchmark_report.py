"""Evaluation and report of the robustness benchmark (``train/benchmark.py``).

Each trained model is evaluated by ``rmmss_core.eval`` (EMM over the 15 subsets, RMM, NM) on the
test split, with its parameter count and batch-1 latency; the report puts them side by side,
checks the papers' expectations and appends the written analysis (``notes``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rmmss_core.modalities import SUBSET_NAMES
from rmmss_core.utils.io import atomic_write_json, atomic_write_text

LABELS = {"teacher": "Teacher (all sensors)", "teacher_lidar": "LiDAR-only teacher", "dropout": "Dropout baseline",
          "anyseg": "AnySeg", "rmmss-hpdm": "RMMSS stage 1 (HPDM)", "rmmss-fsm": "RMMSS-FSM",
          "m3l": "M3L", "u2mkd": "U2MKD", "compress": "Compressed RMMSS-FSM"}
MISSING = [s for s in SUBSET_NAMES if s != "RDEL"]


def evaluate_all(cfg: Any, data: Path, runs_dir: Path) -> dict[str, dict[str, Any]]:
    """``run -> {"summary": EvalRun.summary(), "params", "latency_ms", "checkpoint"}``; an
    evaluation newer than its checkpoint is reused."""
    from torch.utils.data import DataLoader

    from rmmss_core.bench import time_callable
    from rmmss_core.data import build_dataset
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.modalities import MODALITIES
    from rmmss_core.models import load_model
    from rmmss_core.train.distributed import resolve_device
    device = resolve_device(cfg.device)
    results: dict[str, dict[str, Any]] = {}
    for name in cfg.runs:
        ckpt = runs_dir / name / "best.pt"
        cache = runs_dir / name / f"eval_{cfg.eval.split}.json"
        if cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime:
            results[name] = json.loads(cache.read_text())
            continue
        model, spec = load_model(ckpt, map_location=device)
        test = build_dataset("synthetic", root=str(data), split=cfg.eval.split, spec=spec)
        loader = DataLoader(test, batch_size=cfg.eval.batch_size, num_workers=0)
        evaluator = Evaluator(spec, build_conditions(cfg.eval.protocols), device=device, seed=cfg.seed)
        summary = evaluator.run(model, loader, cfg.eval.max_samples or None, progress=False).summary()
        h, w = spec.input_size
        x = {m: torch.randn(1, 3, h, w, device=device) for m in MODALITIES}
        avail = torch.ones(1, 4, dtype=torch.bool, device=device)
        with torch.inference_mode():
            lat = time_callable(lambda model=model, x=x, avail=avail: model(x, avail), warmup=3, iters=cfg.eval.latency_iters,
                                sync_cuda=device.type == "cuda")
        results[name] = {"summary": summary, "params": sum(p.numel() for p in model.parameters()),
                         "latency_ms": lat["p50_ms"], "checkpoint": str(ckpt), "input_size": [h, w]}
        atomic_write_json(cache, results[name])
    return results


GATE_SUBSETS = ("RDEL", "RDE", "RD", "DL", "R", "D", "E", "L")


@torch.inference_mode()
def fsm_gate_weights(ckpt: Path, data: Path, split: str, max_samples: int = 32) -> dict[str, list[float]]:
    """Mean per-pixel weight the FSM's logit selection gives (teacher, robust, decoded) per subset,
    inputs of missing sensors zeroed as in EMM. A diagnostic of what the selection learned."""
    from rmmss_core.data import build_dataset
    from rmmss_core.modalities import MODALITIES, subset_mask
    from rmmss_core.models import load_model
    model, spec = load_model(ckpt)
    test = build_dataset("synthetic", root=str(data), split=split, spec=spec)
    n = min(max_samples, len(test))
    batch = [test[i] for i in range(n)]
    inputs = {m: torch.stack([b[m] for b in batch]) for m in MODALITIES}
    out: dict[str, list[float]] = {}
    for name in GATE_SUBSETS:
        avail = subset_mask(name, n)
        x = {m: inputs[m] * avail[:, i, None, None, None] for i, m in enumerate(MODALITIES)}
        w = model(x, avail, return_features=True).features.branch_logits  # B x 3 x 1 x H x W
        out[name] = [float(v) for v in w.mean(dim=(0, 2, 3, 4))]
    return out


def headline(r: Mapping[str, Any]) -> dict[str, float]:
    """Fractions: all sensors, mean of 15, mean of the 14 missing subsets, mIoU^E(0.1), RMM, NM means."""
    s = r["summary"]
    emm = s["emm"]["subsets"]
    out = {"full": emm["RDEL"]["miou"], "avg15": s["emm"]["miou_avg"],
           "missing14": sum(emm[k]["miou"] for k in MISSING) / len(MISSING),
           "e0.1": s["emm"]["miou_e"].get("0.1", math.nan)}
    if "rmm" in s:
        out["rmm"] = sum(v["miou"] for v in s["rmm"].values()) / len(s["rmm"])
    if "nm" in s:
        vals = [v["miou"] for levels in s["nm"].values() for v in levels.values()]
        out["nm"] = sum(vals) / len(vals)
    return out


def expectations(h: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The papers' expectations, checked on these numbers (points = mIoU %)."""
    lines = []
    rival = {k: v for k, v in h.items() if k not in ("rmmss-fsm", "compress")}
    if "rmmss-fsm" in h and rival:
        best = max(rival, key=lambda k: rival[k]["missing14"])
        ok = h["rmmss-fsm"]["missing14"] > rival[best]["missing14"]
        lines.append(f"- RMMSS-FSM best on mean missing-modality mIoU (14 subsets): **{'yes' if ok else 'no'}** "
                     f"({100 * h['rmmss-fsm']['missing14']:.2f} vs best other {LABELS.get(best, best)} "
                     f"{100 * rival[best]['missing14']:.2f}).")
    if "rmmss-fsm" in h and "teacher" in h:
        gap = 100 * (h["teacher"]["full"] - h["rmmss-fsm"]["full"])
        lines.append(f"- RMMSS-FSM within 0.5 of the teacher with all sensors: **{'yes' if gap <= 0.5 else 'no'}** "
                     f"(teacher {100 * h['teacher']['full']:.2f}, FSM {100 * h['rmmss-fsm']['full']:.2f}, gap {gap:+.2f}).")
    for k in ("anyseg", "m3l"):
        if k in h and "dropout" in h:
            d = 100 * (h[k]["avg15"] - h["dropout"]["avg15"])
            lines.append(f"- {LABELS[k]} above the dropout baseline on mIoU^Avg: **{'yes' if d > 0 else 'no'}** ({d:+.2f}).")
    if "compress" in h and "rmmss-fsm" in h:
        kept = 100 * (h["compress"]["avg15"] - h["rmmss-fsm"]["avg15"])
        lines.append(f"- Compression keeps mIoU^Avg within {kept:+.2f} of RMMSS-FSM (see cost columns).")
    return lines


def _plots(results: Mapping[str, Any], h: Mapping[str, Mapping[str, float]], report_dir: Path,
           class_names: list[str]) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rmmss_core.eval.plots import plot_subset_bars
    from rmmss_core.eval.report import build_report
    report = build_report({LABELS.get(k, k): v["summary"] for k, v in results.items()}, class_names)
    names = [plot_subset_bars(report, report_dir / "robustness_subsets.png").name]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, v in h.items():
        a.scatter(100 * v["full"], 100 * v["missing14"], s=40)
        a.annotate(LABELS.get(k, k), (100 * v["full"], 100 * v["missing14"]), fontsize=7, xytext=(3, 3),
                   textcoords="offset points")
        b.scatter(results[k]["latency_ms"], 100 * v["avg15"], s=40)
        b.annotate(f"{LABELS.get(k, k)} ({results[k]['params'] / 1e6:.2f} M)",
                   (results[k]["latency_ms"], 100 * v["avg15"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    a.set(xlabel="mIoU with all sensors (%)", ylabel="mean mIoU, 14 missing-sensor subsets (%)",
          title="Robustness vs full-sensor accuracy")
    b.set(xlabel="latency, batch 1 (ms, p50)", ylabel="mIoU^Avg over 15 subsets (%)", title="Accuracy vs cost")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    (report_dir / "robustness_tradeoff.png").write_bytes(buf.getvalue())
    names.append("robustness_tradeoff.png")
    return names


def write_robustness_report(cfg: Any, results: Mapping[str, Any], trained: Mapping[str, Any],
                            timings: Mapping[str, float], report_dir: Path, command: str) -> Path:
    """``robustness.md`` / ``robustness.json`` / PNGs in ``report_dir``; refreshes the
    ``docs/BENCHMARKS.md`` index when writing into ``docs/bench``."""
    from rmmss_core.bench import machine_info
    from rmmss_core.eval.report import build_report, markdown_report
    from rmmss_core.utils.config import config_to_dict
    report_dir.mkdir(parents=True, exist_ok=True)
    first = next(iter(results.values()))
    from rmmss_core.models import load_model
    _, spec = load_model(first["checkpoint"])
    h = {k: headline(v) for k, v in results.items()}
    plots = _plots(results, h, report_dir, list(spec.class_names))
    m = machine_info()
    tcfg = json.loads(json.dumps(cfg.train))
    rel = "bench/" if report_dir.resolve().parent.name == "docs" else ""
    lines = [f"## Robustness benchmark: every recipe, same budget, missing sensors ({cfg.preset} preset)", "",
             f"Command: `{command}` (`make bench-robustness` runs `rmmss benchmark --preset cpu`). "
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"{'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'}. Wall clock {timings['total_s'] / 60:.1f} min "
             f"(synthetic data {timings['synth_s']:.0f} s, training {timings['train_s'] / 60:.1f} min, "
             f"evaluation {timings['eval_s']:.0f} s).", "",
             f"Data: the seeded synthetic world, {cfg.synth.frames} frames at {cfg.synth.size[0]}x{cfg.synth.size[1]} "
             f"({cfg.synth.splits}), evaluated on the `{cfg.eval.split}` split "
             f"({first['summary']['samples']} frames). Budget per recipe: `{json.dumps(tcfg, sort_keys=True)}` "
             f"over each recipe's config/train YAML; per-run settings: `{json.dumps(cfg.per_run, sort_keys=True)}`. "
             "Each checkpoint is the best on the validation split by the recipe's `best_metric` "
             "(teachers: mIoU with all sensors; students: mIoU^Avg). mIoU in %, DELIVER convention "
             "(25 classes; a class absent from truth and prediction counts 0, so absolute values are low; "
             "compare columns).", "",
             "| method | all sensors | mIoU^Avg (15) | missing (14) | mIoU^E(0.1) | RMM | NM | params (M) | latency (ms) | train (min) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k, v in h.items():
        lines.append(f"| {LABELS.get(k, k)} | {100 * v['full']:.2f} | {100 * v['avg15']:.2f} | "
                     f"{100 * v['missing14']:.2f} | {100 * v['e0.1']:.2f} | {100 * v.get('rmm', math.nan):.2f} | "
                     f"{100 * v.get('nm', math.nan):.2f} | {results[k]['params'] / 1e6:.3f} | "
                     f"{results[k]['latency_ms']:.1f} | {trained.get(k, {}).get('seconds', math.nan) / 60:.1f} |")
    lines += ["", "RMM = mean over random-missing rates 0.25/0.5/0.75; NM = mean over salt-and-pepper and "
              "Gaussian levels (all sensors present). Latency: batch 1 at the training input size on the "
              "benchmark's device (RMMSS-FSM runs two networks plus the FSM).", "",
              "### Expectations from the papers, checked", "", *expectations(h), "",
              f"![EMM per subset]({rel}{plots[0]})", "", f"![trade-offs]({rel}{plots[1]})", ""]
    if "rmmss-fsm" in results:
        cache = Path(results["rmmss-fsm"]["checkpoint"]).parent / "fsm_gate.json"
        if cache.is_file() and cache.stat().st_mtime > Path(results["rmmss-fsm"]["checkpoint"]).stat().st_mtime:
            gate = json.loads(cache.read_text())
        else:
            gate = fsm_gate_weights(Path(results["rmmss-fsm"]["checkpoint"]), Path(cfg.out) / "data", cfg.eval.split)
            atomic_write_json(cache, gate)
        lines += ["### What the FSM selects", "",
                  "Mean per-pixel weight of the FSM's logit-level selection over its three sources, per "
                  "available subset (first 32 test frames). Our reading of the FSM, see "
                  "`rmmss_core/train/fsm.py`: the paper defines no equations.", "",
                  "| subset | teacher | robust (HPDM) | decoded selected features |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {k} | {v[0]:.2f} | {v[1]:.2f} | {v[2]:.2f} |" for k, v in gate.items()] + [""]
    detail = markdown_report(build_report({LABELS.get(k, k): v["summary"] for k, v in results.items()},
                                          list(spec.class_names)))
    detail = "\n".join(("#### " + ln.lstrip("#").strip()) if ln.startswith("#") else ln for ln in detail.splitlines())
    lines += ["### Details", "", detail, ""]
    if cfg.notes and (Path(cfg.notes).is_file() or (Path(__file__).resolve().parents[2] / cfg.notes).is_file()):
        p = Path(cfg.notes) if Path(cfg.notes).is_file() else Path(__file__).resolve().parents[2] / cfg.notes
        lines += [p.read_text().strip(), ""]
    md = report_dir / "robustness.md"
    atomic_write_text(md, "\n".join(lines))
    atomic_write_json(report_dir / "robustness.json", {"name": "robustness", "machine": m, "timings": dict(timings),
                                                        "config": config_to_dict(cfg), "headline": h,
                                                        "results": dict(results)})
    if report_dir.resolve() == (Path(__file__).resolve().parents[2] / "docs" / "bench").resolve():
        from rmmss_core.bench.__main__ import write_index
        write_index(report_dir)
    return md
