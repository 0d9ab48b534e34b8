"""MiT encoder contract, the size table, and loading public SegFormer weights by name."""
from __future__ import annotations

import pytest
import torch

from rmmss_core.models.config import MIT_SIZES, MiTConfig
from rmmss_core.models.mit import MiT
from rmmss_core.models.pretrained import load_pretrained
from rmmss_core.utils.io import CheckpointError

from .base import make_inputs, make_model, mixed_mask


@pytest.mark.parametrize("size", ["tiny", "b0", "b1", "b2"])
def test_stage_table_and_pyramid(size):
    cfg = MIT_SIZES[size]
    enc = MiT(cfg)
    assert enc.out_channels == cfg.dims and enc.reductions == (4, 8, 16, 32)
    assert [len(s.blocks) for s in enc.stages] == list(cfg.depths)
    assert [s.blocks[0].attn.heads for s in enc.stages] == list(cfg.heads)
    assert [s.patch_embed.proj.kernel_size[0] for s in enc.stages] == [7, 3, 3, 3]
    if size in ("tiny", "b0"):
        feats = enc(torch.randn(1, 3, 65, 37))
        assert [tuple(f.shape[1:]) for f in feats] == [
            (c, h, w) for c, (h, w) in zip(cfg.dims, [(17, 10), (9, 5), (5, 3), (3, 2)], strict=True)]


def test_published_sizes():
    assert MIT_SIZES["b0"].dims == (32, 64, 160, 256) and MIT_SIZES["b0"].depths == (2, 2, 2, 2)
    assert MIT_SIZES["b1"].dims == (64, 128, 320, 512) and MIT_SIZES["b1"].depths == (2, 2, 2, 2)
    assert MIT_SIZES["b2"].depths == (3, 4, 6, 3) and MIT_SIZES["b2"].decoder_dim == 768
    assert all(c.heads == (1, 2, 5, 8) and c.sr_ratios == (8, 4, 2, 1) for k, c in MIT_SIZES.items() if k != "tiny")


def test_bad_table_fails_at_construction():
    with pytest.raises(ValueError, match="divisible"):
        MiT(MiTConfig(dims=(16, 32, 64, 100), depths=(1, 1, 1, 1), heads=(1, 2, 4, 8)))


def _nvlabs_state(cfg: MiTConfig, g: torch.Generator) -> dict[str, torch.Tensor]:
    """A state dict in the public NVlabs SegFormer layout (``backbone.`` prefixed), random values."""
    s: dict[str, torch.Tensor] = {}

    def put(name, *shape):
        s["backbone." + name] = torch.randn(*shape, generator=g)

    chans = (3, *cfg.dims[:-1])
    for i, (c, d, r) in enumerate(zip(cfg.dims, cfg.depths, cfg.sr_ratios, strict=True), start=1):
        k = 7 if i == 1 else 3
        put(f"patch_embed{i}.proj.weight", c, chans[i - 1], k, k)
        put(f"patch_embed{i}.proj.bias", c)
        put(f"patch_embed{i}.norm.weight", c)
        put(f"patch_embed{i}.norm.bias", c)
        for j in range(d):
            b = f"block{i}.{j}."
            for n in ("norm1", "norm2"):
                put(b + n + ".weight", c)
                put(b + n + ".bias", c)
            put(b + "attn.q.weight", c, c)
            put(b + "attn.q.bias", c)
            put(b + "attn.kv.weight", 2 * c, c)
            put(b + "attn.kv.bias", 2 * c)
            put(b + "attn.proj.weight", c, c)
            put(b + "attn.proj.bias", c)
            if r > 1:
                put(b + "attn.sr.weight", c, c, r, r)
                put(b + "attn.sr.bias", c)
                put(b + "attn.norm.weight", c)
                put(b + "attn.norm.bias", c)
            h = c * cfg.mlp_ratio
            put(b + "mlp.fc1.weight", h, c)
            put(b + "mlp.fc1.bias", h)
            put(b + "mlp.dwconv.dwconv.weight", h, 1, 3, 3)
            put(b + "mlp.dwconv.dwconv.bias", h)
            put(b + "mlp.fc2.weight", c, h)
            put(b + "mlp.fc2.bias", c)
        put(f"norm{i}.weight", c)
        put(f"norm{i}.bias", c)
    s["head.weight"] = torch.randn(1000, cfg.dims[-1], generator=g)   # ImageNet classifier: skipped
    for i, c in enumerate(cfg.dims, start=1):
        s[f"decode_head.linear_c{i}.proj.weight"] = torch.randn(cfg.decoder_dim, c, generator=g)
    s["decode_head.linear_pred.weight"] = torch.randn(150, cfg.decoder_dim, 1, 1, generator=g)  # ADE: skipped
    return s


@pytest.mark.parametrize("fusion", ["mean", "linear"])
def test_load_nvlabs_segformer_weights(tmp_path, fusion):
    model = make_model(fusion, "drop")
    state = _nvlabs_state(MIT_SIZES["tiny"], torch.Generator().manual_seed(1))
    path = tmp_path / "segformer.pth"
    torch.save({"state_dict": state, "meta": {}}, path)
    report = load_pretrained(model, path)
    assert not report["missing"]
    own = model.state_dict()
    assert torch.equal(own["encoder.stages.1.blocks.0.mlp.dwconv.weight"],
                       state["backbone.block2.0.mlp.dwconv.dwconv.weight"])
    norm = own["encoder.stages.3.norm.bias"]           # C, or M x C per-branch norms for linear
    assert norm.dim() == (1 if fusion == "mean" else 2)
    assert torch.equal(norm, state["backbone.norm4.bias"].expand_as(norm))
    dec = "decoder.linear_c.2.proj.weight" if fusion == "mean" else "decoder.heads.3.linear_c.2.proj.weight"
    assert torch.equal(own[dec], state["decode_head.linear_c3.proj.weight"])
    assert any("linear_pred" in s for s in report["skipped"])   # 150 ADE classes vs 5
    with torch.no_grad():
        assert torch.isfinite(model.eval()(make_inputs(2), mixed_mask(2)).logits).all()


def test_load_hf_weights_concatenates_key_value():
    model = make_model("mean", "drop")
    g = torch.Generator().manual_seed(2)
    nv = _nvlabs_state(MIT_SIZES["tiny"], g)
    hf = {}
    for k, v in nv.items():
        m = k.replace("backbone.", "")
        if m.startswith("block") and ".attn.kv." in m:
            i, j = m[5], m.split(".")[1]
            key, value = v.chunk(2, dim=0)
            base = f"segformer.encoder.block.{int(i) - 1}.{j}.attention.self."
            hf[base + "key." + m.rsplit(".", 1)[1]] = key
            hf[base + "value." + m.rsplit(".", 1)[1]] = value
    load_pretrained(model, {**hf}, require_encoder=False)
    torch.testing.assert_close(model.state_dict()["encoder.stages.0.blocks.0.attn.kv.weight"],
                               nv["backbone.block1.0.attn.kv.weight"])


def test_wrong_size_weights_are_refused():
    model = make_model()
    state = _nvlabs_state(MIT_SIZES["b0"], torch.Generator().manual_seed(3))
    with pytest.raises(CheckpointError, match="wrong MiT size"):
        load_pretrained(model, state)
