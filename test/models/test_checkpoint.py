from __future__ import annotations

import pytest
import torch

from rmmss_core.models import create_model, load_model, save_model_checkpoint
from rmmss_core.models.checkpoint import checkpoint_dict
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import CheckpointError, load_checkpoint

from .base import COMBO_IDS, COMBOS, make_inputs, make_model, mixed_mask


@pytest.mark.parametrize(("fusion", "missing"), COMBOS, ids=COMBO_IDS)
def test_checkpoint_round_trip(tmp_path, fusion, missing):
    model = make_model(fusion, missing).eval()
    spec = PreprocessSpec(input_size=(64, 96))
    path = tmp_path / "m.pt"
    save_model_checkpoint(path, model, spec, extra={"epoch": 3})
    raw = load_checkpoint(path)
    assert raw["format"] == "rmmss-checkpoint-v1" and raw["epoch"] == 3
    assert raw["model"]["name"] == "anymodal" and raw["model"]["config"]["fusion"] == fusion
    loaded, spec2 = load_model(path)
    assert spec2 == spec and not loaded.training
    assert loaded.config == model.config
    x, av = make_inputs(), mixed_mask(2)
    with torch.no_grad():
        assert torch.equal(model(x, av).logits, loaded(x, av).logits)


def test_wrong_format_and_missing_keys(tmp_path):
    model = make_model()
    ckpt = checkpoint_dict(model, PreprocessSpec())
    with pytest.raises(CheckpointError, match="format"):
        load_model({**ckpt, "format": "something-else"})
    with pytest.raises(CheckpointError, match="lacks"):
        load_model({k: v for k, v in ckpt.items() if k != "spec"})
    state = dict(ckpt["state_dict"])
    state.pop("decoder.linear_pred.weight")
    with pytest.raises(CheckpointError, match="missing"):
        load_model({**ckpt, "state_dict": state})
    with pytest.raises(CheckpointError, match="unknown model"):
        load_model({**ckpt, "model": {"name": "nope", "config": {}}})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "absent.pt")


def test_shape_mismatch_is_named():
    small = checkpoint_dict(make_model(num_classes=5), PreprocessSpec())
    other = make_model(num_classes=7)
    small["state_dict"] = {k: v for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="mis-shaped keys.*linear_pred"):
        load_model(small)


def test_extra_keys_cannot_clash(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_model_checkpoint(tmp_path / "x.pt", make_model(), PreprocessSpec(), extra={"state_dict": {}})


def test_directly_built_model_cannot_be_saved(tmp_path):
    model = make_model()
    plain = type(model)(model.encoder, model.fusion, model.decoder, model.missing)
    with pytest.raises(ValueError, match="create_model"):
        save_model_checkpoint(tmp_path / "x.pt", plain, PreprocessSpec())


def test_registry_lists_names_and_validates():
    with pytest.raises(KeyError, match="anymodal"):
        create_model("no-such-model")
    with pytest.raises(ValueError, match="supports missing"):
        create_model("anymodal", size="tiny", fusion="impute", missing="token")
    with pytest.raises(ValueError, match="unknown key"):
        create_model("anymodal", size="tiny", colour="red")
    with pytest.raises(ValueError, match="ordered subset"):
        create_model("anymodal", size="tiny", modalities=["depth", "rgb"])
