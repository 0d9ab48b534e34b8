"""M3L linear fusion (Maheshwari et al. 2023), generalised from 2 to M branches.

The encoder runs one branch per modality with shared weights and per-branch LayerNorms
(``MiT(branches=M)``). Inside every attention layer the attention output of each branch is mixed
with the others' before the residual add: ``a_i' = r a_i + (1 - r) mean_{j != i} a_j`` over the other
branches taking part (``mask``), r = 0.8 (harshm121/M3L@01ce42a:src/models/segmentation_models/
linearfusemaskedconsmixbatch/modules.py:13-25: at M = 2 this is 0.8 self / 0.2 other). A branch
with no other branch taking part keeps its own output. ``mean="all"`` is our former reading (the
mean includes the branch itself: 0.9 / 0.1 at M = 2); ``position`` selects where the block mixes
(``blocks.TransformerBlock``).

Each branch has its own SegFormer head; the prediction is a learned softmax-weighted ensemble of
the **detached** branch predictions, so the ensemble's CE trains only its weights
(linearfusemaskedconsmixbatch/segformer.py:144-148); masked branches get weight 0.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rmmss_core.models.decoder import DecoderOutput, SegFormerHead
from rmmss_core.models.fusion.common import FusionOutput, expand_mask, masked_mean, masked_softmax


class LinearFusion(nn.Module):
    """``fused`` features for distillation: the mean of the (mixed) branch features over the mask."""

    def __init__(self, num_modalities: int, ratio: float = 0.8, mean: str = "others",
                 position: str = "attention"):
        super().__init__()
        if mean not in ("others", "all") or position not in ("attention", "stream"):
            raise ValueError(f"linear fusion: mean must be 'others'/'all' and position 'attention'/'stream', "
                             f"got {mean!r}, {position!r}")
        self.num_modalities, self.ratio, self.mean, self.position = num_modalities, ratio, mean, position

    def mix(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``(B * M) x L x C`` (branch fastest) + mask ``B x M`` -> mixed, same shape."""
        x = tokens.reshape(-1, self.num_modalities, tokens.shape[-2], tokens.shape[-1])  # B x M x L x C
        if self.mean == "all":
            mean = masked_mean(x, mask).unsqueeze(1)
            return (self.ratio * x + (1.0 - self.ratio) * mean).flatten(0, 1)
        m = expand_mask(mask, x)
        present = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
        others = (mask.sum(dim=1, keepdim=True) - mask.long())                # B x M
        count = expand_mask(others.clamp(min=1).to(x.dtype), x)
        mean_others = (present.sum(dim=1, keepdim=True) - present) / count
        mixed = self.ratio * x + (1.0 - self.ratio) * mean_others
        return torch.where(expand_mask(others > 0, x), mixed, x).flatten(0, 1)

    def mixer(self, mask: Tensor):
        """Token mixing for the encoder: ``(B * M) x L x C`` -> same; ``.position`` says where."""
        def mix(tokens: Tensor) -> Tensor:
            return self.mix(tokens, mask)
        mix.position = self.position  # type: ignore[attr-defined]
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
        # M3L ensembles the detached branch predictions: only the ensemble weights learn from it
        return DecoderOutput((w * logits.detach()).sum(dim=1), (w * embeds).sum(dim=1), logits)
