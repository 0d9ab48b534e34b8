"""Shared, parametrised base for every model test: combinations, tiny models, synthetic inputs."""
from __future__ import annotations

import pytest
import torch

from rmmss_core.modalities import MODALITIES, SUBSETS, subset_mask
from rmmss_core.models import create_model
from rmmss_core.models.config import SUPPORTED

# every supported (fusion, missing) combination of the tiny model
COMBOS: list[tuple[str, str]] = [(f, m) for f, kinds in SUPPORTED.items() for m in kinds]
COMBO_IDS = [f"{f}-{m}" for f, m in COMBOS]
combos = pytest.mark.parametrize(("fusion", "missing"), COMBOS, ids=COMBO_IDS)

NUM_CLASSES = 5
H, W = 33, 47  # odd on purpose: not a multiple of any stride


def make_model(fusion: str = "mean", missing: str = "drop", **kw) -> torch.nn.Module:
    kw = {"size": "tiny", "num_classes": NUM_CLASSES, "drop_path_rate": 0.0, **kw}
    return create_model("anymodal", fusion=fusion, missing=missing, **kw)


def make_inputs(batch: int = 2, h: int = H, w: int = W, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, 3, h, w, generator=g) for m in MODALITIES}


def all_subsets_mask() -> torch.Tensor:
    """``15 x 4``: one row per non-empty subset, in SUBSETS order."""
    return torch.cat([subset_mask(s, 1) for s in SUBSETS])


def mixed_mask(batch: int) -> torch.Tensor:
    """Different samples missing different sensors."""
    return all_subsets_mask()[torch.arange(batch) * 7 % len(SUBSETS)]
