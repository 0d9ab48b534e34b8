"""Per-stage fusion of per-modality features, selected by name (see config.FUSIONS).

Every fusion: ``mixer(mask)`` -> token mixing for the encoder or None, and
``forward([B x M x C_s x H_s x W_s] * 4, mask B x M) -> FusionOutput``.
"""
from __future__ import annotations

from torch import nn

from rmmss_core.models.fusion.common import FusionOutput, masked_max, masked_mean, masked_softmax
from rmmss_core.models.fusion.hub import HubFusion
from rmmss_core.models.fusion.impute import ImputeFusion
from rmmss_core.models.fusion.linear import EnsembleDecoder, LinearFusion
from rmmss_core.models.fusion.mean import MeanFusion


def build_fusion(name: str, channels: tuple[int, ...], num_modalities: int, linear_ratio: float = 0.8,
                 impute_hidden_ratio: float = 1.0, linear_mean: str = "others",
                 linear_position: str = "attention") -> nn.Module:
    builders = {
        "mean": lambda: MeanFusion(),
        "linear": lambda: LinearFusion(num_modalities, linear_ratio, linear_mean, linear_position),
        "hub": lambda: HubFusion(channels),
        "impute": lambda: ImputeFusion(channels, num_modalities, impute_hidden_ratio),
    }
    if name not in builders:
        raise ValueError(f"unknown fusion {name!r}; valid: {sorted(builders)}")
    return builders[name]()


__all__ = ["EnsembleDecoder", "FusionOutput", "HubFusion", "ImputeFusion", "LinearFusion", "MeanFusion",
           "build_fusion", "masked_max", "masked_mean", "masked_softmax"]
