"""Evaluation and report of the robustness benchmark (``train/benchmark.py``).

Each trained model of each seed is evaluated by ``rmmss_core.eval`` (EMM over the 15 subsets as
the authors and told, RMM per rate over 15 combinations, NM per level) on the test split, with
its parameter count and batch-1 latency; the report gives mean +- std over the seeds for every
figure, first checks the two orderings all four papers agree on (``benchmark_sanity``), then states
each paper claim as holding / not holding / within noise (marked as not evidence when the sanity
orderings fail), and appends the written analysis (``notes``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rmmss_core.modalities import SUBSET_NAMES
from rmmss_core.train.benchmark_sanity import check_sanity, qualify
from rmmss_core.train.benchmark_stats import LABELS, compare, deep_merge, mean_std, save_png
from rmmss_core.utils.io import atomic_write_json, atomic_write_text

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
        conditions = build_conditions(cfg.eval.protocols, tell_missing=cfg.eval.tell_missing)
        evaluator = Evaluator(spec, conditions, device=device, seed=cfg.seed)
        summary = evaluator.run(model, loader, cfg.eval.max_samples or None, progress=False).summary()
        h, w = spec.input_size
        x = {m: torch.randn(1, 3, h, w, device=device) for m in MODALITIES}
        avail = torch.ones(1, 4, dtype=torch.bool, device=device)
        with torch.inference_mode():
            lat = time_callable(lambda model=model, x=x, avail=avail: model(x, avail), warmup=3, iters=cfg.eval.latency_iters,
                                sync_cuda=device.type == "cuda")
        results[name] = {"summary": summary, "params": sum(p.numel() for p in model.parameters()),
                         "latency_ms": lat["p50_ms"], "checkpoint": str(ckpt), "input_size": [h, w],
                         "class_names": list(spec.class_names)}
        atomic_write_json(cache, results[name])
    return results


GATE_SUBSETS = ("RDEL", "RDE", "RD", "DL", "R", "D", "E", "L")


@torch.inference_mode()
def fsm_gate_weights(ckpt: Path, data: Path, split: str, max_samples: int = 32) -> dict[str, list[float]]:
    """What the FSM selects per available subset (inputs of missing sensors zeroed, model told):
    the authors' FSM: the fraction of feature elements won by (teacher, robust) over the 4 stages;
    ours: the mean per-pixel weight of its logit selection over (teacher, robust, decoded)."""
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
        w = model(x, avail, return_features=True).features.branch_logits  # B x S x 1 x (1|H) x (1|W)
        out[name] = [float(v) for v in w.mean(dim=(0, 2, 3, 4))]
    return out


def headline(summary: Mapping[str, Any]) -> dict[str, float]:
    """Fractions of one evaluation: all sensors, EMM mIoU^Avg (authors: not told) and its
    mIoU^E(0.1), EMM told mIoU^Avg and mean over the 14 missing subsets, RMM mIoU^Avg per rate and
    their mean, NM per level and their mean."""
    s = summary
    emm = s["emm"]
    out = {"full": emm["subsets"]["RDEL"]["miou"], "avg15": emm["miou_avg"],
           "e0.1": emm["miou_e"].get("0.1", math.nan)}
    if "emm_told" in s:
        told = s["emm_told"]
        out["avg15_told"] = told["miou_avg"]
        out["missing14_told"] = sum(told["subsets"][k]["miou"] for k in MISSING) / len(MISSING)
    out["missing14"] = sum(emm["subsets"][k]["miou"] for k in MISSING) / len(MISSING)
    # over the classes present in the evaluated split (beside DELIVER's full class list)
    if "miou_present" in emm["subsets"]["RDEL"]:
        out["full_present"] = emm["subsets"]["RDEL"]["miou_present"]
        out["avg15_present"] = sum(v["miou_present"] for v in emm["subsets"].values()) / len(emm["subsets"])
        out["missing14_present"] = sum(emm["subsets"][k]["miou_present"] for k in MISSING) / len(MISSING)
        if "emm_told" in s:
            out["missing14_told_present"] = sum(s["emm_told"]["subsets"][k]["miou_present"]
                                                for k in MISSING) / len(MISSING)
    if "rmm" in s:
        for r, v in s["rmm"].items():
            out[f"rmm{r}"] = v["miou_avg"]
        out["rmm"] = sum(v["miou_avg"] for v in s["rmm"].values()) / len(s["rmm"])
    if "nm" in s:
        for lv, v in s["nm"].items():
            out[f"nm_{lv}"] = v["miou"]
        out["nm"] = sum(v["miou"] for v in s["nm"].values()) / len(s["nm"])
    return out


def aggregate(per_seed: Sequence[Mapping[str, Any]], order: Sequence[str] = ()) -> dict[str, dict[str, dict[str, float]]]:
    """``run -> key -> {"mean", "std", "n", "values"}`` over the seeds, for every headline figure and
    every EMM / EMM-told subset (``emm/<subset>``, ``emm_told/<subset>``), RMM per rate and p
    (``rmm<r>/e<p>``), plus params, latency and training minutes."""
    have = per_seed[0]["results"]
    runs = [r for r in order if r in have] + [r for r in have if r not in order]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for run in runs:
        rows: dict[str, list[float]] = {}
        for seed in per_seed:
            r = seed["results"][run]
            s = r["summary"]
            figs = headline(s)
            for proto in ("emm", "emm_told"):
                if proto in s:
                    for sub, v in s[proto]["subsets"].items():
                        figs[f"{proto}/{sub}"] = v["miou"]
                    for p, v in s[proto]["miou_e"].items():
                        figs[f"{proto}/e{p}"] = v
            for i, v in enumerate(s["emm"]["subsets"]["RDEL"].get("iou", [])):
                figs[f"iou/{i}"] = math.nan if v is None else v
            for rate, v in s.get("rmm", {}).items():
                for p, e in v["miou_e"].items():
                    figs[f"rmm{rate}/e{p}"] = e
            figs["params"] = r["params"]
            figs["latency_ms"] = r["latency_ms"]
            figs["train_min"] = seed["trained"].get(run, {}).get("seconds", math.nan) / 60
            for k, v in figs.items():
                rows.setdefault(k, []).append(v)
        out[run] = {}
        for k, vals in rows.items():
            m, sd = mean_std(vals)
            out[run][k] = {"mean": m, "std": sd, "n": sum(1 for v in vals if not math.isnan(float(v))),
                           "values": vals}
    return out


def _pm(fig: Mapping[str, float] | None, scale: float = 100.0, digits: int = 2) -> str:
    if fig is None or math.isnan(fig["mean"]):
        return "-"
    return f"{scale * fig['mean']:.{digits}f} ± {scale * fig['std']:.{digits}f}"


ROBUST = ("dropout", "anyseg", "rmmss-hpdm", "m3l", "u2mkd")


def expectations(agg: Mapping[str, Any]) -> list[str]:
    """The papers' claims, checked on the seeds' means (points = mIoU %)."""
    lines = []

    def line(text, verdict, d, noise):
        lines.append(f"- {text}: **{verdict}** (difference {d:+.2f}, noise ±{noise:.2f}).")

    told = "missing14_told" if "missing14_told" in next(iter(agg.values())) else "missing14"
    if "rmmss-fsm" in agg:
        rivals = [k for k in ROBUST if k in agg]
        if rivals:
            best = max(rivals, key=lambda k: agg[k][told]["mean"])
            line(f"RMMSS (+2.80 to +3.89 over the best prior method with missing sensors): RMMSS-FSM above the "
                 f"best other robust recipe ({LABELS[best]}) on the mean over the 14 missing-sensor subsets "
                 f"(EMM, told)", *compare(agg, "rmmss-fsm", best, told))
        if "teacher" in agg:
            line("RMMSS (-0.1 with all sensors): RMMSS-FSM within 0.5 of the teacher with all sensors",
                 *compare(agg, "rmmss-fsm", "teacher", "full", margin=0.005))
    for k, claim in (("anyseg", "AnySeg (+1.6 over Any2Seg, far above CMNeXt)"),
                     ("m3l", "M3L (up to +5 to +10 robust mIoU over baselines)")):
        if k in agg and "dropout" in agg:
            line(f"{claim}: {LABELS[k]} above the dropout baseline on mIoU^Avg (EMM, authors' protocol)",
                 *compare(agg, k, "dropout", "avg15"))
            if "avg15_told" in agg[k]:
                line(f"{claim}: {LABELS[k]} above the dropout baseline on mIoU^Avg (EMM, told)",
                     *compare(agg, k, "dropout", "avg15_told"))
    if "m3l_semi" in agg and "dropout_semi" in agg:
        line("M3L semi-supervised: M3L with 10% labels above the dropout baseline with the same 10% on "
             "mIoU^Avg (EMM, told)", *compare(agg, "m3l_semi", "dropout_semi", "avg15_told"
                                              if "avg15_told" in agg["m3l_semi"] else "avg15"))
    if "u2mkd" in agg and "teacher_lidar" in agg:
        line("U2MKD (+8.3 over the LiDAR-only model): U2MKD with all sensors above the LiDAR-only teacher",
             *compare(agg, "u2mkd", "teacher_lidar", "full"))
    if "compress" in agg and "rmmss-fsm" in agg:
        verdict, d, noise = compare(agg, "compress", "rmmss-fsm", "avg15_told" if "avg15_told" in agg["compress"] else "avg15")
        lines.append(f"- Compression (ours) keeps mIoU^Avg (told) within {d:+.2f} ± {noise:.2f} of RMMSS-FSM "
                     "at the cost shown in the table.")
    return lines


def _plots(agg: Mapping[str, Any], report_dir: Path) -> list[str]:
    """EMM-per-subset bars (mean +- std over seeds) and the two trade-off scatters with error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    proto = "emm_told" if "emm_told/RDEL" in next(iter(agg.values())) else "emm"
    runs = [k for k in agg if k != "teacher_lidar"]
    fig, ax = plt.subplots(figsize=(12, 4.2))
    width = 0.8 / max(1, len(runs))
    for j, k in enumerate(runs):
        m = [100 * agg[k][f"{proto}/{s}"]["mean"] for s in SUBSET_NAMES]
        e = [100 * agg[k][f"{proto}/{s}"]["std"] for s in SUBSET_NAMES]
        ax.bar([i + (j - len(runs) / 2) * width for i in range(len(SUBSET_NAMES))], m, width, yerr=e,
               capsize=1.5, label=LABELS.get(k, k))
    ax.set_xticks(range(len(SUBSET_NAMES)), SUBSET_NAMES)
    ax.set(ylabel="mIoU (%), mean ± std over seeds", title=f"EMM per available subset ({proto})")
    ax.legend(fontsize=6, ncol=4)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    names = [save_png(fig, report_dir / "robustness_subsets.png")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    miss = "missing14_told" if "missing14_told" in agg[runs[0]] else "missing14"
    for k, v in agg.items():
        a.errorbar(100 * v["full"]["mean"], 100 * v[miss]["mean"], xerr=100 * v["full"]["std"],
                   yerr=100 * v[miss]["std"], fmt="o", ms=4, capsize=2)
        a.annotate(LABELS.get(k, k), (100 * v["full"]["mean"], 100 * v[miss]["mean"]), fontsize=7,
                   xytext=(3, 3), textcoords="offset points")
        b.errorbar(v["latency_ms"]["mean"], 100 * v["avg15"]["mean"], yerr=100 * v["avg15"]["std"], fmt="o",
                   ms=4, capsize=2)
        b.annotate(f"{LABELS.get(k, k)} ({v['params']['mean'] / 1e6:.2f} M)",
                   (v["latency_ms"]["mean"], 100 * v["avg15"]["mean"]), fontsize=7, xytext=(3, 3),
                   textcoords="offset points")
    a.set(xlabel="mIoU with all sensors (%)", ylabel="mean mIoU, 14 missing-sensor subsets (%, told)",
          title="Robustness vs full-sensor accuracy")
    b.set(xlabel="latency, batch 1 (ms, p50)", ylabel="mIoU^Avg over 15 subsets (%, authors' EMM)",
          title="Accuracy vs cost")
    for x in (a, b):
        x.grid(alpha=0.3)
    fig.tight_layout()
    names.append(save_png(fig, report_dir / "robustness_tradeoff.png"))
    return names


def present_note(summary: Mapping[str, Any]) -> str:
    """One sentence: how many classes of the class list the evaluated split holds."""
    full = summary["emm"]["subsets"]["RDEL"]
    if "present" not in full:
        return ""
    return (f"{len(full['present'])} of the {len(full['iou'])} classes have pixels in the evaluated split; "
            "the *present classes* columns average over those only (DELIVER's convention divides by all "
            f"{len(full['iou'])}).")


def class_table(agg: Mapping[str, Any], runs: Sequence[str], summary: Mapping[str, Any],
                class_names: Sequence[str] | None = None) -> list[str]:
    """Per-class IoU with all sensors (EMM RDEL), mean ± std over the seeds, one row per class;
    classes absent from the evaluated split are marked and their rows left out."""
    full = summary["emm"]["subsets"]["RDEL"]
    k = len(full.get("iou", []))
    if not k or "iou/0" not in agg[runs[0]]:
        return []
    if class_names is None:
        from rmmss_core.classes import get_class_set
        deliver = get_class_set("deliver").classes
        class_names = deliver if len(deliver) == k else [str(i) for i in range(k)]
    present = set(full.get("present", range(k)))
    head = "| class | " + " | ".join(LABELS.get(r, r) for r in runs) + " |"
    sep = "| --- | " + " | ".join("---:" for _ in runs) + " |"
    out = ["#### Per-class IoU, all sensors (mean ± std over the seeds)", "", head, sep]
    for i in sorted(present):
        out.append(f"| {class_names[i]} | " + " | ".join(_pm(agg[r].get(f"iou/{i}")) for r in runs) + " |")
    absent = [class_names[i] for i in range(k) if i not in present]
    if absent:
        out += ["", f"Absent from the evaluated split (left out of the present-class mIoU): {', '.join(absent)}."]
    return out + [""]


def _detail_tables(agg: Mapping[str, Any], runs: Sequence[str]) -> list[str]:
    """EMM (authors, told), RMM per rate and NM per level: mean ± std for every run."""
    head = "| figure | " + " | ".join(LABELS.get(k, k) for k in runs) + " |"
    sep = "| --- | " + " | ".join("---:" for _ in runs) + " |"
    first = agg[runs[0]]
    out: list[str] = []
    for proto, title in (("emm", "EMM, the authors' protocol (inputs of missing sensors zeroed, model not told)"),
                         ("emm_told", "EMM, told (the availability mask is passed, as the ROS node does)")):
        if f"{proto}/RDEL" not in first:
            continue
        out += [f"#### {title}", "", head, sep]
        for sub in SUBSET_NAMES:
            out.append(f"| {sub} | " + " | ".join(_pm(agg[k].get(f"{proto}/{sub}")) for k in runs) + " |")
        key = "avg15" if proto == "emm" else "avg15_told"
        out.append("| **mIoU^Avg** | " + " | ".join(_pm(agg[k].get(key)) for k in runs) + " |")
        for p in ("0.2", "0.1", "0.05"):
            out.append(f"| mIoU^E(p={p}) | " + " | ".join(_pm(agg[k].get(f"{proto}/e{p}")) for k in runs) + " |")
        out.append("")
    rates = [k[3:] for k in first if k.startswith("rmm") and "/" not in k and k != "rmm"]
    if rates:
        out += ["#### RMM: per rate r, 15 combinations of 0-3 affected modalities, each element of an affected "
                "input zeroed with probability r", "", head, sep]
        for r in rates:
            out.append(f"| r={r} mIoU^Avg | " + " | ".join(_pm(agg[k].get(f"rmm{r}")) for k in runs) + " |")
            for p in ("0.2", "0.1", "0.05"):
                out.append(f"| r={r} mIoU^E(p={p}) | " + " | ".join(_pm(agg[k].get(f"rmm{r}/e{p}")) for k in runs) + " |")
        out.append("")
    levels = [k[3:] for k in first if k.startswith("nm_")]
    if levels:
        out += ["#### NM: salt-and-pepper 0.05/0.1/0.2 on R, D, E, L and Gaussian std 0.1/0.2/0.5 on R, D, L "
                "together (low/mid/high), on the normalised input", "", head, sep]
        for lv in levels:
            out.append(f"| {lv} | " + " | ".join(_pm(agg[k].get(f"nm_{lv}")) for k in runs) + " |")
        out.append("")
    return out


def write_robustness_report(cfg: Any, per_seed: Sequence[Mapping[str, Any]], timings: Mapping[str, float],
                            report_dir: Path, command: str) -> Path:
    """``robustness.md`` / ``robustness.json`` / PNGs in ``report_dir`` from the seeds' results;
    refreshes the ``docs/BENCHMARKS.md`` index when writing into ``docs/bench``."""
    from rmmss_core.bench import machine_info
    from rmmss_core.utils.config import config_to_dict
    report_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(per_seed, cfg.runs)
    sanity = check_sanity(agg, LABELS)
    runs = list(agg)
    first = per_seed[0]["results"][runs[0]]
    plots = _plots(agg, report_dir)
    m = machine_info()
    seeds = [p["seed"] for p in per_seed]
    tcfg = json.loads(json.dumps(cfg.train))
    rel = "bench/" if report_dir.resolve().parent.name == "docs" else ""
    seed_train = ", ".join(f"seed {p['seed']}: {p['timings']['train_s'] / 60:.1f} + {p['timings']['eval_s'] / 60:.1f}"
                           + (f" + {p['timings']['curves_s'] / 60:.1f} (curves)" if p['timings'].get('curves_s') else "")
                           for p in per_seed)
    lines = [f"## Robustness benchmark: every recipe, same budget, missing sensors ({cfg.preset} preset)", "",
             f"Command: `{command}` (`make bench-robustness` runs `rmmss benchmark --preset cpu`). "
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"{'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'}. Seeds {seeds}, {cfg.jobs} side by side "
             f"(one thread each). Wall clock {timings['total_s'] / 60:.1f} min for all seeds "
             f"(training + evaluation minutes per seed: {seed_train}).", "",
             f"Data: the seeded synthetic world (one dataset for all seeds), {cfg.synth.frames} frames at "
             f"{cfg.synth.size[0]}x{cfg.synth.size[1]} ({cfg.synth.splits}), evaluated on the "
             f"`{cfg.eval.split}` split ({first['summary']['samples']} frames). The seed changes the "
             "training (initialisation, order, dropout masks) and the RMM/NM noise. Budget per recipe: "
             f"`{json.dumps(tcfg, sort_keys=True)}` over each recipe's config/train YAML; per-run settings: "
             f"`{json.dumps(cfg.per_run, sort_keys=True)}`; the `10% labels` rows keep the labels of 10 % of the "
             "training frames (`data.labeled_fraction=0.1`). mIoU in %, **mean ± sample std over the seeds**, "
             "DELIVER convention (25 classes; a class absent from truth and prediction counts 0, so absolute "
             "values are low; compare rows).", "",
             f"{present_note(first['summary'])}", "",
             "| method | all sensors | all sensors (present classes) | mIoU^Avg (15, authors) "
             "| mIoU^Avg (15, present classes) | mIoU^E(0.1) | mIoU^Avg (15, told) | missing (14, told) "
             "| RMM Avg | NM | params (M) | latency (ms) | train (min) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k, v in agg.items():
        lines.append(f"| {LABELS.get(k, k)} | {_pm(v['full'])} | {_pm(v.get('full_present'))} | {_pm(v['avg15'])} | "
                     f"{_pm(v.get('avg15_present'))} | {_pm(v['e0.1'])} | "
                     f"{_pm(v.get('avg15_told'))} | {_pm(v.get('missing14_told'))} | {_pm(v.get('rmm'))} | "
                     f"{_pm(v.get('nm'))} | {v['params']['mean'] / 1e6:.3f} | {_pm(v['latency_ms'], 1, 1)} | "
                     f"{_pm(v['train_min'], 1, 1)} |")
    lines += ["", "Authors' EMM: inputs of the missing sensors zeroed and the model not told (RobustSeg "
              "tools/val_mm_EMM.py); told: the availability mask is passed too. RMM Avg = mean over the rates "
              "0.25/0.5/0.75 of mIoU^Avg_RMM; NM = mean over the three levels. Latency: batch 1 at the training "
              "input size on the benchmark's device (RMMSS-FSM runs two networks plus the FSM).", "",
              "### Sanity before claims", "",
              "Two orderings all four papers agree on, tested like the claims (two standard errors of the "
              "difference over the seeds; `rmmss_core/train/benchmark_sanity.py`):", "", *sanity.lines, "",
              "### The papers' claims, checked", "",
              "Each claim is tested on the means over the seeds: it **holds** when the difference exceeds two "
              "standard errors of the difference, **does not hold** when it is below minus two, and is "
              "**within noise** otherwise.", "", *qualify(expectations(agg), sanity), "",
              f"![EMM per subset]({rel}{plots[0]})", "", f"![trade-offs]({rel}{plots[1]})", ""]
    from rmmss_core.train.learning_curves import MAIN, curve_section, describe
    settings = {MAIN: describe(cfg.train),
                **{k: describe(deep_merge(cfg.train, v or {})) for k, v in cfg.curve.variants.items()}}
    curve_lines, curves = curve_section(per_seed, report_dir, rel, cfg.curve.protocol, settings)
    lines += curve_lines
    if "rmmss-fsm" in agg:
        ckpt = Path(per_seed[0]["results"]["rmmss-fsm"]["checkpoint"])
        cache = ckpt.parent / "fsm_gate.json"
        if cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime:
            gate = json.loads(cache.read_text())
        else:
            gate = fsm_gate_weights(ckpt, Path(cfg.out) / "data", cfg.eval.split)
            atomic_write_json(cache, gate)
        three = len(next(iter(gate.values()))) == 3
        lines += ["### What the FSM selects", "",
                  (("Mean per-pixel weight of our FSM variant's logit selection" if three else
                    "Fraction of the selected feature elements (4 stages) that come from each source, in the "
                    "authors' FSM (RobustSeg/UMMSS mmkd/FSM.py, `rmmss_core/models/fsm.py`)")
                   + f", per available subset (seed {per_seed[0]['seed']}, first 32 test frames)."), "",
                  "| subset | teacher | robust (HPDM) |" + (" decoded |" if three else ""),
                  "| --- | ---: | ---: |" + (" ---: |" if three else "")]
        lines += ["| " + k + " | " + " | ".join(f"{x:.2f}" for x in v) + " |" for k, v in gate.items()] + [""]
    lines += ["### Details", "", *class_table(agg, runs, first["summary"], first.get("class_names")),
              *_detail_tables(agg, runs)]
    if cfg.notes and (Path(cfg.notes).is_file() or (Path(__file__).resolve().parents[2] / cfg.notes).is_file()):
        p = Path(cfg.notes) if Path(cfg.notes).is_file() else Path(__file__).resolve().parents[2] / cfg.notes
        lines += [p.read_text().strip(), ""]
    md = report_dir / "robustness.md"
    atomic_write_text(md, "\n".join(lines))
    atomic_write_json(report_dir / "robustness.json", {"name": "robustness", "machine": m, "timings": dict(timings),
                                                        "config": config_to_dict(cfg), "seeds": seeds,
                                                        "aggregate": agg, "sanity": sanity.to_dict(),
                                                        "curves": curves,
                                                        # full per-condition results stay in <out>/results.json
                                                        "per_seed": [{"seed": p["seed"], "timings": p["timings"]}
                                                                     for p in per_seed]})
    if report_dir.resolve() == (Path(__file__).resolve().parents[2] / "docs" / "bench").resolve():
        from rmmss_core.bench.__main__ import write_index
        write_index(report_dir)
    return md
