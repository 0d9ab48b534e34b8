"""Mix Transformer (MiT) encoder of SegFormer: 4 stages built from a table, run in a loop.

Contract (as segmentation_models_pytorch encoders): ``out_channels`` (per stage), ``reductions``
(4, 8, 16, 32) and ``forward(x) -> [N x C_s x H_s x W_s] * 4`` with ``H_s = ceil(H / r_s)``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rmmss_core.models.blocks import OverlapPatchEmbed, TransformerBlock, make_norm
from rmmss_core.models.config import MiTConfig

TokenFn = Callable[[Tensor], Tensor]

# (patch size, stride) of each stage's overlapping patch embedding
PATCH_EMBED: tuple[tuple[int, int], ...] = ((7, 4), (3, 2), (3, 2), (3, 2))


class MiTStage(nn.Module):
    """Overlapping patch embedding, ``depth`` transformer blocks, final LayerNorm."""

    def __init__(self, in_chans: int, dim: int, depth: int, heads: int, sr_ratio: int, mlp_ratio: int,
                 patch: int, stride: int, drop_paths: list[float], branches: int = 1):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_chans, dim, patch, stride, branches)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, sr_ratio, mlp_ratio, dp, branches) for dp in drop_paths[:depth])
        self.norm = make_norm(dim, branches)

    def forward(self, x: Tensor, embed_fn: TokenFn | None = None, mix: TokenFn | None = None) -> Tensor:
        """``N x C_in x H x W`` -> ``N x dim x H' x W'``.

        ``embed_fn`` edits the tokens right after the patch embedding (mask token at stage 1);
        ``mix`` runs after every attention (M3L linear fusion).
        """
        tokens, hw = self.patch_embed(x)
        if embed_fn is not None:
            tokens = embed_fn(tokens)
        for block in self.blocks:
            tokens = block(tokens, hw, mix)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, hw[0], hw[1])


class MiT(nn.Module):
    """The MiT encoder. ``branches > 1`` gives every branch (modality) its own LayerNorms while all
    other weights are shared (M3L); inputs are then ``(B * M) x 3 x H x W``, modality fastest."""

    reductions: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, cfg: MiTConfig, in_chans: int = 3, drop_path_rate: float = 0.0, branches: int = 1):
        super().__init__()
        if not (len(cfg.dims) == len(cfg.depths) == len(cfg.heads) == len(cfg.sr_ratios) == 4):
            raise ValueError(f"MiT needs 4 stages in every per-stage setting, got {cfg}")
        self.out_channels: tuple[int, ...] = tuple(cfg.dims)
        self.branches = branches
        rates = torch.linspace(0, drop_path_rate, sum(cfg.depths)).tolist()
        starts = [sum(cfg.depths[:i]) for i in range(4)]
        chans = (in_chans, *cfg.dims[:-1])
        self.stages = nn.ModuleList(
            MiTStage(chans[i], cfg.dims[i], cfg.depths[i], cfg.heads[i], cfg.sr_ratios[i], cfg.mlp_ratio,
                     *PATCH_EMBED[i], rates[starts[i]:starts[i] + cfg.depths[i]], branches)
            for i in range(4))
        self.apply(_init_weights)

    def forward(self, x: Tensor, stage1_fn: TokenFn | None = None, mix: TokenFn | None = None) -> list[Tensor]:
        """``N x 3 x H x W`` -> 4 feature maps ``N x C_s x ceil(H / r_s) x ceil(W / r_s)``."""
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x, stage1_fn if i == 0 else None, mix)
            features.append(x)
        return features


def segformer_norm_eps(encoder: MiT) -> None:
    """Give the patch-embedding and spatial-reduction LayerNorms SegFormer's eps 1e-5 (the others
    keep 1e-6), as NVlabs' mix_transformer and the RobustSeg / AnySeg MixT built on it
    (RobustSeg/UMMSS@de81cfd:semseg/models/segformer/MixT_block_select_UMD.py: ``OverlapPatchEmbed``
    and ``Attention`` use ``nn.LayerNorm(dim)``, the blocks ``partial(nn.LayerNorm, eps=1e-6)``)."""
    for stage in encoder.stages:
        stage.patch_embed.norm.eps = 1e-5
        for block in stage.blocks:
            if block.attn.sr_ratio > 1:
                block.attn.norm.eps = 1e-5


def _init_weights(m: nn.Module) -> None:
    """SegFormer's initialisation: truncated normal linears, fan-out normal convs, unit norms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
