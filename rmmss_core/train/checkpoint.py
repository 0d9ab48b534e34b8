"""Training checkpoints: one atomic file per save, readable by ``models.checkpoint.load_model``.

The file is the models' checkpoint format (``format``, ``model: {name, config}``, ``state_dict``,
``spec``, ``about``: recipe, modalities, classes, and the ``--teacher``/``--robust`` it was trained
from) plus the training state: optimizer, scheduler, AMP scaler, step, RNG states, the resolved
training config, the recipe's own state (e.g. an EMA teacher), metrics and the git revision.
Writes go through ``atomic_torch_save``: a run killed mid-save leaves the previous file intact.
"""
from __future__ import annotations

import random
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.config import config_to_dict
from rmmss_core.utils.io import CheckpointError, atomic_torch_save, load_checkpoint

FORMAT = "rmmss-checkpoint-v1"


def git_revision(cwd: str | Path | None = None) -> str:
    """``<sha>`` or ``<sha>-dirty`` of the source tree, ``unknown`` outside git."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches, as tensors/plain Python (safe for weights_only)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_training_checkpoint(path: str | Path, *, model: nn.Module, model_info: Mapping[str, Any],
                             spec: PreprocessSpec, step: int, config: Any,
                             optimizer: torch.optim.Optimizer | None = None,
                             scheduler: Any = None, scaler: Any = None,
                             recipe_state: Mapping[str, Any] | None = None,
                             metrics: Mapping[str, float] | None = None,
                             extra: Mapping[str, Any] | None = None) -> Path:
    """Atomically write the model (models' format) and the full training state to ``path``.

    ``model_info`` is ``{"name": registry name, "config": kwargs}`` so that ``load_model`` can
    rebuild the network with ``create_model(name, **config)``.
    """
    from rmmss_core.models.checkpoint import about
    info = {"name": str(model_info["name"]), "config": config_to_dict(dict(model_info["config"]))}
    recipe = getattr(config, "recipe", None)
    what = about(info, spec, recipe=str(recipe) if recipe else None)
    what.update({k: str(getattr(config, k)) for k in ("teacher", "robust") if getattr(config, k, "")})
    data = getattr(config, "data", None)
    if getattr(data, "modalities", ()):
        what["data_modalities"] = list(data.modalities)  # trained on fewer sensors, on purpose
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "model": info,
        "about": what,
        "state_dict": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "spec": spec.to_dict(),
        "step": int(step),
        "train_config": config_to_dict(config),
        "git_revision": git_revision(),
        "rng": rng_state(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    if recipe_state:
        ckpt["recipe_state"] = dict(recipe_state)
    if extra:
        ckpt.update(extra)
    atomic_torch_save(ckpt, path)
    return Path(path)


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a training checkpoint (``weights_only=True``) and check it has what resume needs."""
    ckpt = load_checkpoint(path, map_location=map_location)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {ckpt.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in ("state_dict", "step", "optimizer", "scheduler", "rng") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} cannot resume training: no {missing}")
    return ckpt


def is_better(value: float, best: float | None) -> bool:
    """Best-by-metric selection: higher is better; NaN never wins."""
    if value != value:  # NaN
        return False
    return best is None or value > best
