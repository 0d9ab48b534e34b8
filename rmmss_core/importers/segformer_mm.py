"""The authors' multi-modal SegFormer (RobustSeg / AnySeg ``Seg``) in rmmss's model family.

Their network (RobustSeg/UMMSS@de81cfd:semseg/models/segformer/seg_block_select_UMD.py:12-53,84-112
over MixT_block_select_UMD.py:386-440 and seghead.py; zhengxuJosh/AnySeg@bc27220:
semseg/models/segformer/seg_block.py over MixT_block.py, the same layers) is, exactly:

- one MiT encoder whose weights every modality shares, each modality's image encoded on its own;
- at each of the 4 stages the fused map is the plain mean of the M modality maps, while the
  streams go on unmixed into the next stage;
- a SegFormer all-MLP head of width 768 (concatenation c4, c3, c2, c1; 1x1 conv without bias, BN,
  ReLU), logits resized bilinearly (align_corners=False) to the input;
- LayerNorm eps 1e-6 in the blocks and after each stage, 1e-5 in the patch embeddings and the
  key/value spatial reduction;
- an extra ``classifier`` conv (``K x C_4 x 1 x 1``) saved in the file but never used by
  ``forward`` (a CAM head): it is checked against the manifest and left out.

In rmmss's family this is ``anymodal`` with ``fusion="mean"``, ``decoder_dim=768`` and
``segformer_norms=True``; ``missing="zero"`` reproduces zero-filled missing sensors fused like
present ones (divisor always M, RobustSeg's EMM), ``missing="drop"`` the mean over the sensors fed
(AnySeg's ``val_mm.py`` feeds only the present ones). Every part maps one to one: nothing is
approximated. Differences that only move rounding: rmmss runs the attention through
``scaled_dot_product_attention`` and fuses with a masked sum / count instead of ``torch.mean``;
RobustSeg draws a random modality order in eval (the mean does not depend on it).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from rmmss_core.models.config import MIT_SIZES

EMBED_DIM = 768
CLASSIFIER_KEY = "classifier.weight"          # saved, never used in forward: not imported


def manifest(num_classes: int, size: str = "b0", embed: int = EMBED_DIM) -> dict[str, tuple[int, ...]]:
    """Every key of the authors' ``Seg(...).state_dict()`` with its shape, from their code
    (MixT_block_select_UMD.py ``mit_b0``: dims, depths, sr ratios; qkv_bias=True; mlp ratio 4;
    seghead.py: ``linear_c{1..4}``, ``linear_fuse`` (mmcv ConvModule: ``conv`` without bias,
    ``bn``), ``linear_pred``; seg_block_select_UMD.py: ``classifier`` without bias)."""
    mit = MIT_SIZES[size]
    out: dict[str, tuple[int, ...]] = {}
    cin = 3
    for i, (c, depth, sr) in enumerate(zip(mit.dims, mit.depths, mit.sr_ratios, strict=True), start=1):
        k = 7 if i == 1 else 3
        p = f"encoder.patch_embed{i}"
        out.update({f"{p}.proj.weight": (c, cin, k, k), f"{p}.proj.bias": (c,),
                    f"{p}.norm.weight": (c,), f"{p}.norm.bias": (c,)})
        h = mit.mlp_ratio * c
        for j in range(depth):
            b = f"encoder.block{i}.{j}"
            out.update({f"{b}.norm1.weight": (c,), f"{b}.norm1.bias": (c,),
                        f"{b}.attn.q.weight": (c, c), f"{b}.attn.q.bias": (c,),
                        f"{b}.attn.kv.weight": (2 * c, c), f"{b}.attn.kv.bias": (2 * c,),
                        f"{b}.attn.proj.weight": (c, c), f"{b}.attn.proj.bias": (c,)})
            if sr > 1:
                out.update({f"{b}.attn.sr.weight": (c, c, sr, sr), f"{b}.attn.sr.bias": (c,),
                            f"{b}.attn.norm.weight": (c,), f"{b}.attn.norm.bias": (c,)})
            out.update({f"{b}.norm2.weight": (c,), f"{b}.norm2.bias": (c,),
                        f"{b}.mlp.fc1.weight": (h, c), f"{b}.mlp.fc1.bias": (h,),
                        f"{b}.mlp.dwconv.dwconv.weight": (h, 1, 3, 3), f"{b}.mlp.dwconv.dwconv.bias": (h,),
                        f"{b}.mlp.fc2.weight": (c, h), f"{b}.mlp.fc2.bias": (c,)})
        out.update({f"encoder.norm{i}.weight": (c,), f"encoder.norm{i}.bias": (c,)})
        out.update({f"decoder.linear_c{i}.proj.weight": (embed, c), f"decoder.linear_c{i}.proj.bias": (embed,)})
        cin = c
    out["decoder.linear_fuse.conv.weight"] = (embed, 4 * embed, 1, 1)
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"decoder.linear_fuse.bn.{name}"] = (embed,)
    out["decoder.linear_fuse.bn.num_batches_tracked"] = ()
    out["decoder.linear_pred.weight"] = (num_classes, embed, 1, 1)
    out["decoder.linear_pred.bias"] = (num_classes,)
    out[CLASSIFIER_KEY] = (num_classes, mit.dims[-1], 1, 1)
    return out


_RULES: tuple[tuple[str, str], ...] = (
    (r"^encoder\.patch_embed(\d)\.(.*)$", "encoder.stages.{s}.patch_embed.{rest}"),
    (r"^encoder\.block(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.(.*)$", "encoder.stages.{s}.blocks.{j}.mlp.dwconv.{rest}"),
    (r"^encoder\.block(\d)\.(\d+)\.(.*)$", "encoder.stages.{s}.blocks.{j}.{rest}"),
    (r"^encoder\.norm(\d)\.(.*)$", "encoder.stages.{s}.norm.{rest}"),
    (r"^decoder\.linear_c(\d)\.(.*)$", "decoder.linear_c.{s}.{rest}"),
    (r"^decoder\.(linear_fuse\..*|linear_pred\..*)$", "decoder.{whole}"),
)


def rmmss_key(key: str) -> str | None:
    """The authors' key -> the ``anymodal`` segmentor's key (None for the unused classifier)."""
    if key == CLASSIFIER_KEY:
        return None
    for pattern, template in _RULES:
        m = re.match(pattern, key)
        if not m:
            continue
        g = m.groups()
        if template == "decoder.{whole}":
            return f"decoder.{g[0]}"
        s = int(g[0]) - 1
        return template.format(s=s, j=g[1] if len(g) == 3 else "", rest=g[-1])
    raise KeyError(f"no rmmss name for the authors' key {key!r}")


def to_rmmss(state: Mapping) -> dict:
    """Their state_dict (already checked against ``manifest``) -> the anymodal segmentor's."""
    out = {}
    for key, value in state.items():
        target = rmmss_key(key)
        if target is not None:
            out[target] = value
    return out


def model_options(num_classes: int, modalities: tuple[str, ...], missing: str, size: str = "b0") -> dict:
    """``create_model("anymodal", **options)`` for their network (drop-path 0.1 as their mit_b0;
    inactive in eval, like the head's Dropout2d 0.1)."""
    return {"size": size, "fusion": "mean", "missing": missing, "modalities": tuple(modalities),
            "num_classes": num_classes, "decoder_dim": EMBED_DIM, "drop_path_rate": 0.1,
            "decoder_dropout": 0.1, "segformer_norms": True}
