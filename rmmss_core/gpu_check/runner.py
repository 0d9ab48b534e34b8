"""Run the gpu-check steps within the time budget, collect the rows, write gpu.md + gpu.json.

Execution order (the report is grouped by step): GPU tests, latency (eager, CUDA graphs), node
pipeline, teacher training step, latency (torch.compile, inside ``compile_share_s``), robustness
(whatever time is left). Every step is guarded: one failing step becomes ``failed`` rows and the
others still run.

The node step belongs to the ROS package (its pipeline lives there): the core knows the step's
name and place, and ``rmmss_ros.bench.gpu_check`` hands the module in (``contributed``). Without it
(``python -m rmmss_core.cli gpu-check``) the step is reported as skipped, with the command to use.
"""
from __future__ import annotations

import importlib
import logging
import platform
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rmmss_core.gpu_check.common import Context, Row, guarded
from rmmss_core.gpu_check.report import render
from rmmss_core.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("rmmss.gpu_check")
STEPS = ("tests", "latency", "node", "train", "robustness")
CONTRIBUTED = ("node",)  # steps whose module another package hands in (run_check's ``contributed``)


def versions() -> dict[str, Any]:
    """Versions of everything the check touches (None = not installed)."""
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda_runtime": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    for name in ("numpy", "triton", "onnx", "onnxruntime", "transformers", "timm", "cv2", "yaml", "tqdm", "pytest",
                 "tensorboard", "matplotlib", "PIL", "open3d", "rclpy", "rosbags"):
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "present")
        except Exception:  # noqa: BLE001 - absent or broken: say so
            out[name] = None
    return out


def machine(device: torch.device) -> dict[str, Any]:
    from rmmss_core.bench.report import machine_info
    m = machine_info()
    m["device"] = str(device)
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        m.update(gpu=p.name, gpu_count=torch.cuda.device_count(), gpu_memory_gb=round(p.total_memory / 2**30, 1),
                 compute_capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count)
    return m


def run_check(device: str = "auto", smoke: bool = False, out: str | Path = "docs/bench", budget_s: float = 540.0,
              data: str | None = None, steps: tuple[str, ...] = STEPS, compile_share_s: float = 180.0,
              command: str = "rmmss gpu-check", contributed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole check; writes ``out/gpu.md`` and ``out/gpu.json`` and returns the JSON document.

    ``contributed``: step name -> module with ``run(ctx) -> list[Row]`` for steps another package
    owns (``{"node": "rmmss_ros.bench.gpu_node"}`` from ``rmmss gpu-check``)."""
    contributed = dict(contributed or {})
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: torch {torch.__version__} sees no CUDA device; "
                           "on a CPU machine run `rmmss gpu-check --device cpu --smoke`")
    if dev.type != "cuda" and not smoke:
        raise ValueError("without CUDA the check only runs as a smoke test: add --smoke "
                         "(the full sizes and budgets are for a GPU)")
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; steps are {list(STEPS)}")
    t0 = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rmmss-gpu-check-") as tmp:
        ctx = Context(dev, smoke, t0 + budget_s, Path(tmp), {"data": data, "out": str(out)})
        plan = [("tests", "tests", lambda: _step("gpu_tests").run(ctx)),
                ("latency", "latency", lambda: _step("latency").run(ctx, "main")),
                ("node", "node", lambda: importlib.import_module(contributed["node"]).run(ctx)),
                ("train", "train", lambda: _step("train_step").run(ctx)),
                ("latency", "latency (compile)", lambda: _compile(ctx, compile_share_s)),
                ("robustness", "robustness", lambda: _step("robustness").run(ctx))]
        timings: dict[str, float] = {}
        for step, label, fn in plan:
            if step not in steps:
                rows.append(Row(step, f"{label}: whole step", "skipped", "left out with --steps"))
                continue
            if step in CONTRIBUTED and step not in contributed:
                rows.append(Row(step, f"{label}: whole step", "skipped",
                                f"the {step} step comes from the ROS package: run `rmmss gpu-check` "
                                "(python -m rmmss_cli gpu-check), not python -m rmmss_core.cli"))
                continue
            log.info("gpu-check: %s (%.0f s left of %.0f)", label, ctx.left_s(), budget_s)
            s0 = time.monotonic()
            rows += guarded(step, f"{label}: whole step", fn)
            timings[label] = round(time.monotonic() - s0, 1)
            log.info("gpu-check: %s done in %.0f s", label, timings[label])
    doc = {"name": "gpu-check", "command": command, "device": str(dev), "smoke": smoke, "budget_s": budget_s,
           "wall_s": round(time.monotonic() - t0, 1), "step_s": timings, "machine": machine(dev),
           "versions": versions(), "rows": [r.to_dict() for r in rows]}
    from rmmss_core.gpu_check.latency import summary
    doc["summary"] = {"latency": summary(rows),
                      "counts": {s: sum(r.status == s for r in rows) for s in ("ok", "smoke", "not yet run",
                                                                               "skipped", "failed")}}
    out = Path(out)
    atomic_write_json(out / "gpu.json", doc)
    atomic_write_text(out / "gpu.md", render(doc))
    log.info("gpu-check: wrote %s and %s in %.0f s", out / "gpu.md", out / "gpu.json", doc["wall_s"])
    return doc


def _step(module: str):
    return importlib.import_module(f"rmmss_core.gpu_check.{module}")


def _compile(ctx: Context, share_s: float) -> list[Row]:
    ctx.options["compile_deadline"] = min(ctx.deadline - 90.0, time.monotonic() + share_s)
    return _step("latency").run(ctx, "compile")
