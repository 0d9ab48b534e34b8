"""Generate a synthetic dataset: sequences in parallel worker processes, with a progress bar.

Output: DELIVER's layout (see :mod:`rmmss_core.data.synth.writer`) and ``rmmss_dataset.json`` at
the root (provenance, settings, sequences and their splits, the encodings' spec). Results depend
only on the settings and the seed, never on the number of workers.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open3d as o3d
from tqdm import tqdm

import rmmss_core
from rmmss_core.classes import DELIVER
from rmmss_core.data.layout import DATASET_INFO
from rmmss_core.data.synth.config import SequencePlan, SynthConfig, plan_sequences
from rmmss_core.data.synth.sequence import generate_sequence
from rmmss_core.utils.io import atomic_write_json

log = logging.getLogger(__name__)
FORMAT = "rmmss-synth-v1"


def _worker(job: tuple[SynthConfig, SequencePlan, str, int]) -> dict:
    cfg, plan, root, nthreads = job
    return generate_sequence(cfg, plan, Path(root), nthreads)


def generate(cfg: SynthConfig, out: str | Path, workers: int = 1, overwrite: bool = False,
             progress: bool = True, on_sequence: Callable[[dict], None] | None = None) -> dict:
    """Write the dataset described by ``cfg`` into ``out``; returns the ``rmmss_dataset.json`` dict.

    workers: processes (1 = in this process). Refuses a non-empty ``out`` unless ``overwrite``.
    """
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out {root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise ValueError(f"--out {root} is not empty; choose a new folder or pass --overwrite")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root.mkdir(parents=True, exist_ok=True)
    plans = plan_sequences(cfg)
    workers = min(workers, len(plans))
    nthreads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(cfg, p, str(root), nthreads) for p in plans]
    t0 = time.perf_counter()
    results: list[dict] = []
    bar = tqdm(total=len(plans) * cfg.frames_per_sequence * len(cfg.conditions), unit="frame",
               desc="rmmss synth", disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1:
            it = map(_worker, jobs)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(workers)
            it = pool.imap_unordered(_worker, jobs)
        for r in it:
            results.append(r)
            bar.update(r["frames"])
            if on_sequence is not None:
                on_sequence(r)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if workers > 1 and pool is not None:
            pool.terminate()
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["sequence"])
    info = dataset_info(cfg, results, workers, wall)
    atomic_write_json(root / DATASET_INFO, info)
    log.info("wrote %d frames (%d sequences) to %s in %.1f s (%.1f frames/s)", info["total_frames"],
             len(results), root, wall, info["total_frames"] / max(wall, 1e-9))
    return info


def dataset_info(cfg: SynthConfig, results: list[dict], workers: int, wall_s: float) -> dict:
    """The ``rmmss_dataset.json`` contents: what the readers need plus full provenance."""
    frames_per_split: dict[str, int] = {}
    for r in results:
        frames_per_split[r["split"]] = frames_per_split.get(r["split"], 0) + r["frames"]
    return {
        "format": FORMAT,
        "name": "rmmss-synthetic-street",
        "depth_folder": "depth",
        "layout": "deliver",
        "spec": cfg.spec.to_dict(),
        "classes": list(DELIVER.classes),
        "label_encoding": "semantic PNG channel 0 = class id + 1 (1..25), 0 = unlabeled",
        "raw": {"points": "<frame>_points.npy N x 4 float32 (x, y, z, intensity), LiDAR frame",
                "events": "<frame>_events.npz x, y uint16; t float64 s; p int8 +1/-1; (t_prev, t]",
                "depth": "<frame>_depth.npy H x W float32 metres (camera z), NaN invalid",
                "calib": "calib.json per sequence: camera, T_cam_lidar, lidar, stamps, ego poses"},
        "settings": cfg.to_dict(),
        "conditions": list(cfg.conditions),
        "sequences": [{"name": r["sequence"], "split": r["split"], "frames": r["frames"],
                       "scene": r["scene"]} for r in results],
        "frames_per_split": frames_per_split,
        "total_frames": sum(r["frames"] for r in results),
        "provenance": {
            "generator": "rmmss_core.data.synth", "rmmss_version": getattr(rmmss_core, "__version__", None),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "python": platform.python_version(), "numpy": np.__version__, "open3d": o3d.__version__,
            "host": platform.node(), "workers": workers, "wall_s": round(wall_s, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
