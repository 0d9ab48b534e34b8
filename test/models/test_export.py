"""The inference path exports (torch.export, ONNX opset 17) with the availability mask as a graph
input, and the exported graph follows the mask at run time (no mask baked in)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rmmss_core.models import LogitsOnly

from .base import COMBO_IDS, COMBOS, make_inputs, make_model, mixed_mask

# one combination per fusion in the default run; every combination behind the slow marker
FAST = [("mean", "drop"), ("linear", "token"), ("hub", "zero"), ("impute", "drop")]
SLOW = [c for c in COMBOS if c not in FAST]
NAMES = ["rgb", "depth", "event", "lidar", "available"]


def _params(combos, slow):
    marks = [pytest.mark.slow] if slow else []
    return [pytest.param(f, m, marks=marks, id=f"{f}-{m}") for f, m in combos]


ALL = _params(FAST, False) + _params(SLOW, True)


def _args(batch: int, h: int, w: int, seed: int = 0):
    x = make_inputs(batch, h, w, seed)
    return (*x.values(), mixed_mask(batch))


@pytest.mark.parametrize(("fusion", "missing"), ALL)
def test_onnx_export_follows_the_mask(tmp_path, fusion, missing):
    ort = pytest.importorskip("onnxruntime")
    model = LogitsOnly(make_model(fusion, missing).eval())
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, _args(2, 33, 47), str(path), dynamo=False, opset_version=17,
                          input_names=NAMES, output_names=["logits"],
                          dynamic_axes={n: {0: "batch", 2: "height", 3: "width"} for n in NAMES[:4]}
                          | {"available": {0: "batch"}, "logits": {0: "batch", 2: "height", 3: "width"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, h, w in ((2, 33, 47), (3, 64, 40)):   # other mask rows and another size
        args = _args(batch, h, w, seed=batch)
        args = (*args[:4], torch.roll(args[4], 1, dims=0))
        got = session.run(None, {n: a.numpy() for n, a in zip(NAMES, args, strict=True)})[0]
        with torch.no_grad():
            ref = model(*args).numpy()
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("fusion", "missing"), _params(FAST[:1], False) + _params(
    [c for c in COMBOS if c != FAST[0]], True))
def test_torch_export(fusion, missing):
    model = LogitsOnly(make_model(fusion, missing).eval())
    program = torch.export.export(model, _args(2, 33, 47))
    args = _args(2, 33, 47, seed=5)
    args = (*args[:4], torch.roll(args[4], 1, dims=0))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*args), model(*args))


def test_combination_lists_cover_everything():
    assert sorted(FAST + SLOW) == sorted(COMBOS) and len(COMBO_IDS) == len(COMBOS)
