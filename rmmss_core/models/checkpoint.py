"""Model checkpoints: ``{"format": "rmmss-checkpoint-v1", "model": {"name", "config"}, "state_dict",
"spec": PreprocessSpec.to_dict(), "about": {...}, **extra}``, written atomically, read with
``weights_only=True``.

``about`` says what the checkpoint is, so that a recipe can refuse the wrong kind of
``--teacher``/``--robust`` (``rmmss_core.train.requirements``) and ``rmmss info`` can show it:
``{"recipe": "teacher" | ... | None, "model": registry name, "size", "modalities": [...],
"num_classes", "class_set"}``. Files written before ``about`` existed still load;
``describe_checkpoint`` derives what it can from their other fields (training checkpoints always
stored ``recipe``) and leaves ``recipe`` None when the kind cannot be known.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rmmss_core.models.registry import build_model, model_spec
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import CheckpointError, atomic_torch_save, load_checkpoint

FORMAT = "rmmss-checkpoint-v1"
RESERVED = ("format", "model", "state_dict", "spec", "about")
ABOUT = "about"


def checkpoint_dict(model: nn.Module, spec: PreprocessSpec, extra: Mapping[str, Any] | None = None) -> dict:
    """The checkpoint as a dict (tensors on CPU), without writing it."""
    extra = dict(extra or {})
    clash = [k for k in RESERVED if k in extra]
    if clash:
        raise ValueError(f"extra checkpoint keys {clash} clash with reserved keys {list(RESERVED)}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    info = model_spec(model)
    return {"format": FORMAT, "model": info, "state_dict": state, "spec": spec.to_dict(),
            ABOUT: about(info, spec, recipe=None), **extra}


def model_modalities(info: Mapping[str, Any]) -> tuple[str, ...]:
    """The sensors a model encodes, from its ``{"name", "config"}``: ``config.modalities``, or for a
    composite (the RMMSS-FSM student) the union over its ``teacher``/``robust`` parts, in MODALITIES
    order."""
    from rmmss_core.modalities import MODALITIES
    cfg = info.get("config") or {}
    if "modalities" in cfg:
        return tuple(m for m in MODALITIES if m in cfg["modalities"])
    parts = [cfg[k] for k in ("teacher", "robust") if isinstance(cfg.get(k), Mapping)]
    if parts:
        have = {m for p in parts for m in model_modalities(p)}
        return tuple(m for m in MODALITIES if m in have)
    return tuple(MODALITIES)


def about(info: Mapping[str, Any], spec: PreprocessSpec, recipe: str | None) -> dict[str, Any]:
    """The ``about`` entry of a checkpoint of model ``info`` (``{"name", "config"}``) made by ``recipe``."""
    cfg = info.get("config") or {}
    size = cfg.get("size") or (cfg.get("robust") or {}).get("config", {}).get("size")
    return {"recipe": recipe, "model": info.get("name"), "size": size,
            "modalities": list(model_modalities(info)), "num_classes": spec.num_classes,
            "class_set": spec.class_set}


def describe_checkpoint(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """What a loaded checkpoint dict is (see the module docstring); works on files of any age.

    ``recipe`` comes from ``about``, else from the ``recipe`` a training checkpoint stores, else None.
    """
    if isinstance(ckpt.get(ABOUT), Mapping):
        return dict(ckpt[ABOUT])
    info = ckpt.get("model") if isinstance(ckpt.get("model"), Mapping) else {}
    try:
        spec = PreprocessSpec.from_dict(ckpt["spec"])
    except (KeyError, TypeError, ValueError):
        spec = PreprocessSpec()
    recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), str) else None
    return about(info, spec, recipe)


def save_model_checkpoint(path: str | os.PathLike, model: nn.Module, spec: PreprocessSpec,
                          extra: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` (built by the registry), its preprocessing ``spec`` and ``extra`` (e.g. the
    optimizer state, epoch) atomically to ``path``."""
    atomic_torch_save(checkpoint_dict(model, spec, extra), path)


def load_model(path_or_dict: str | os.PathLike | Mapping[str, Any],
               map_location: str | torch.device = "cpu") -> tuple[nn.Module, PreprocessSpec]:
    """Rebuild the model from the checkpoint's ``{"name", "config"}``, load the weights strictly.

    Returns ``(model in eval mode, spec)``. Raises CheckpointError naming the problem: wrong format,
    missing/unexpected weights, shape mismatches, unknown model name or bad config.
    """
    where = "checkpoint" if isinstance(path_or_dict, Mapping) else f"checkpoint {path_or_dict}"
    ckpt = path_or_dict if isinstance(path_or_dict, Mapping) else load_checkpoint(path_or_dict, map_location)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{where} has format {ckpt.get('format')!r}, expected {FORMAT!r} "
                              "(a raw state_dict or a pretrained file? see models/pretrained.py)")
    missing = [k for k in ("model", "state_dict", "spec") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{where} lacks {missing}")
    try:
        model = build_model(ckpt["model"])
        spec = PreprocessSpec.from_dict(ckpt["spec"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: cannot rebuild the model or spec: {e}") from e
    load_state_strict(model, ckpt["state_dict"], where)
    return model.to(map_location).eval(), spec


def state_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> str:
    """How ``state``'s keys and shapes differ from ``expected`` (key -> shape), in one line naming
    up to three of each kind; ``""`` when they agree. Shared by checkpoint loading and the importers'
    manifests."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} extra keys (e.g. {', '.join(extra[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} mis-shaped keys (e.g. {'; '.join(shapes[:3])})")
    return "; ".join(parts)


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], where: str = "state_dict") -> None:
    """``load_state_dict(strict=True)`` with a message listing missing, unexpected and misshapen keys."""
    mismatch = state_mismatch(state, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    if mismatch:
        raise CheckpointError(f"{where} does not fit the model: {mismatch}")
    model.load_state_dict(state, strict=True)
