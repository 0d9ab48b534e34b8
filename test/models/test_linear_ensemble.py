"""M3L's ensemble with absent sensors (``fusion: linear`` + ``missing: drop``, a supported pair): the
prediction is the softmax-weighted sum of the *present* branches' predictions only
(harshm121/M3L@01ce42a:src/models/segmentation_models/linearfusemaskedconsmixbatch/segformer.py:144-148
weights the branches it was given). An absent branch given any weight would blend in a prediction
made from zeros; the mutation audit's surviving mutant did exactly that."""
from __future__ import annotations

import pytest
import torch

from rmmss_core.modalities import SUBSETS, subset_mask, subset_name

from .base import make_inputs, make_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = make_model("linear", "drop").eval()
    with torch.no_grad():  # unequal weights: a uniform ensemble would hide a wrong renormalisation
        m.decoder.ensemble.copy_(torch.tensor([0.7, -0.4, 1.3, 0.2]))
    return m


@pytest.mark.parametrize("subset", SUBSETS, ids=[subset_name(s) for s in SUBSETS])
def test_ensemble_weights_only_the_present_branches(model, subset):
    av = subset_mask(subset, 2)
    with torch.no_grad():
        out = model(make_inputs(2), av, return_features=True)
    branch = out.features.branch_logits                                  # B x M x K x H x W
    w = torch.softmax(model.decoder.ensemble[list(subset)], dim=0)        # present branches only
    want = (w[None, :, None, None, None] * branch[:, list(subset)]).sum(dim=1)
    torch.testing.assert_close(out.logits, want, rtol=1e-5, atol=1e-5)


def test_what_an_absent_sensor_sends_cannot_change_the_prediction(model):
    av = subset_mask("RL", 1)
    x = make_inputs(1)
    with torch.no_grad():
        a = model(x, av).logits
        b = model({**x, "depth": 100 * torch.randn_like(x["depth"]), "event": torch.zeros_like(x["event"])}, av).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
