"""SegFormer all-MLP decoder.

Each stage ``B x C_s x H_s x W_s`` goes through a linear layer to ``D`` channels, is resized to
stage 1's grid (bilinear, align_corners=False), the four are concatenated (stage 4 first, as in
SegFormer), fused by a 1x1 conv + BatchNorm + ReLU into the embedding ``B x D x H/4 x W/4``, and a
1x1 conv classifies. Names (``linear_c{i}.proj``, ``linear_fuse.{conv,bn}``, ``linear_pred``)
follow the public SegFormer checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class DecoderOutput:
    """``logits B x K x H/4 x W/4``, ``embedding B x D x H/4 x W/4`` and, for the M3L ensemble,
    ``branch_logits B x M x K x H/4 x W/4`` (else None)."""

    logits: Tensor
    embedding: Tensor
    branch_logits: Tensor | None = None


class MLP(nn.Module):
    """Per-pixel linear layer: ``B x C x h x w`` -> ``B x D x h x w``."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvBNReLU(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class SegFormerHead(nn.Module):
    """All-MLP decoder over a 4-level pyramid."""

    def __init__(self, in_channels: tuple[int, ...], dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.linear_c = nn.ModuleList(MLP(c, dim) for c in in_channels)
        self.linear_fuse = ConvBNReLU(len(in_channels) * dim, dim)
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(dim, num_classes, 1)

    def embed(self, pyramid: list[Tensor]) -> Tensor:
        """4 maps ``B x C_s x H_s x W_s`` -> embedding ``B x D x H_1 x W_1``."""
        size = pyramid[0].shape[-2:]
        ups = [F.interpolate(mlp(f), size=size, mode="bilinear", align_corners=False)
               for mlp, f in zip(self.linear_c, pyramid, strict=True)]
        return self.linear_fuse(torch.cat(ups[::-1], dim=1))

    def classify(self, embedding: Tensor) -> Tensor:
        """``B x D x h x w`` -> logits ``B x K x h x w``."""
        return self.linear_pred(self.dropout(embedding))

    def forward(self, fused: list[Tensor], per_modality: list[Tensor] | None = None,
                mask: Tensor | None = None) -> DecoderOutput:
        """Decodes the fused pyramid (``per_modality`` and ``mask`` are unused here; the M3L
        ensemble decoder reads them)."""
        embedding = self.embed(fused)
        return DecoderOutput(self.classify(embedding), embedding)
