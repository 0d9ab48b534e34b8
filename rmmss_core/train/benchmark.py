"""The robustness benchmark: synthetic data -> every recipe with the same budget, for several
training seeds -> EMM/RMM/NM evaluation side by side -> ``docs/bench/robustness.md`` (+ JSON,
plots) with mean +- std over the seeds for every figure.

    rmmss benchmark --preset cpu     # 3 seeds side by side, <= 90 min on 2 CPU cores
    rmmss benchmark --preset gpu     # MiT-B0 at 256 x 320 on one H100
    rmmss benchmark --preset smoke   # minutes; checks the harness (report under the run folder)
    rmmss benchmark --preset curves  # learning curves only: teacher + dropout over input / model sizes

Layout: ``<out>/data`` (one synthetic dataset for all seeds), ``<out>/seed<N>/runs/<run>`` and
``<out>/seed<N>/results.json``. With ``jobs > 1`` the seeds run side by side as separate
processes (one thread each; logs in ``<out>/seed<N>/log.txt``). Re-running resumes: finished runs
(same resolved config) are reused, interrupted ones resume from their ``last.pt``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rmmss_core.train.benchmark_stats import deep_merge
from rmmss_core.train.config import TrainConfig
from rmmss_core.train.learning_curves import MAIN, CurveSettings
from rmmss_core.utils.config import config_from_dict, config_to_dict, dump_config, load_config
from rmmss_core.utils.io import atomic_write_json

log = logging.getLogger("rmmss.benchmark")
ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("cpu", "gpu", "smoke", "curves")

# The stages, in order: run name, recipe, recipe config (config/train), frozen inputs {role: run},
# settings merged over the recipe's YAML (before the preset's).
SEMI = {"data": {"labeled_fraction": 0.1}}
RUNS: tuple[tuple[str, str, str, dict[str, str], dict[str, Any]], ...] = (
    ("teacher", "teacher", "teacher.yaml", {}, {}),
    ("teacher_lidar", "teacher", "teacher_lidar.yaml", {}, {}),
    ("dropout", "dropout", "dropout.yaml", {}, {}),
    ("anyseg", "anyseg", "anyseg.yaml", {"teacher": "teacher"}, {}),
    ("rmmss-hpdm", "rmmss-hpdm", "rmmss_hpdm.yaml", {"teacher": "teacher"}, {}),
    ("rmmss-fsm", "rmmss-fsm", "rmmss_fsm.yaml", {"teacher": "teacher", "robust": "rmmss-hpdm"}, {}),
    ("m3l", "m3l", "m3l.yaml", {}, {}),
    ("u2mkd", "u2mkd", "u2mkd.yaml", {"teacher": "teacher_lidar"}, {}),
    ("compress", "compress", "compress.yaml", {"teacher": "rmmss-fsm"}, {}),
    # semi-supervised: 10 % of the training frames keep their labels
    ("dropout_semi", "dropout", "dropout.yaml", {}, SEMI),
    ("m3l_semi", "m3l", "m3l.yaml", {}, SEMI),
)


@dataclass(frozen=True)
class SynthSettings:
    frames: int = 400
    size: tuple[int, int] = (160, 128)  # width, height of the written images
    sequences: int = 8
    splits: str = "train=0.7,val=0.1,test=0.2"
    seed: int = 0
    workers: int = 2


@dataclass(frozen=True)
class EvalSettings:
    split: str = "test"
    protocols: tuple[str, ...] = ("emm", "emm_told", "rmm", "nm")
    tell_missing: bool = False  # "emm" as the authors (model not told); "emm_told" always tells
    max_samples: int = 0  # 0 = the whole split
    batch_size: int = 8
    latency_iters: int = 20


@dataclass(frozen=True)
class BenchmarkConfig:
    """One preset of the benchmark (config/benchmark/<preset>.yaml)."""

    preset: str = "cpu"
    out: str = "runs/benchmark/cpu"
    report_dir: str = "docs/bench"  # "" = <out>/report (the smoke preset never touches docs/)
    device: str = "auto"
    seed: int = 0  # the training seed when ``seeds`` is empty
    seeds: tuple[int, ...] = ()  # training seeds (each trains every run); () = (seed,)
    jobs: int = 1  # seeds trained side by side (separate processes, one thread each)
    synth: SynthSettings = field(default_factory=SynthSettings)
    train: dict[str, Any] = field(default_factory=dict)  # merged into every recipe's YAML
    per_run: dict[str, Any] = field(default_factory=dict)  # run name -> extra YAML merged last
    runs: tuple[str, ...] = tuple(r[0] for r in RUNS)
    eval: EvalSettings = field(default_factory=EvalSettings)
    curve: CurveSettings = field(default_factory=CurveSettings)  # learning curves (train/learning_curves.py)
    notes: str = ""  # Markdown file (relative to the repo) appended to the report as the analysis

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(self.seeds) or (self.seed,)

    def __post_init__(self):
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if len(set(self.seed_list)) != len(self.seed_list):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        known = [r[0] for r in RUNS]
        bad = [r for r in self.runs if r not in known]
        if bad:
            raise ValueError(f"unknown benchmark runs {bad}; known: {known}")
        for name in self.runs:
            needs = next(r[3] for r in RUNS if r[0] == name)
            missing = [src for src in needs.values() if src not in self.runs]
            if missing:
                raise ValueError(f"run {name!r} needs {missing}, which the preset leaves out")
        if self.curve.every:
            bad = [r for r in self.curve.runs if r not in known]
            if bad:
                raise ValueError(f"unknown curve.runs {bad}; known: {known}")
            framed = [r for r in self.curve.runs if next(x[3] for x in RUNS if x[0] == r)] if self.curve.variants else []
            if framed:
                raise ValueError(f"curve.variants retrain {framed}, which need frozen models; "
                                 "give curve variants runs without a teacher (teacher, dropout, m3l, ...)")


def load_preset(preset: str | None, path: str | None = None, overrides: list[str] | tuple = ()) -> BenchmarkConfig:
    if path is None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {PRESETS}")
        path = str(ROOT / "config" / "benchmark" / f"{preset}.yaml")
    return load_config(BenchmarkConfig, path, list(overrides))


_merge = deep_merge


def run_config(cfg: BenchmarkConfig, name: str, data: Path, runs_dir: Path) -> TrainConfig:
    """The resolved TrainConfig of one run: recipe YAML <- preset ``train`` <- ``per_run[name]``."""
    _, recipe, yaml_name, needs, extra = next(r for r in RUNS if r[0] == name)
    raw = yaml.safe_load((ROOT / "config" / "train" / yaml_name).read_text()) or {}
    raw = _merge(_merge(_merge(raw, extra), cfg.train), cfg.per_run.get(name, {}))
    raw.update(recipe=recipe, seed=cfg.seed, device=cfg.device)
    if cfg.curve.every and name in cfg.curve.runs:
        raw["curve_every"] = cfg.curve.every
    raw.setdefault("data", {})["root"] = str(data)
    for role, src in needs.items():
        raw[role] = str(runs_dir / src / "best.pt")
    return config_from_dict(TrainConfig, raw, where=f"benchmark run {name}")


def make_data(cfg: BenchmarkConfig, out: Path) -> Path:
    """Generate (or reuse) the seeded synthetic dataset."""
    from rmmss_core.cli.synth import parse_splits
    from rmmss_core.data.synth.config import SynthConfig
    from rmmss_core.data.synth.generate import generate
    data = out / "data"
    s = cfg.synth
    synth_cfg = SynthConfig(frames=s.frames, width=s.size[0], height=s.size[1], sequences=s.sequences,
                            splits=parse_splits(s.splits), seed=s.seed)
    stamp = out / "data.yaml"
    if data.is_dir() and stamp.is_file() and yaml.safe_load(stamp.read_text()) == config_to_dict(s):
        log.info("reusing the synthetic dataset in %s", data)
        return data
    generate(synth_cfg, data, workers=s.workers, overwrite=True, progress=False)
    dump_config(s, stamp)
    return data


def train_all(cfg: BenchmarkConfig, data: Path, runs_dir: Path) -> dict[str, dict[str, Any]]:
    """Train every run in order; reuse finished ones whose resolved config did not change."""
    from rmmss_core.train.run import train_recipe
    done: dict[str, dict[str, Any]] = {}
    for name in cfg.runs:
        tcfg = run_config(cfg, name, data, runs_dir)
        out = runs_dir / name
        result = out / "result.json"
        if result.is_file() and (out / "config.yaml").is_file() and \
                load_config(TrainConfig, out / "config.yaml") == tcfg and (out / "best.pt").is_file():
            log.info("run %s: already trained, reusing %s", name, out)
        else:
            _drop_stale(out, tcfg)
            log.info("run %s: training %s for %d steps", name, tcfg.recipe, tcfg.iters)
            res = train_recipe(tcfg, out, resume=True)
            if res.interrupted:
                raise KeyboardInterrupt(f"run {name} interrupted at step {res.step}; re-run to resume")
        done[name] = json.loads(result.read_text())
    return done


def _drop_stale(out: Path, tcfg: TrainConfig) -> None:
    """A run folder left by another config (changed preset or overrides) is cleared, not resumed."""
    from rmmss_core.train.checkpoint import load_training_checkpoint
    from rmmss_core.train.trainer import check_resumable
    last = out / "last.pt"
    if not last.is_file():
        return
    try:
        check_resumable(load_training_checkpoint(last).get("train_config", {}), tcfg, last)
    except (ValueError, RuntimeError) as e:
        log.warning("run %s: %s; starting it afresh", out.name, e)
        for f in ("last.pt", "best.pt", "result.json"):
            (out / f).unlink(missing_ok=True)


def run_seed(cfg: BenchmarkConfig, seed: int, data: Path) -> dict[str, Any]:
    """Train and evaluate every run for one training seed; writes and returns
    ``<out>/seed<N>/results.json`` ``{"seed", "results", "trained", "timings"}``."""
    from rmmss_core.train.benchmark_report import evaluate_all
    cfg_s = dataclasses.replace(cfg, seed=seed)
    root = Path(cfg.out) / f"seed{seed}"
    t1 = time.perf_counter()
    trained = train_all(cfg_s, data, root / "runs")
    t2 = time.perf_counter()
    results = evaluate_all(cfg_s, data, root / "runs")
    t3 = time.perf_counter()
    curves = run_curves(cfg_s, data, root)
    timings = {"train_s": t2 - t1, "eval_s": t3 - t2, "curves_s": time.perf_counter() - t3}
    previous = root / "results.json"
    if previous.is_file() and timings["train_s"] < 60:  # everything reused: keep the run that trained
        timings = json.loads(previous.read_text()).get("timings", timings)
    out = {"seed": seed, "results": results, "trained": trained, "timings": timings, "curves": curves}
    atomic_write_json(previous, out)
    return out


def run_curves(cfg: BenchmarkConfig, data: Path, root: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Learning curves of one seed: ``{variant: {run: rows}}``. ``main`` evaluates the snapshots
    the benchmark's own runs kept; each ``curve.variants`` entry first trains ``curve.runs`` with its
    settings merged over the preset's ``train`` (in ``root/curves/<variant>``)."""
    from rmmss_core.train.distributed import resolve_device
    from rmmss_core.train.learning_curves import evaluate_curve
    if not cfg.curve.every:
        return {}
    device = resolve_device(cfg.device)
    dirs = {MAIN: root / "runs"}
    for variant, extra in cfg.curve.variants.items():
        vcfg = dataclasses.replace(cfg, train=_merge(cfg.train, extra or {}), runs=tuple(cfg.curve.runs))
        log.info("curve variant %s: training %s", variant, ", ".join(cfg.curve.runs))
        train_all(vcfg, data, root / "curves" / variant)
        dirs[variant] = root / "curves" / variant
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for variant, runs_dir in dirs.items():
        # the benchmark's own runs: those of curve.runs it trains; variants train all of them
        for run in (r for r in cfg.curve.runs if variant != MAIN or r in cfg.runs):
            rows = evaluate_curve(runs_dir / run, data, cfg.curve, cfg.eval.split, device, cfg.eval.batch_size, cfg.seed)
            if rows:
                out.setdefault(variant, {})[run] = rows
    return out


def _run_seeds_in_processes(cfg: BenchmarkConfig, out: Path) -> None:
    """Each seed in its own process (``--seed-worker``), ``cfg.jobs`` at a time, one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending = list(cfg.seed_list)
    running: list[tuple[int, subprocess.Popen, Any]] = []
    failed: list[int] = []
    while pending or running:
        while pending and len(running) < cfg.jobs:
            seed = pending.pop(0)
            (out / f"seed{seed}").mkdir(parents=True, exist_ok=True)
            logf = open(out / f"seed{seed}" / "log.txt", "a")  # noqa: SIM115 (closed below)
            cmd = [sys.executable, "-m", "rmmss_core.train.benchmark", "--config", str(out / "benchmark.yaml"),
                   "--seed-worker", str(seed)]
            log.info("seed %d: started (log %s)", seed, logf.name)
            running.append((seed, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env), logf))
        time.sleep(2.0)
        for item in list(running):
            seed, proc, logf = item
            if proc.poll() is not None:
                logf.close()
                running.remove(item)
                log.info("seed %d: finished with exit code %d", seed, proc.returncode)
                if proc.returncode != 0:
                    failed.append(seed)
    if failed:
        raise RuntimeError(f"benchmark seeds {failed} failed; see {out}/seed<N>/log.txt")


def main(cfg: BenchmarkConfig, command: str = "") -> Path:
    """The whole benchmark; returns the Markdown report's path. ``command`` is quoted in the report."""
    from rmmss_core.train.benchmark_report import write_robustness_report
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "benchmark.yaml")
    t0 = time.perf_counter()
    data = make_data(cfg, out)
    timings: dict[str, float] = {"synth_s": time.perf_counter() - t0}
    if cfg.jobs > 1 and len(cfg.seed_list) > 1:
        _run_seeds_in_processes(cfg, out)
        per_seed = [json.loads((out / f"seed{s}" / "results.json").read_text()) for s in cfg.seed_list]
    else:
        per_seed = [run_seed(cfg, s, data) for s in cfg.seed_list]
    timings["total_s"] = time.perf_counter() - t0
    previous = out / "results.json"
    if previous.is_file() and timings["total_s"] < 120:  # everything reused: report the run that trained
        timings = json.loads(previous.read_text()).get("timings", timings)
    atomic_write_json(previous, {"seeds": list(cfg.seed_list), "per_seed": per_seed, "timings": timings})
    report_dir = Path(cfg.report_dir) if cfg.report_dir else out / "report"
    return write_robustness_report(cfg, per_seed, timings, report_dir,
                                   command or f"rmmss benchmark --preset {cfg.preset}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rmmss_core.train.benchmark")
    p.add_argument("--preset", default="cpu", choices=PRESETS)
    p.add_argument("--config", default=None)
    p.add_argument("--seed-worker", type=int, default=None,
                   help="internal: train and evaluate one seed of an existing benchmark folder")
    p.add_argument("overrides", nargs="*", default=[])
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    a = parse_args()
    c = load_preset(a.preset, a.config, a.overrides)
    if a.seed_worker is not None:
        run_seed(c, a.seed_worker, Path(c.out) / "data")
    else:
        print(main(c, " ".join(["rmmss benchmark", "--preset", a.preset, *a.overrides])))
