"""Loading public MiT / SegFormer weights from a local file (nothing is downloaded).

Understood key layouts (detected per key):
- NVlabs SegFormer / ImageNet ``mit_b*.pth``: ``patch_embed{i}.proj``, ``block{i}.{j}.attn.q``,
  ``block{i}.{j}.mlp.dwconv.dwconv``, ``norm{i}``; segmentation checkpoints add ``backbone.`` and
  ``decode_head.linear_c{i}.proj``, ``decode_head.linear_fuse.{conv,bn}``, ``decode_head.linear_pred``.
- Hugging Face ``transformers`` SegFormer: ``segformer.encoder.patch_embeddings.{i}.proj``,
  ``block.{i}.{j}.attention.self.{query,key,value,sr,layer_norm}``, ``attention.output.dense``,
  ``mlp.{dense1,dwconv.dwconv,dense2}``, ``layer_norm.{i}``, ``decode_head.linear_c.{i}.proj``,
  ``linear_fuse``, ``batch_norm``, ``classifier``.
The classification head of ImageNet files is skipped. A per-branch LayerNorm (M3L) receives the same
weights in every branch; per-branch decoders (M3L) each receive the decoder weights. Decoder weights
whose shape differs (another number of classes) are skipped and reported.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from rmmss_core.utils.io import CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

_NV_RULES: list[tuple[str, Callable[[re.Match], str]]] = [
    (r"^patch_embed(\d)\.(.*)$", lambda m: f"encoder.stages.{int(m[1]) - 1}.patch_embed.{m[2]}"),
    (r"^block(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.(.*)$",
     lambda m: f"encoder.stages.{int(m[1]) - 1}.blocks.{m[2]}.mlp.dwconv.{m[3]}"),
    (r"^block(\d)\.(\d+)\.(.*)$", lambda m: f"encoder.stages.{int(m[1]) - 1}.blocks.{m[2]}.{m[3]}"),
    (r"^norm(\d)\.(.*)$", lambda m: f"encoder.stages.{int(m[1]) - 1}.norm.{m[2]}"),
    (r"^decode_head\.linear_c(\d)\.proj\.(.*)$", lambda m: f"decoder.linear_c.{int(m[1]) - 1}.proj.{m[2]}"),
    (r"^decode_head\.(linear_fuse\.(conv|bn)\..*|linear_pred\..*)$", lambda m: f"decoder.{m[1]}"),
]
_HF_ATTN = {"query": "q", "sr": "sr", "layer_norm": "norm"}
_HF_MLP = {"dense1": "fc1", "dwconv.dwconv": "dwconv", "dense2": "fc2"}
_HF_RULES: list[tuple[str, Callable[[re.Match], str]]] = [
    (r"^encoder\.patch_embeddings\.(\d)\.(proj|layer_norm)\.(.*)$",
     lambda m: f"encoder.stages.{m[1]}.patch_embed.{'norm' if m[2] == 'layer_norm' else 'proj'}.{m[3]}"),
    (r"^encoder\.block\.(\d)\.(\d+)\.layer_norm_(\d)\.(.*)$",
     lambda m: f"encoder.stages.{m[1]}.blocks.{m[2]}.norm{m[3]}.{m[4]}"),
    (r"^encoder\.block\.(\d)\.(\d+)\.attention\.self\.(query|sr|layer_norm)\.(.*)$",
     lambda m: f"encoder.stages.{m[1]}.blocks.{m[2]}.attn.{_HF_ATTN[m[3]]}.{m[4]}"),
    (r"^encoder\.block\.(\d)\.(\d+)\.attention\.output\.dense\.(.*)$",
     lambda m: f"encoder.stages.{m[1]}.blocks.{m[2]}.attn.proj.{m[3]}"),
    (r"^encoder\.block\.(\d)\.(\d+)\.mlp\.(dense1|dwconv\.dwconv|dense2)\.(.*)$",
     lambda m: f"encoder.stages.{m[1]}.blocks.{m[2]}.mlp.{_HF_MLP[m[3]]}.{m[4]}"),
    (r"^encoder\.layer_norm\.(\d)\.(.*)$", lambda m: f"encoder.stages.{m[1]}.norm.{m[2]}"),
    (r"^decode_head\.linear_c\.(\d)\.proj\.(.*)$", lambda m: f"decoder.linear_c.{m[1]}.proj.{m[2]}"),
    (r"^decode_head\.linear_fuse\.(.*)$", lambda m: f"decoder.linear_fuse.conv.{m[1]}"),
    (r"^decode_head\.batch_norm\.(.*)$", lambda m: f"decoder.linear_fuse.bn.{m[1]}"),
    (r"^decode_head\.classifier\.(.*)$", lambda m: f"decoder.linear_pred.{m[1]}"),
]


def map_public_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Public SegFormer/MiT names -> this package's AnyModalSegmentor names (unknown keys dropped).

    HF's separate ``key``/``value`` linears are concatenated into our ``kv``.
    """
    out: dict[str, Tensor] = {}
    hf_kv: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        key = re.sub(r"^(module\.|model\.|backbone\.|segformer\.)+", "", key)
        hf = re.match(r"^encoder\.block\.(\d)\.(\d+)\.attention\.self\.(key|value)\.(weight|bias)$", key)
        if hf:
            hf_kv.setdefault(f"encoder.stages.{hf[1]}.blocks.{hf[2]}.attn.kv.{hf[4]}", {})[hf[3]] = value
            continue
        for pattern, repl in _NV_RULES + _HF_RULES:
            m = re.match(pattern, key)
            if m:
                out[repl(m)] = value
                break
    for name, parts in hf_kv.items():
        if set(parts) == {"key", "value"}:
            out[name] = torch.cat([parts["key"], parts["value"]], dim=0)
    return out


def load_pretrained(model: nn.Module, source: str | os.PathLike | Mapping[str, Tensor],
                    require_encoder: bool = True) -> dict[str, list[str]]:
    """Copy public weights into ``model`` (an AnyModalSegmentor). Returns ``{"loaded", "skipped",
    "missing"}`` (our names). Raises CheckpointError when no encoder weight fits (wrong file/size)."""
    if isinstance(source, Mapping):
        state = source
    else:
        obj = load_checkpoint(source)
        state = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, Mapping) else obj
    mapped = map_public_keys({k: v for k, v in state.items() if torch.is_tensor(v)})
    own = model.state_dict()
    loaded, skipped, new = [], [], {}
    for key, value in mapped.items():
        for target in _targets(key, own):
            fitted = _fit(value, own[target])
            if fitted is None:
                skipped.append(f"{target} {tuple(value.shape)} vs {tuple(own[target].shape)}")
            else:
                new[target] = fitted
                loaded.append(target)
    encoder_keys = [k for k in own if k.startswith("encoder.")]
    missing = [k for k in encoder_keys if k not in new]
    if require_encoder and missing:
        raise CheckpointError(f"pretrained weights cover {len(encoder_keys) - len(missing)}/{len(encoder_keys)} "
                              f"encoder tensors (e.g. missing {missing[:3]}, skipped {skipped[:3]}): "
                              "wrong file or wrong MiT size?")
    model.load_state_dict(new, strict=False)
    log.info("pretrained: loaded %d tensors, skipped %d, %d encoder tensors missing",
             len(loaded), len(skipped), len(missing))
    return {"loaded": loaded, "skipped": skipped, "missing": missing}


def _targets(key: str, own: Mapping[str, Tensor]) -> list[str]:
    """Our key, or each per-branch decoder's copy of a decoder key (M3L ensemble)."""
    if key in own:
        return [key]
    if key.startswith("decoder."):
        rest = key[len("decoder."):]
        return [k for k in own if re.fullmatch(rf"decoder\.heads\.\d+\.{re.escape(rest)}", k)]
    return []


def _fit(value: Tensor, target: Tensor) -> Tensor | None:
    if value.shape == target.shape:
        return value.to(target.dtype)
    if target.dim() == value.dim() + 1 and target.shape[1:] == value.shape:   # per-branch LayerNorm
        return value.to(target.dtype).expand_as(target).clone()
    return None
