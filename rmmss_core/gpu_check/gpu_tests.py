"""Step 1: the ``gpu``-marked tests, in a pytest subprocess, one row per test.

Files: test/test_backends.py (torch CUDA fp16 + CUDA graphs vs CPU, onnxruntime CUDA provider),
test/test_gpu.py (export of a CUDA model, NCCL: two processes with two GPUs, else a one-rank NCCL
group with DDP), test/test_preprocess_torch.py (the device preprocessing on CUDA vs the numpy
path). Only these files are collected: others import rclpy, which the GPU machine lacks. Without
CUDA every test is reported "not yet run" (collected and skipped by test/conftest.py).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rmmss_core.gpu_check.common import Context, Row

STEP = "tests"
ROOT = Path(__file__).resolve().parents[2]
FILES = ("test/test_backends.py", "test/test_gpu.py", "test/test_preprocess_torch.py")
TIMEOUT_S = 240.0


def run(ctx: Context) -> list[Row]:
    if importlib.util.find_spec("pytest") is None:
        return [Row(STEP, "gpu-marked tests", "skipped", "pytest is not installed (bring its wheel, see gpu.md)")]
    missing = [f for f in FILES if not (ROOT / f).is_file()]
    if missing:
        return [Row(STEP, "gpu-marked tests", "skipped", f"test files not found: {missing} (run from a checkout)")]
    xml = Path(ctx.work) / "gpu-tests.xml"
    timeout = max(30.0, min(TIMEOUT_S, ctx.left_s() - 60))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rs",
           f"--junitxml={xml}", *FILES]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [Row(STEP, "gpu-marked tests", "failed", f"pytest did not finish in {timeout:.0f} s")]
    wall = time.monotonic() - t0
    if not xml.is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        return [Row(STEP, "gpu-marked tests", "failed", f"pytest exit {proc.returncode}: {' | '.join(tail)}")]
    rows = parse_junit(xml, ctx)
    for r in rows:
        r.figures["suite_wall_s"] = round(wall, 1)
    return rows or [Row(STEP, "gpu-marked tests", "failed", "pytest collected no gpu-marked test")]


def parse_junit(path: Path, ctx: Context) -> list[Row]:
    """JUnit XML -> one row per test case: ok, failed (first line of the message) or skipped."""
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        fig = {"time_s": float(case.get("time", 0.0))}
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            msg = (failure.get("message") or failure.text or "").strip().splitlines()
            rows.append(Row(STEP, name, "failed", (msg[0] if msg else "failed")[:300], fig))
        elif skipped is not None:
            why = (skipped.get("message") or "").strip()
            if not ctx.cuda and "CUDA" in why:
                rows.append(Row(STEP, name, "not yet run", "needs a CUDA device; this run had none", fig))
            else:
                rows.append(Row(STEP, name, "skipped", why[:300], fig))
        else:
            rows.append(Row(STEP, name, "ok", "", fig))
    return rows
