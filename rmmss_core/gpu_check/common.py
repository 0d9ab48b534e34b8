"""Rows, statuses, the time budget and timing shared by the gpu-check steps.

Every figure the check produces is a :class:`Row`. A row's ``status`` says plainly what happened:

* ``ok``: measured on the device named in the report;
* ``smoke``: the code path ran on the CPU with a stand-in (tiny model, small inputs) so that the
  GPU run cannot break unseen; its figures are not the GPU figures and the report shows none;
* ``not yet run``: needs CUDA (or the GPU run) and this run had none;
* ``skipped``: not run, ``reason`` says why (time budget, a missing optional package...);
* ``failed``: raised; ``reason`` holds the error.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

STATUSES = ("ok", "smoke", "not yet run", "skipped", "failed")


@dataclass
class Row:
    """One line of the report: ``step`` (section), ``name``, ``status``, ``reason``, ``figures``."""

    step: str
    name: str
    status: str = "ok"
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"row status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What every step gets: the device, smoke mode, the deadline, a scratch folder, options."""

    device: torch.device
    smoke: bool
    deadline: float  # time.monotonic() by which the whole check must end
    work: Any  # pathlib.Path scratch folder
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def gpu_row(self, step: str, name: str, **figures: Any) -> Row:
        """A row that only a CUDA device can fill, for a run without one."""
        return Row(step, name, "not yet run", "needs a CUDA device; this run had none", dict(figures))


def time_fn(fn: Callable[[], Any], sync: Callable[[], None], warmup: int, iters: int,
            max_s: float = 30.0) -> dict[str, float]:
    """``warmup`` calls, then up to ``iters`` timed calls (each followed by ``sync``) or ``max_s``
    seconds, whichever comes first. Returns ms: p50, p90, mean, min and the number of runs."""
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters and (time.perf_counter() - start < max_s or len(times) < 3):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]

    return {"p50_ms": pct(50), "p90_ms": pct(90), "mean_ms": statistics.fmean(times), "min_ms": times[0],
            "runs": len(times)}


def guarded(step: str, name: str, fn: Callable[[], Row | list[Row]]) -> list[Row]:
    """Run one row's work; any exception becomes a ``failed`` row naming the error."""
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - one failing row must not hide the others
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else "(no message)"
        return [Row(step, name, "failed", f"{type(e).__name__}: {msg}")]
    return out if isinstance(out, list) else [out]
