"""U2MKD-style imputation (Sun et al. 2024) in our 2-D setting.

Per stage and target modality m, a small learned module (1x1 conv, GELU, 1x1 conv; one per target
modality) imputes m's features from the mean of the *other* available modalities' features.
Missing modalities' features are replaced by their imputation; the fused map is the mean over all
modalities of the completed set. Every modality's imputation is returned, so training can tie it to
the real features (MSE where ``impute_valid``), as U2MKD's learner is trained.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rmmss_core.models.fusion.common import FusionOutput, expand_mask


class Imputer(nn.Module):
    """``N x C x h x w`` context -> ``N x C x h x w`` imputed features."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ImputeFusion(nn.Module):
    def __init__(self, channels: tuple[int, ...], num_modalities: int, hidden_ratio: float = 1.0):
        super().__init__()
        if num_modalities < 2:
            raise ValueError("imputation needs at least 2 modalities")
        self.num_modalities = num_modalities
        self.imputers = nn.ModuleList(
            nn.ModuleList(Imputer(c, max(1, round(c * hidden_ratio))) for _ in range(num_modalities))
            for c in channels)

    def mixer(self, mask: Tensor):
        return None

    def forward(self, features: list[Tensor], mask: Tensor) -> FusionOutput:
        """``[B x M x C_s x H_s x W_s] * 4`` + mask ``B x M`` -> fused maps + imputations."""
        others = mask.sum(dim=1, keepdim=True) - mask.long()          # B x M: other available ones
        fused, imputed = [], []
        for imputers, f in zip(self.imputers, features, strict=True):
            m = expand_mask(mask, f)
            present = torch.where(m, f, torch.zeros((), dtype=f.dtype, device=f.device))
            count = expand_mask(others.clamp(min=1).to(f.dtype), f)
            context = (present.sum(dim=1, keepdim=True) - present) / count   # mean of the others
            guess = torch.stack([imp(context[:, i]) for i, imp in enumerate(imputers)], dim=1)
            imputed.append(guess)
            fused.append(torch.where(m, f, guess).mean(dim=1))
        return FusionOutput(fused, imputed=imputed, imputed_mask=~mask, impute_valid=mask & (others > 0))
