"""AnySeg / RMMSS fusion: per stage, the mean of the per-modality features over the available ones."""
from __future__ import annotations

from torch import Tensor, nn

from rmmss_core.models.fusion.common import FusionOutput, masked_mean


class MeanFusion(nn.Module):
    """No parameters. ``[B x M x C_s x H_s x W_s] * 4`` + mask ``B x M`` -> 4 x ``B x C_s x H_s x W_s``."""

    def mixer(self, mask: Tensor):
        return None

    def forward(self, features: list[Tensor], mask: Tensor) -> FusionOutput:
        return FusionOutput([masked_mean(f, mask) for f in features])
