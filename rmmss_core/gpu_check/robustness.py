"""Step 5: the robustness benchmark's GPU preset (config/benchmark/gpu.yaml: every recipe, MiT-B0 at
256 x 320, batch 16, bf16), scaled to the minutes left, evaluated with EMM/RMM/NM.

Data: the synthetic world needs Open3D to render, which the GPU machine lacks. So the dataset is
brought along: ``rmmss gpu-check --pack-data FILE.tar`` (on a machine with Open3D) writes the
encoded PNGs of a small seeded dataset at the preset's resolution (no ``raw/`` folder: readers do
not use it), 23 MB for the default 100 frames; ``--data FILE.tar`` (or a dataset folder) hands it to the
check. Without ``--data`` the data are generated when Open3D is importable, else the step is skipped
and says so.

The full report (plots, per-class tables) goes to ``<out>/gpu_robustness/robustness.md`` next to
gpu.md; ``docs/bench/robustness.md`` keeps the full preset's results.

Scaling: a probe times five B0 training steps (batch 16, 256 x 320, bf16); every recipe then gets
``iters = budget / (runs x 2 x step)`` (the factor 2 covers teachers' forwards in distillation,
data loading and validation), capped at the preset's 1000. The headline table is copied into gpu.md.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import tarfile
import time
from pathlib import Path
from typing import Any

from rmmss_core.gpu_check.common import Context, Row, guarded

STEP = "robustness"
log = logging.getLogger("rmmss.gpu_check")
PACK_META = "gpu_check_data.json"
MIN_ITERS = 20


def pack_data(out: str | Path, frames: int = 100, size: tuple[int, int] = (320, 256), sequences: int = 10,
              workers: int = 2, seed: int = 0) -> Path:
    """Generate the seeded synthetic dataset (needs Open3D) and tar its encoded images -> ``out``."""
    import tempfile

    from rmmss_core.cli.synth import parse_splits
    from rmmss_core.data.synth.config import SynthConfig
    from rmmss_core.data.synth.generate import generate

    out = Path(out)
    splits = "train=0.7,val=0.1,test=0.2"
    with tempfile.TemporaryDirectory(prefix="rmmss-pack-") as tmp:
        root = Path(tmp) / "data"
        generate(SynthConfig(frames=frames, width=size[0], height=size[1], sequences=sequences,
                             splits=parse_splits(splits), seed=seed), root, workers=workers, overwrite=True,
                 progress=True)
        written = json.loads((root / "rmmss_dataset.json").read_text()).get("frames_per_split", {})
        meta = {"frames": int(sum(written.values())) or frames, "size": list(size), "sequences": sequences, "splits": splits, "seed": seed}
        (root / PACK_META).write_text(json.dumps(meta))
        part = out.with_name(out.name + ".part")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(part, "w") as tar:
            for p in sorted(root.iterdir()):
                if p.name != "raw":
                    tar.add(p, arcname=f"data/{p.name}")
        part.replace(out)
    return out


def _data(ctx: Context, root: Path) -> tuple[Path | None, dict[str, Any], str]:
    """The dataset at ``root`` (= the benchmark's ``<out>/data``) with its synth settings and how it
    was obtained, or (None, {}, why not)."""
    src = ctx.options.get("data")
    root.parent.mkdir(parents=True, exist_ok=True)
    if src:
        src = Path(src)
        if src.is_dir():
            root.symlink_to(src.resolve(), target_is_directory=True)
            how = f"brought folder {src}"
        elif src.is_file():
            _extract(src, root.parent)
            how = f"brought archive {src.name} ({src.stat().st_size / 2**20:.1f} MB)"
        else:
            raise FileNotFoundError(f"--data {src}: no such file or folder")
    elif importlib.util.find_spec("open3d") is None:
        return None, {}, ("no --data given and Open3D is not installed, so the synthetic data cannot be "
                          "rendered here; bring them with --data (see docs/bench/gpu.md)")
    else:
        frames, size = (20, (80, 64)) if ctx.smoke else (100, (320, 256))
        pack = pack_data(root.parent / "data.tar", frames=frames, size=size, sequences=4 if ctx.smoke else 10,
                         workers=1)
        _extract(pack, root.parent)
        how = "generated here (Open3D present)"
    meta = json.loads((root / PACK_META).read_text()) if (root / PACK_META).is_file() else {}
    return root, meta, how


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a --pack-data archive (its members sit under ``data/``) into ``dest``."""
    with tarfile.open(archive) as tar:
        bad = [m.name for m in tar.getmembers() if not m.name.startswith("data/") and m.name != "data"]
        if bad:
            raise ValueError(f"--data {archive}: not a gpu-check data archive (member {bad[0]!r} outside data/)")
        tar.extractall(dest, filter="data")


def _probe_step_s(ctx: Context) -> float:
    from rmmss_core.gpu_check.train_step import teacher_step
    if ctx.smoke:
        return teacher_step(ctx.device, "tiny", (64, 80), 4, "bf16", ctx.sync, 2, 1)["p50_ms"] / 1e3
    return teacher_step(ctx.device, "b0", (256, 320), 16, "bf16", ctx.sync, 5, 2)["p50_ms"] / 1e3


def run(ctx: Context) -> list[Row]:
    name = "GPU preset, every recipe, scaled to the minutes left" if not ctx.smoke else \
        "smoke preset, the dropout recipe (CPU smoke of the same code path)"
    if not ctx.cuda and not ctx.smoke:
        return [ctx.gpu_row(STEP, name)]
    if ctx.left_s() < 60:
        return [Row(STEP, name, "skipped", f"time budget: {ctx.left_s():.0f} s left, the scaled preset needs >= 60 s")]
    return guarded(STEP, name, lambda: _run(ctx, name))


def _run(ctx: Context, name: str) -> list[Row]:
    from rmmss_core.train.benchmark import RUNS, load_preset, train_all
    from rmmss_core.train.benchmark_report import evaluate_all, headline, write_robustness_report

    t0 = time.monotonic()
    work = Path(ctx.work) / "robustness"
    data, meta, how = _data(ctx, work / "out" / "data")
    if data is None:
        return [Row(STEP, name, "skipped", how)]
    t_data = time.monotonic() - t0
    step_s = _probe_step_s(ctx) if not ctx.smoke else 0.0
    runs = len(RUNS)
    reserve = 60.0 if not ctx.smoke else 5.0  # evaluation of 9 checkpoints (EMM, RMM, NM) + report
    budget = ctx.left_s() - reserve
    iters = 2 if ctx.smoke else min(1000, int(budget / (runs * 2.0 * step_s)))
    if iters < MIN_ITERS and not ctx.smoke:
        return [Row(STEP, name, "skipped", f"time budget: {budget:.0f} s left buys {iters} steps per recipe "
                                           f"(probe {step_s * 1e3:.0f} ms/step); fewer than {MIN_ITERS} is meaningless")]
    preset = "smoke" if ctx.smoke else "gpu"
    overrides = [f"out={work / 'out'}", "report_dir=", f"device={ctx.device}",
                 f"train.iters={iters}", "train.val_every=0", f"train.ckpt_every={iters}",
                 f"train.log_every={max(1, iters // 4)}", "train.progress=false", "eval.latency_iters=10"]
    if ctx.smoke:  # the wrapper's code path; the harness itself has its own tests
        overrides += ["runs=[dropout]", "eval.protocols=[emm]", "eval.max_samples=2"]
    if meta:
        overrides += [f"synth.frames={meta['frames']}", f"synth.size=[{meta['size'][0]},{meta['size'][1]}]",
                      f"synth.sequences={meta['sequences']}", f"synth.splits={meta['splits']}"]
    cfg = load_preset(preset, None, overrides)
    t1 = time.monotonic()
    trained = train_all(cfg, data, work / "out" / "runs")
    t2 = time.monotonic()
    results = evaluate_all(cfg, data, work / "out" / "runs")
    t3 = time.monotonic()
    timings = {"synth_s": t_data, "train_s": t2 - t1, "eval_s": t3 - t2, "total_s": t3 - t0}
    report: Any = "not written in a smoke run"
    if not ctx.smoke and importlib.util.find_spec("matplotlib") is None:
        report = "not written: matplotlib is not installed (the report's plots need it)"
    elif not ctx.smoke:  # the full report (plots, per-class tables) next to gpu.md
        per_seed = [{"seed": cfg.seed, "results": results, "trained": trained, "timings": timings}]
        report = write_robustness_report(cfg, per_seed, timings, Path(ctx.options["out"]) / "gpu_robustness",
                                         f"rmmss gpu-check (robustness step: {preset} preset, {iters} steps per recipe)")
    table = {k: {kk: float(vv) for kk, vv in headline(v["summary"]).items()} for k, v in results.items()}
    fig = {"preset": preset, "iters_per_recipe": iters, "probe_step_ms": step_s * 1e3 if step_s else None, "data": how,
           "data_frames": meta.get("frames"), "data_size": meta.get("size"), "timings_s": timings,
           "headline": table, "trained_s": {k: v.get("seconds") for k, v in trained.items()},
           "report": str(report)}
    status, note = ("smoke", "CPU smoke: smoke preset, the dropout recipe, 2 steps each; figures meaningless") \
        if ctx.smoke else ("ok", f"scaled: {iters} steps per recipe instead of 1000")
    return [Row(STEP, name, status, note, fig)]
