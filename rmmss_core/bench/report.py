"""The report every benchmark returns, machine description, and a timing helper."""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class BenchReport:
    """One benchmark's result: a Markdown section (tables, notes) and machine-readable records."""

    name: str
    title: str
    markdown: str
    records: list[dict[str, Any]] = field(default_factory=list)
    command: str = "make bench"


def machine_info() -> dict[str, Any]:
    info = {
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def time_callable(fn: Callable[[], Any], warmup: int = 3, iters: int = 20,
                  min_time_s: float = 0.0, sync_cuda: bool = False) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times, then time it ``iters`` times (at least ``min_time_s`` total).

    Returns milliseconds: p50, p90, p99, mean, min, and the number of timed runs.
    """
    for _ in range(warmup):
        fn()
    if sync_cuda:
        torch.cuda.synchronize()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters or (time.perf_counter() - start) < min_time_s:
        t0 = time.perf_counter()
        fn()
        if sync_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "mean_ms": statistics.fmean(times), "min_ms": times[0], "runs": len(times)}
