"""CMNeXt-style self-query hub (Zhang et al. 2023), our reading for per-stage fusion.

Per stage and modality: ``score = sigmoid(conv1x1(dwconv3x3(f_m)))`` (channel-wise; the score net
is shared by the modalities of a stage, as CMNeXt's hub), ``f_m' = score * f_m + f_m`` (residual),
then the element-wise max over the available modalities.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rmmss_core.models.fusion.common import FusionOutput, masked_max


class ScoreGate(nn.Module):
    """``N x C x h x w`` -> gated ``N x C x h x w``: ``sigmoid(conv1x1(dwconv3x3(x))) * x + x``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.score = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.score(self.dwconv(x))) * x + x


class HubFusion(nn.Module):
    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.gates = nn.ModuleList(ScoreGate(c) for c in channels)

    def mixer(self, mask: Tensor):
        return None

    def forward(self, features: list[Tensor], mask: Tensor) -> FusionOutput:
        """``[B x M x C_s x H_s x W_s] * 4`` + mask ``B x M`` -> 4 x ``B x C_s x H_s x W_s``."""
        fused = []
        for gate, f in zip(self.gates, features, strict=True):
            gated = gate(f.flatten(0, 1)).reshape(f.shape)
            fused.append(masked_max(gated, mask))
        return FusionOutput(fused)
