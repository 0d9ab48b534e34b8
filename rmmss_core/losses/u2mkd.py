"""U2MKD (Sun et al. 2024): imputation of missing modalities' features.

U2MKD's logit KD and bottleneck-feature KD are ``logit_kd_loss`` and ``feature_kd_loss`` (kd.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from rmmss_core.losses._common import as_stages, check_dim, check_same_shape, zero_like_graph


def imputation_loss(imputed: torch.Tensor | Sequence[torch.Tensor],
                    real: torch.Tensor | Sequence[torch.Tensor], available: torch.Tensor) -> torch.Tensor:
    """U2MKD imputation loss: MSE between imputed and real features where the modality is present.

    The learner imputes each modality's features from the other modalities; the real features are
    the (detached) target, so only the imputation learner gets gradients. Per stage the MSE is
    averaged over the elements of the (sample, modality) pairs with ``available`` True, then the
    stages are summed (weight 1 per stage, as in U2MKD).

    Args:
        imputed, real: per stage ``B x M x C x h x w`` (one tensor or a list).
        available: bool ``B x M``: where the real modality exists (the only places a target exists).
    Returns 0 (attached to the graph) when no modality is available.
    """
    i_stages, r_stages = as_stages(imputed, "imputed"), as_stages(real, "real")
    if len(i_stages) != len(r_stages):
        raise ValueError(f"{len(i_stages)} imputed stages but {len(r_stages)} real stages")
    total = zero_like_graph(i_stages[0])
    for k, (imp, ref) in enumerate(zip(i_stages, r_stages, strict=True)):
        check_dim(imp, 5, f"imputed[{k}]", "B x M x C x h x w")
        check_same_shape(imp, ref, f"imputed[{k}]", f"real[{k}]")
        if available.shape != imp.shape[:2]:
            raise ValueError(f"available must be B x M = {tuple(imp.shape[:2])}, got {tuple(available.shape)}")
        sel = available.to(imp.device).bool()
        if sel.any():
            total = total + (imp[sel] - ref.detach()[sel]).pow(2).mean()
    return total
