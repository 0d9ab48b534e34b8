"""MAC counts in SegFormer's published convention (mmcv get_flops + sra_flops) and params."""
from __future__ import annotations

import pytest

from rmmss_core.models import create_model
from rmmss_core.models.complexity import PUBLISHED, model_complexity, published_check


def _check(size: str):
    model = create_model("anymodal", size=size, num_classes=150, modalities=["rgb"])
    c = model_complexity(model, 512, 512)
    err, ok = published_check(size, c.macs)
    assert ok, f"{size}: {c.macs / 1e9:.2f} GMACs vs published {PUBLISHED[size][1]} ({err:+.1%})"
    assert abs(c.params / 1e6 - PUBLISHED[size][0]) / PUBLISHED[size][0] < 0.03
    assert abs(c.macs_torch - c.macs) / c.macs < 0.02   # the two conventions agree closely here


def test_b0_matches_published():
    _check("b0")


@pytest.mark.slow
@pytest.mark.parametrize("size", ["b1", "b2"])
def test_b1_b2_match_published(size):
    _check(size)


def test_macs_grow_with_modalities_and_size():
    model = create_model("anymodal", size="tiny", num_classes=5)
    one = model_complexity(model, 64, 64, num_available=1)
    four = model_complexity(model, 64, 64)
    big = model_complexity(model, 128, 128)
    assert four.num_modalities == 4 and one.num_modalities == 1
    # all sensors are encoded in the static graph (masked, not skipped): same MACs for any mask
    assert one.macs == four.macs
    single = model_complexity(create_model("anymodal", size="tiny", num_classes=5, modalities=["rgb"]), 64, 64)
    assert 2.5 * single.macs < four.macs < 4 * single.macs   # 4 encoders, one decoder
    assert 3.5 * four.macs < big.macs < 4.5 * four.macs       # ~ linear in pixels


def test_counting_does_not_touch_the_model():
    model = create_model("anymodal", size="tiny", num_classes=5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model_complexity(model, 64, 64)
    assert model.training
    assert all((before[k] == v).all() for k, v in model.state_dict().items())
