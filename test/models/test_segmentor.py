"""The shared behaviour every (fusion, missing) combination of the segmentor must have."""
from __future__ import annotations

import pytest
import torch

from rmmss_core.modalities import MODALITIES, SUBSETS, subset_mask

from .base import NUM_CLASSES, H, W, all_subsets_mask, combos, make_inputs, make_model, mixed_mask


def _loss(out) -> torch.Tensor:
    """Touches everything a training recipe may use: logits, every feature and fusion extra."""
    f = out.features
    terms = [out.logits.square().mean(), f.embedding.square().mean()]
    terms += [t.square().mean() for t in f.per_modality + f.fused + (f.imputed or [])]
    if f.branch_logits is not None:
        terms.append(f.branch_logits.square().mean())
    return sum(terms)


@combos
def test_forward_shapes_odd_size(fusion, missing):
    model = make_model(fusion, missing).eval()
    av = mixed_mask(3)
    with torch.no_grad():
        out = model(make_inputs(3), av, return_features=True)
    assert out.logits.shape == (3, NUM_CLASSES, H, W)
    f = out.features
    dims = model.encoder.out_channels
    sizes = [(9, 12), (5, 6), (3, 3), (2, 2)]   # ceil(33 / r), ceil(47 / r) for r = 4, 8, 16, 32
    for s, (c, (h, w)) in enumerate(zip(dims, sizes, strict=True)):
        assert f.per_modality[s].shape == (3, 4, c, h, w)
        assert f.fused[s].shape == (3, c, h, w)
        assert not f.per_modality[s][~av].any(), "unavailable modalities' features must be zeros"
    assert f.embedding.shape == (3, model.decoder.dim, 9, 12)
    assert (f.imputed is not None) == (fusion == "impute")
    assert (f.branch_logits is not None) == (fusion == "linear")
    if fusion == "impute":
        assert f.imputed[0].shape == (3, 4, dims[0], 9, 12)
        assert torch.equal(f.imputed_mask, ~av)
        assert torch.equal(f.impute_valid, av & (av.sum(1, keepdim=True) > 1))
    if fusion == "linear":
        assert f.branch_logits.shape == (3, 4, NUM_CLASSES, H, W)
    assert model(make_inputs(3), av).features is None


@combos
def test_every_parameter_gets_a_gradient(fusion, missing):
    model = make_model(fusion, missing).train()
    x = make_inputs(2)
    _loss(model(x, subset_mask("RDEL", 2), return_features=True)).backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    # the mask token can only be used when something is missing
    assert no_grad == (["missing.mask_token"] if missing == "token" else [])
    if missing == "token":
        model.zero_grad()
        _loss(model(x, mixed_mask(2), return_features=True)).backward()
        assert model.missing.mask_token.grad.abs().sum() > 0


@combos
def test_all_15_subsets_and_per_sample_masks(fusion, missing):
    """One batch holding all 15 subsets equals 15 separate single-sample runs."""
    model = make_model(fusion, missing).eval()
    av = all_subsets_mask()
    x = make_inputs(len(SUBSETS))
    with torch.no_grad():
        batched = model(x, av).logits
        assert torch.isfinite(batched).all()
        for i in range(len(SUBSETS)):
            single = model({k: v[i:i + 1] for k, v in x.items()}, av[i:i + 1]).logits
            torch.testing.assert_close(batched[i:i + 1], single, rtol=1e-4, atol=1e-5)
    # the mask matters: different subsets give different outputs for the same inputs
    same = {k: v[:1].expand(len(SUBSETS), -1, -1, -1) for k, v in x.items()}
    with torch.no_grad():
        per_subset = model(same, av).logits
    assert not torch.allclose(per_subset[0], per_subset[-1])


@combos
def test_masked_inputs_have_no_influence(fusion, missing):
    """Changing (even poisoning with NaN) a masked sensor's input changes nothing, bit for bit."""
    model = make_model(fusion, missing).eval()
    av = mixed_mask(4)
    x = make_inputs(4)
    poisoned = {k: torch.where(av[:, i, None, None, None], v, torch.full_like(v, float("nan")))
                for i, (k, v) in enumerate(x.items())}
    changed = {k: torch.where(av[:, i, None, None, None], v, 100 * torch.randn_like(v))
               for i, (k, v) in enumerate(x.items())}
    with torch.no_grad():
        ref = model(x, av, return_features=True)
        for other in (poisoned, changed):
            out = model(other, av, return_features=True)
            assert torch.equal(out.logits, ref.logits)
            for a, b in zip(out.features.fused, ref.features.fused, strict=True):
                assert torch.equal(a, b)


@pytest.mark.parametrize("fusion", ["mean", "hub"])
def test_drop_equals_a_model_without_the_sensor(fusion):
    """``drop``: the output equals that of the same weights built for the present sensors only."""
    full = make_model(fusion, "drop").eval()
    rd = make_model(fusion, "drop", modalities=["rgb", "depth"]).eval()
    rd.load_state_dict(full.state_dict())
    x = make_inputs(2)
    with torch.no_grad():
        a = full(x, subset_mask("RD", 2)).logits
        b = rd(x, subset_mask("RDEL", 2)).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_zero_representation_fuses_the_zeroed_sensor():
    """``zero`` encodes a zeroed input and fuses it (the model is not told), unlike ``drop``."""
    zero = make_model("mean", "zero").eval()
    drop = make_model("mean", "drop").eval()
    drop.load_state_dict(zero.state_dict())
    x = make_inputs(1)
    with torch.no_grad():
        full = {k: v for k, v in x.items()}
        zeroed = {**x, "depth": torch.zeros_like(x["depth"])}
        assert torch.equal(zero(x, subset_mask("REL")).logits, drop(zeroed, subset_mask("RDEL")).logits)
        assert not torch.allclose(zero(full, subset_mask("REL")).logits, drop(full, subset_mask("REL")).logits)


def test_single_modality_model_ignores_other_sensors():
    model = make_model("mean", "drop", modalities=["lidar"]).eval()
    x = make_inputs(1)
    with torch.no_grad():
        a = model(x, subset_mask("RDEL")).logits
        b = model({"lidar": x["lidar"]}, subset_mask("L")).logits
        out = model(x, subset_mask("L"), return_features=True)
    assert torch.equal(a, b)
    assert out.features.per_modality[0].shape[1] == 1


def test_channels_last_and_bf16_autocast_run():
    model = make_model("linear", "token").eval().to(memory_format=torch.channels_last)
    x = {k: v.contiguous(memory_format=torch.channels_last) for k, v in make_inputs(2).items()}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, mixed_mask(2)).logits
    assert torch.isfinite(out).all() and out.shape == (2, NUM_CLASSES, H, W)


def test_modalities_order_is_the_contract():
    assert tuple(make_model().modalities) == MODALITIES
