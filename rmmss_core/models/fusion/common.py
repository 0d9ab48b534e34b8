"""What every fusion returns, and masked arithmetic shared by the fusions.

Masked arithmetic, never data-dependent control flow: the availability mask is a graph input of
the exported model. ``torch.where`` (not multiplication) keeps NaN/Inf of an excluded modality out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class FusionOutput:
    """``fused``: 4 maps ``B x C_s x H_s x W_s``.

    ``impute`` only: ``imputed`` 4 maps ``B x M x C_s x H_s x W_s`` (every modality's features as
    imputed from the *other* available ones), ``imputed_mask B x M`` (True where the imputed
    features replaced a missing modality), ``impute_valid B x M`` (True where the modality is present
    and at least one other is: there the imputation can be tied to the real features by MSE).
    """

    fused: list[Tensor]
    imputed: list[Tensor] | None = None
    imputed_mask: Tensor | None = None
    impute_valid: Tensor | None = None


def expand_mask(mask: Tensor, like: Tensor) -> Tensor:
    """``B x M`` -> broadcastable to ``like`` (``B x M x ...``)."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 2))


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over dim 1 of ``x`` (``B x M x ...``) over the True entries of ``mask`` (``B x M``).

    ``sum(where(m, x, 0)) / clamp(sum(m), 1)``: adding exact zeros, so the result is bit-identical to
    the mean over the available modalities alone.
    """
    m = expand_mask(mask, x)
    total = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim=1)
    count = mask.sum(dim=1).clamp(min=1).to(x.dtype)
    return total / count.reshape(count.shape + (1,) * (total.dim() - 1))


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Element-wise max over dim 1 of ``x`` (``B x M x ...``) over the True entries of ``mask``."""
    low = torch.full((), torch.finfo(x.dtype).min, dtype=x.dtype, device=x.device)
    return torch.where(expand_mask(mask, x), x, low).amax(dim=1)


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Softmax over dim 1 restricted to ``mask`` (``B x M``); masked entries get weight exactly 0."""
    low = torch.full((), torch.finfo(logits.dtype).min, dtype=logits.dtype, device=logits.device)
    w = torch.softmax(torch.where(mask, logits, low), dim=1)
    return torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))
