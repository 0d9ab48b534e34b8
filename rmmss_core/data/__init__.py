"""Datasets: a plain registry ``build_dataset(name, **kwargs)``.

Every dataset yields samples ``{"rgb", "depth", "event", "lidar": FloatTensor 3 x H x W
(normalised), "label": LongTensor H x W (255 ignore), "available": BoolTensor[4], "name": str}``.
Builders import their module lazily so ``rmmss_core.data.layout`` stays light for the writer.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _deliver(**kwargs: Any):
    from rmmss_core.data.deliver import DeliverDataset
    return DeliverDataset(**kwargs)


def _synthetic(**kwargs: Any):
    from rmmss_core.data.deliver import DeliverDataset
    kwargs.setdefault("depth_folder", "depth")
    return DeliverDataset(**kwargs)


def _muses(**kwargs: Any):
    from rmmss_core.data.muses import MusesDataset
    return MusesDataset(**kwargs)


DATASETS: dict[str, Callable[..., Any]] = {
    "deliver": _deliver,
    "synthetic": _synthetic,
    "muses": _muses,
}


def build_dataset(name: str, **kwargs: Any):
    """Build a registered dataset; raises KeyError listing the valid names."""
    try:
        builder = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)}") from None
    return builder(**kwargs)


__all__ = ["DATASETS", "build_dataset"]
