"""Latency, throughput and peak memory per backend, resolution and number of modalities.

Shared by ``rmmss bench`` and ``make bench`` (rmmss_core/bench/deploy.py). Every figure times
``backend.infer`` end to end as the node calls it: host inputs in, host uint8 mask out.
With k modalities the mask is the first k of R, D, E, L (R, RD, RDE, RDEL); the graph is the same
for every subset (masked arithmetic), so k changes the work only where a model skips branches.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmmss_core.deploy.backends import Backend, create_backend
from rmmss_core.deploy.export import cached_export, random_inputs
from rmmss_core.modalities import NUM_MODALITIES

log = logging.getLogger(__name__)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float | None:
    """Resident memory of this process in MiB (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return None


class PeakMemory:
    """Peak host RSS (sampled every ``interval_s``) and peak CUDA memory while the block runs,
    both in MiB above the level at entry (run_matrix: loading the backend and its first run,
    i.e. weights, arenas and workspaces this backend adds to the process)."""

    def __init__(self, cuda: bool, interval_s: float = 0.005):
        self.cuda, self.interval_s = cuda, interval_s
        self.host_mb: float | None = None
        self.cuda_mb: float | None = None

    def __enter__(self) -> PeakMemory:
        self._base = rss_mb()
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._cuda_base = torch.cuda.mem_get_info()[1] - torch.cuda.mem_get_info()[0]
            self._cuda_peak = self._cuda_base
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = rss_mb()
            if now is not None and self._peak is not None:
                self._peak = max(self._peak, now)
            if self.cuda:  # device memory of every allocator (ORT, TensorRT), not only torch's
                free, total = torch.cuda.mem_get_info()
                self._cuda_peak = max(self._cuda_peak, total - free)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self._base is not None and self._peak is not None:
            self.host_mb = self._peak - self._base
        if self.cuda:
            torch.cuda.synchronize()
            self.cuda_mb = max(self._cuda_peak - self._cuda_base,
                               torch.cuda.max_memory_allocated()) / 2**20


def first_k_mask(k: int, batch: int) -> np.ndarray:
    """``B x 4`` bool with the first k modalities present (k = 1 -> R, 4 -> RDEL)."""
    if not 1 <= k <= NUM_MODALITIES:
        raise ValueError(f"number of modalities must be 1..{NUM_MODALITIES}, got {k}")
    mask = np.zeros((batch, NUM_MODALITIES), dtype=bool)
    mask[:, :k] = True
    return mask


def bench_backends(backends: Sequence[Backend], size: tuple[int, int], modalities: Sequence[int],
                   batch: int = 1, warmup: int = 3, iters: int = 20,
                   memory: dict[str, PeakMemory] | None = None) -> list[dict[str, Any]]:
    """One record per backend and number of modalities: p50/p90/p99 ms, frames/s, peak memory.

    ``memory``: per backend name, a measurement that already covers loading and the first runs
    (run_matrix); otherwise the peak during the warm-up runs of each k is reported.

    The timed runs of the backends are interleaved (A, B, A, B, ...), so a machine whose load
    changes during the run slows every backend alike and the ratios stay meaningful.
    """
    inputs = random_inputs(batch, size)
    records = []
    for k in modalities:
        available = first_k_mask(k, batch)
        measured = {}
        for b in backends:
            with PeakMemory(cuda=b.device.startswith("cuda")) as mem:
                for _ in range(max(1, warmup)):
                    b.infer(inputs, available)
            measured[b.name] = (memory or {}).get(b.name, mem)
        times: dict[str, list[float]] = {b.name: [] for b in backends}
        for _ in range(iters):
            for b in backends:
                t0 = time.perf_counter()
                b.infer(inputs, available)  # returns the host mask: synchronous by contract
                times[b.name].append((time.perf_counter() - t0) * 1e3)
        for b in backends:
            stats = _percentiles(times[b.name])
            mem = measured[b.name]
            records.append({
                "backend": b.name, "device": b.device, "precision": b.precision,
                "height": size[0], "width": size[1], "modalities": k, "batch": batch, **stats,
                "throughput_fps": round(batch * 1e3 / stats["mean_ms"], 2),
                "peak_host_mb": None if mem.host_mb is None else round(mem.host_mb, 1),
                "peak_cuda_mb": None if mem.cuda_mb is None else round(mem.cuda_mb, 1),
            })
            log.info("%s %dx%d (WxH) k=%d: p50 %.2f ms", b.name, size[1], size[0], k, stats["p50_ms"])
    return records


def _percentiles(times: list[float]) -> dict[str, Any]:
    t = np.sort(np.asarray(times))
    pct = {f"p{p}_ms": round(float(t[min(len(t) - 1, int(round(p / 100 * (len(t) - 1))))]), 3)
           for p in (50, 90, 99)}
    return {**pct, "mean_ms": round(float(t.mean()), 3), "min_ms": round(float(t[0]), 3), "runs": len(t)}


def run_matrix(model: str | Path, backends: Sequence[str], sizes: Sequence[tuple[int, int]],
               modalities: Sequence[int], device: str = "cpu", precision: str = "fp32", batch: int = 1,
               warmup: int = 3, iters: int = 20, cache_dir: str | Path | None = None,
               options: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every backend x size x number of modalities; per size the backends run side by side.

    ``model``: a ``.pt`` checkpoint (every backend; ONNX exported per size into ``cache_dir``) or an
    ``.onnx`` file (onnxruntime/tensorrt at its exported size only).
    """
    model = Path(model)
    records: list[dict[str, Any]] = []
    for size in sizes:
        loaded: list[Backend] = []
        load_s: dict[str, float] = {}
        memory: dict[str, PeakMemory] = {}
        inputs, available = random_inputs(batch, tuple(size)), first_k_mask(max(modalities), batch)
        try:
            for kind in backends:
                path = model
                if kind != "torch" and model.suffix == ".pt":
                    path = cached_export(model, cache_dir, input_size=tuple(size), batch=batch,
                                         fp16=precision == "fp16")
                elif kind == "torch" and model.suffix != ".pt":
                    raise ValueError(f"the torch backend needs a .pt checkpoint, got {model}")
                with PeakMemory(cuda=device.startswith("cuda")) as memory[kind]:  # load + first run
                    t0 = time.perf_counter()
                    loaded.append(create_backend(kind, path, device=device, precision=precision,
                                                 **(options or {}).get(kind, {})))
                    load_s[kind] = round(time.perf_counter() - t0, 2)
                    loaded[-1].infer(inputs, available)
            for rec in bench_backends(loaded, tuple(size), modalities, batch, warmup, iters, memory):
                records.append({**rec, "load_s": load_s[rec["backend"]]})
        finally:
            for b in loaded:
                b.close()
    return records


def to_markdown(records: Sequence[dict[str, Any]], reference: str = "torch") -> str:
    """A table per record plus, when ``reference`` was run, each backend's p50 ratio to it."""
    ref = {(r["height"], r["width"], r["modalities"]): r["p50_ms"] for r in records if r["backend"] == reference}
    lines = ["| backend | device | precision | size (WxH) | modalities | p50 ms | p90 ms | p99 ms | frames/s | "
             f"peak host MiB | peak GPU MiB | p50 / {reference} |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in records:
        base = ref.get((r["height"], r["width"], r["modalities"]))
        ratio = f"{r['p50_ms'] / base:.2f}" if base else "-"
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['width']}x{r['height']} | "
            f"{r['modalities']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['throughput_fps']:.1f} | {_fmt(r.get('peak_host_mb'))} | {_fmt(r.get('peak_cuda_mb'))} | {ratio} |")
    return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"
