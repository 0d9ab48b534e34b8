"""Independent reference of the authors' network, written from reading their code (nothing copied).

RobustSeg (RMMSS stage 1 / teacher, DELIVER) and AnySeg (MUSES) release the same network family:
``Seg('mit_b0', num_classes=K)`` with ``embedding_dim=768``:

- RobustSeg/UMMSS@de81cfda4af1df3c87179433110a4105930cc024 (the code the RobustSeg/RobustSeg
  README points to; RobustSeg/RobustSeg@5898146 imports the same module names):
  ``semseg/models/segformer/seg_block_select_UMD.py`` (``Seg``: encoder, ``decoder =
  SegFormerHead(..., embedding_dim=768)``, an unused ``classifier`` conv; ``forward`` stacks the
  modality list, in eval mode still draws ``random.sample`` over all M modalities (a permutation),
  resizes the head output bilinearly with align_corners=False, returns ``(pred, indices, feats)``),
  ``semseg/models/segformer/MixT_block_select_UMD.py`` (``MixVisionTransformer``: each modality
  encoded on its own, at every stage the output is ``torch.mean`` over the M streams while the
  streams themselves go on unmixed; the batch is looped sample by sample; mit_b0: dims 32/64/160/256,
  heads 1/2/5/8, depths 2/2/2/2, sr 8/4/2/1, qkv_bias, ``norm_layer`` LayerNorm eps 1e-6 for the
  block norms and the stage norms, while ``OverlapPatchEmbed.norm`` and ``Attention.norm`` are
  ``nn.LayerNorm(dim)``: eps 1e-5), ``semseg/models/segformer/seghead.py`` (``MLP`` linear per
  stage, concatenation c4, c3, c2, c1, mmcv ``ConvModule`` 1x1 conv without bias + BN + ReLU named
  ``linear_fuse.conv`` / ``linear_fuse.bn``, ``Dropout2d(0.1)``, ``linear_pred``).
- zhengxuJosh/AnySeg@bc27220d7302b0c9847b04bf3353332529348618 ``val_mm.py`` builds
  ``semseg/models/segformer/seg_block.py`` ``Seg(backbone='mit_b0')`` over ``MixT_block.py``: the
  same layers and key names, no random permutation, 19 classes, a plain ``pred`` return.

``RefSeg.forward(list of M tensors B x 3 x H x W) -> B x K x H x W`` follows that: what is passed
is what is fused (zero-filled modalities included: RobustSeg's ``tools/val_mm_EMM.py`` zeroes the
missing ones; AnySeg's ``val_mm.py`` passes only the present ones). The attention is written out
(``softmax(q k^T * d^-0.5) v``) as theirs, not through the fused kernel rmmss uses.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import Tensor, nn

B0 = {"dims": (32, 64, 160, 256), "heads": (1, 2, 5, 8), "depths": (2, 2, 2, 2), "sr": (8, 4, 2, 1)}
EMBED = 768


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, sr)
            self.norm = nn.LayerNorm(dim)               # torch default eps 1e-5, as theirs

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).view(b, n, self.heads, d).permute(0, 2, 1, 3)
        src = x
        if self.sr_ratio > 1:
            grid = x.permute(0, 2, 1).reshape(b, c, h, w)
            src = self.norm(self.sr(grid).reshape(b, c, -1).permute(0, 2, 1))
        kv = self.kv(src).view(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        att = torch.softmax((q @ kv[0].transpose(-2, -1)) * d ** -0.5, dim=-1)
        return self.proj((att @ kv[1]).transpose(1, 2).reshape(b, n, c))


class RefDW(nn.Module):
    """Their ``DWConv`` wrapper: the conv is one level deeper (``mlp.dwconv.dwconv``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class RefMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = RefDW(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), h, w)))


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefMlp(dim, 4 * dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class RefPatchEmbed(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, k, s, k // 2)
        self.norm = nn.LayerNorm(cout)                  # eps 1e-5

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class RefMixT(nn.Module):
    def __init__(self, cfg=B0):
        super().__init__()
        dims = cfg["dims"]
        self.embed_dims = list(dims)
        chans = (3, *dims[:-1])
        for i in range(4):
            k, s = (7, 4) if i == 0 else (3, 2)
            setattr(self, f"patch_embed{i + 1}", RefPatchEmbed(chans[i], dims[i], k, s))
            setattr(self, f"block{i + 1}", nn.ModuleList(
                RefBlock(dims[i], cfg["heads"][i], cfg["sr"][i]) for _ in range(cfg["depths"][i])))
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dims[i], eps=1e-6))

    def features(self, x: Tensor) -> list[Tensor]:
        """One sample's modalities ``M x 3 x H x W`` -> 4 fused maps ``1 x C x h x w`` (mean over M)."""
        m = x.shape[0]
        fused = []
        for i in range(1, 5):
            tok, h, w = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                tok = blk(tok, h, w)
            tok = getattr(self, f"norm{i}")(tok)
            x = tok.reshape(m, h, w, -1).permute(0, 3, 1, 2)
            fused.append(x.mean(dim=0, keepdim=True))
        return fused

    def forward(self, stacked: Tensor) -> list[Tensor]:
        """``M x B x 3 x H x W`` -> 4 maps ``B x C x h x w``, sample by sample as theirs."""
        per = [self.features(stacked[:, i]) for i in range(stacked.shape[1])]
        return [torch.cat([p[s] for p in per], dim=0) for s in range(4)]


class RefConvModule(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class RefMLP(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = nn.Linear(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).permute(0, 2, 1).reshape(b, -1, h, w)


class RefHead(nn.Module):
    def __init__(self, dims, embed: int, k: int):
        super().__init__()
        for i, c in enumerate(dims):
            setattr(self, f"linear_c{i + 1}", RefMLP(c, embed))
        self.linear_fuse = RefConvModule(4 * embed, embed)
        self.dropout = nn.Dropout2d(0.1)
        self.linear_pred = nn.Conv2d(embed, k, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        outs = []
        for i in (4, 3, 2, 1):
            y = getattr(self, f"linear_c{i}")(feats[i - 1])
            if i != 1:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            outs.append(y)
        return self.linear_pred(self.dropout(self.linear_fuse(torch.cat(outs, dim=1))))


class RefSeg(nn.Module):
    """The authors' ``Seg``: ``encoder``, ``decoder``, unused ``classifier`` (their state_dict keys).

    permute: draw a random order of the modalities each call, as RobustSeg's eval does (AnySeg: no).
    """

    def __init__(self, num_classes: int, permute: bool = False, seed: int = 0):
        super().__init__()
        self.encoder = RefMixT()
        self.decoder = RefHead(self.encoder.embed_dims, EMBED, num_classes)
        self.classifier = nn.Conv2d(self.encoder.embed_dims[-1], num_classes, 1, bias=False)
        self.permute, self.rng = permute, random.Random(seed)

    def forward(self, images: list[Tensor]) -> Tensor:
        x = torch.stack(images).float()                               # M x B x 3 x H x W
        if self.permute:
            x = x[self.rng.sample(range(x.shape[0]), x.shape[0])]
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (BN statistics too), scaled so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype == torch.long:
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if "norm" in name or "bn.weight" in name else 0.0))
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan_in))
    return model.eval()
