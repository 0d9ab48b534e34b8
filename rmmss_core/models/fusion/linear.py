"""M3L linear fusion (Maheshwari et al. 2023), generalised from 2 to M branches.

The encoder runs one branch per modality with shared weights and per-branch LayerNorms
(``MiT(branches=M)``). After every attention layer each branch mixes in the others:
``x_i' = r x_i + (1 - r) mean_j x_j`` over the branches taking part (``mask``), r = 0.8. Each branch
has its own SegFormer head; the prediction is a learned softmax-weighted ensemble of the branch
predictions (the ensemble weights are the only ensemble parameters; masked branches get weight 0).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rmmss_core.models.decoder import DecoderOutput, SegFormerHead
from rmmss_core.models.fusion.common import FusionOutput, masked_mean, masked_softmax


class LinearFusion(nn.Module):
    """``fused`` features for distillation: the mean of the (mixed) branch features over the mask."""

    def __init__(self, num_modalities: int, ratio: float = 0.8):
        super().__init__()
        self.num_modalities, self.ratio = num_modalities, ratio

    def mixer(self, mask: Tensor):
        """Token mixing for the encoder: ``(B * M) x L x C`` -> same."""
        def mix(tokens: Tensor) -> Tensor:
            x = tokens.reshape(-1, self.num_modalities, tokens.shape[-2], tokens.shape[-1])  # B x M x L x C
            mean = masked_mean(x, mask).unsqueeze(1)
            return (self.ratio * x + (1.0 - self.ratio) * mean).flatten(0, 1)
        return mix

    def forward(self, features: list[Tensor], mask: Tensor) -> FusionOutput:
        return FusionOutput([masked_mean(f, mask) for f in features])


class EnsembleDecoder(nn.Module):
    """One SegFormer head per branch and a learned softmax ensemble (M weights)."""

    def __init__(self, in_channels: tuple[int, ...], dim: int, num_classes: int, num_modalities: int,
                 dropout: float = 0.1):
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.heads = nn.ModuleList(SegFormerHead(in_channels, dim, num_classes, dropout)
                                   for _ in range(num_modalities))
        self.ensemble = nn.Parameter(torch.zeros(num_modalities))

    def forward(self, fused: list[Tensor], per_modality: list[Tensor], mask: Tensor) -> DecoderOutput:
        """Per-branch pyramids ``[B x M x C_s x H_s x W_s] * 4`` -> ensemble logits ``B x K x H/4 x W/4``,
        embedding (same weights over the branch embeddings) and ``branch_logits B x M x K x H/4 x W/4``."""
        embeds = torch.stack([head.embed([f.select(1, i) for f in per_modality])
                              for i, head in enumerate(self.heads)], dim=1)
        logits = torch.stack([head.classify(embeds[:, i]) for i, head in enumerate(self.heads)], dim=1)
        w = masked_softmax(self.ensemble.to(logits.dtype).expand(mask.shape), mask)   # B x M
        w = w[:, :, None, None, None]
        return DecoderOutput((w * logits).sum(dim=1), (w * embeds).sum(dim=1), logits)
