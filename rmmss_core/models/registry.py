"""A plain model registry: ``name -> (config dataclass, builder)``.

    @register_model("anymodal", SegmentorConfig)
    def build(cfg: SegmentorConfig) -> nn.Module: ...

    model = create_model("anymodal", size="b0", fusion="mean")
    model = build_model({"name": "anymodal", "config": {...}})   # e.g. from a checkpoint

Every model made here carries ``model.registry_name`` and ``model.config`` (the typed dataclass),
which is what ``checkpoint.save_model_checkpoint`` stores.

This module imports no model: each model module registers itself with the decorator, and
``rmmss_core/models/__init__.py`` imports every such module, so the table is full as soon as anything
under ``rmmss_core.models`` is imported (no import circle: registry <- models <- package).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from rmmss_core.utils.config import ConfigError, config_from_dict, config_to_dict

Builder = Callable[[Any], nn.Module]
_REGISTRY: dict[str, tuple[type, Builder]] = {}

def register_model(name: str, config_cls: type) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(config) -> nn.Module`` under ``name`` with its config dataclass."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of model {name!r} must be a dataclass, got {config_cls!r}")

    def deco(builder: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name][1] is not builder:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = (config_cls, builder)
        return builder
    return deco


def list_models() -> list[str]:
    """Registered names."""
    return sorted(_REGISTRY)


def model_config_cls(name: str) -> type:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    return _REGISTRY[name][0]


def create_model(name: str, pretrained: str | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` from its config fields (``kwargs``; lists are coerced to tuples).

    ``pretrained``: a local SegFormer/MiT weight file loaded into the encoder (and decoder where
    the shapes fit), see ``pretrained.load_pretrained``; it is not part of the config.
    """
    cls = model_config_cls(name)
    try:
        cfg = config_from_dict(cls, kwargs, where=f"model {name!r}")
    except ConfigError as e:
        raise ValueError(str(e)) from e
    model = build_from_config(name, cfg)
    if pretrained:
        from rmmss_core.models.pretrained import load_pretrained
        load_pretrained(model, pretrained)
    return model


def build_from_config(name: str, cfg: Any) -> nn.Module:
    cls, builder = model_config_cls(name), _REGISTRY[name][1]
    if not isinstance(cfg, cls):
        raise TypeError(f"model {name!r} needs a {cls.__name__}, got {type(cfg).__name__}")
    model = builder(cfg)
    model.registry_name = name
    model.config = cfg
    return model


def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild from ``{"name": ..., "config": {...}}`` (as stored in checkpoints)."""
    if not isinstance(spec, Mapping) or "name" not in spec or "config" not in spec:
        raise ValueError(f"model spec must be a mapping with 'name' and 'config', got {spec!r}")
    return create_model(spec["name"], **dict(spec["config"]))


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"name", "config"}`` of a model built by this registry."""
    name, cfg = getattr(model, "registry_name", None), getattr(model, "config", None)
    if name is None or not dataclasses.is_dataclass(cfg):
        raise ValueError(f"{type(model).__name__} was not built by the registry (no registry_name/config); "
                         "build it with create_model to save or rebuild it")
    return {"name": name, "config": config_to_dict(cfg)}
