"""How a missing modality is represented, always driven by the explicit availability mask.

- ``drop``: the modality takes no part in fusion (masked arithmetic, exact: a dropped input never
  changes the output, and the result equals a model without that sensor).
- ``zero``: its normalised input is zeroed and it is encoded and fused like a present one (the
  model is not told; the usual "zero-filled" baseline).
- ``token``: M3L masked modality learning: its stage-1 tokens are replaced by a learned mask
  token; the branch is then encoded and fused like a present one.

Every kind zeroes the input of a missing modality first, so garbage (NaN, stale frames) in a
missing sensor's tensor can never leak into the result.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rmmss_core.models.config import MISSING


class MissingRepresentation(nn.Module):
    def __init__(self, kind: str, stage1_dim: int):
        super().__init__()
        if kind not in MISSING:
            raise ValueError(f"unknown missing-modality representation {kind!r}; valid: {list(MISSING)}")
        self.kind = kind
        if kind == "token":
            self.mask_token = nn.Parameter(torch.zeros(stage1_dim))
            nn.init.trunc_normal_(self.mask_token, std=0.02)

    def mask_inputs(self, x: Tensor, available: Tensor) -> Tensor:
        """``B x M x 3 x H x W`` -> same, inputs of unavailable modalities replaced by zeros."""
        return torch.where(available[:, :, None, None, None], x, torch.zeros((), dtype=x.dtype, device=x.device))

    def fusion_mask(self, available: Tensor) -> Tensor:
        """``B x M`` bool: which modalities take part in fusion (all of them unless ``drop``)."""
        return available if self.kind == "drop" else torch.ones_like(available)

    def stage1_tokens(self, tokens: Tensor, available: Tensor) -> Tensor:
        """Stage-1 tokens ``(B * M) x L x C`` (modality fastest); ``token`` swaps in the mask token."""
        if self.kind != "token":
            return tokens
        keep = available.reshape(-1, 1, 1)
        return torch.where(keep, tokens, self.mask_token.to(tokens.dtype))
