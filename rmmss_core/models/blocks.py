"""MiT building blocks (SegFormer, Xie et al. 2021): overlapping patch embedding, efficient
self-attention with spatial reduction, Mix-FFN, and the transformer block.

Tokens are ``N x L x C`` with ``L = H x W`` (row-major); ``N`` is the flattened batch ``B * M`` when
several modalities are encoded at once. Names of parameters follow the public SegFormer code
(``q``, ``kv``, ``proj``, ``sr``, ``fc1``, ``dwconv``, ``fc2``) so pretrained weights map 1:1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BranchLayerNorm(nn.Module):
    """LayerNorm with its own affine parameters per branch (M3L: shared weights, own norms).

    Input ``(B * M) x L x C`` with the branch (modality) index fastest, i.e. row ``b * M + m``.
    """

    def __init__(self, dim: int, branches: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.branches, self.eps = dim, branches, eps
        self.weight = nn.Parameter(torch.ones(branches, dim))
        self.bias = nn.Parameter(torch.zeros(branches, dim))

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x, (self.dim,), eps=self.eps)
        y = y.reshape(-1, self.branches, y.shape[-2], self.dim)       # B x M x L x C
        y = y * self.weight[:, None, :] + self.bias[:, None, :]
        return y.flatten(0, 1)


def make_norm(dim: int, branches: int = 1) -> nn.Module:
    """A LayerNorm (eps 1e-6 as SegFormer); one per branch when ``branches > 1``."""
    return nn.LayerNorm(dim, eps=1e-6) if branches == 1 else BranchLayerNorm(dim, branches)


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows (7x7/4 first, then 3x3/2), then LayerNorm.

    ``N x C_in x H x W`` -> tokens ``N x (H' W') x C`` and ``(H', W')``.
    """

    def __init__(self, in_chans: int, dim: int, patch: int, stride: int, branches: int = 1):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride, padding=patch // 2)
        self.norm = make_norm(dim, branches)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), (h, w)


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a ``sr x sr`` strided reduction.

    Cost of the two attention products: ``2 * L * (L / sr^2) * C`` MACs (counted by complexity.py).
    """

    def __init__(self, dim: int, heads: int, sr_ratio: int, branches: int = 1, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads, self.sr_ratio = heads, sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = make_norm(dim, branches)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``N x L x C`` -> ``N x L x C``."""
        n, length, c = x.shape
        q = self.q(x).reshape(n, length, self.heads, c // self.heads).transpose(1, 2)
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(n, c, hw[0], hw[1])
            x = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        kv = self.kv(x).reshape(n, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # fused attention: softmax in fp32 accumulation on CUDA; safe under fp16/bf16 autocast
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(n, length, c))


class MixFFN(nn.Module):
    """Linear -> 3x3 depth-wise conv (positional information) -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``N x L x C`` -> ``N x L x C``."""
        x = self.fc1(x)
        n, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(n, c, hw[0], hw[1])).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))``, optional cross-branch mixing, ``x + ffn(norm2(x))``."""

    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float,
                 branches: int = 1):
        super().__init__()
        self.norm1 = make_norm(dim, branches)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio, branches)
        self.norm2 = make_norm(dim, branches)
        self.mlp = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, hw: tuple[int, int], mix=None) -> Tensor:
        """``N x L x C`` -> ``N x L x C``.

        ``mix`` (tokens -> tokens, M3L linear fusion) mixes the branches. With
        ``mix.position == "attention"`` (M3L, the default) it mixes the attention output before the
        residual add, as M3L's ``Attention.forward`` ends with ``self.exchange(x)``
        (harshm121/M3L@01ce42a:src/models/segmentation_models/linearfusemaskedconsmixbatch/mix_transformer.py:118-121,191-192);
        with ``"stream"`` (our former reading) the whole token stream after the residual add.
        """
        position = getattr(mix, "position", "attention") if mix is not None else None
        a = self.attn(self.norm1(x), hw)
        if position == "attention":
            a = mix(a)
        x = x + self.drop_path(a)
        if position == "stream":
            x = mix(x)
        return x + self.drop_path(self.mlp(self.norm2(x), hw))
