"""Every recipe trains a few steps on tiny data: its loss falls, its checkpoint loads and predicts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _recipe_helpers import SPEC, BlockWorld, recipe_config

from rmmss_core.modalities import MODALITIES
from rmmss_core.models import load_model
from rmmss_core.train.data import PartiallyLabeled
from rmmss_core.train.recipes import RECIPES, build_recipe
from rmmss_core.train.trainer import fit
from rmmss_core.utils.io import load_checkpoint


def _batch():
    data = BlockWorld(4, seed=9)
    return {k: (torch.stack([data[i][k] for i in range(4)]) if k != "name" else None)
            for k in ("rgb", "depth", "event", "lidar", "label", "available")}


def _loss(recipe, batch) -> float:
    """Cross-entropy of the recipe's output model, all sensors and two partial subsets."""
    model = recipe.output_model().eval()
    inputs = {m: batch[m] for m in MODALITIES}
    total = 0.0
    for subset in ([1, 1, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1]):
        avail = torch.tensor([subset] * 4, dtype=torch.bool)
        with torch.no_grad():
            total += float(F.cross_entropy(model(inputs, avail).logits, batch["label"]))
    return total / 3


def train(name, out, data=None, **kw):
    cfg = recipe_config(name, **kw)
    torch.manual_seed(0)
    recipe = build_recipe(name, cfg, SPEC)
    before = _loss(recipe, _batch())
    res = fit(cfg, recipe, data or BlockWorld(), out, spec=SPEC)
    return recipe, before, _loss(recipe, _batch()), res


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """teacher, LiDAR-only teacher, robust (HPDM) and FSM checkpoints, trained once."""
    root = tmp_path_factory.mktemp("chain")
    out = {}
    for key, name, kw in [
        ("teacher", "teacher", {"iters": 16}),
        ("lidar", "teacher", {"options": {"modalities": ["lidar"]}}),
        ("robust", "rmmss-hpdm", {"teacher": "@teacher"}),
        ("fsm", "rmmss-fsm", {"teacher": "@teacher", "robust": "@robust"}),
    ]:
        kw = {k: str(out[v[1:]]) if isinstance(v, str) and v.startswith("@") else v for k, v in kw.items()}
        recipe, before, after, res = train(name, root / key, **kw)
        out[key] = res.last
        out[f"{key}_loss"] = (before, after)
    return out


NEEDS = {"anyseg": {"teacher": "teacher"}, "rmmss-hpdm": {"teacher": "teacher"},
         "rmmss-fsm": {"teacher": "teacher", "robust": "robust"}, "u2mkd": {"teacher": "lidar"},
         "compress": {"teacher": "fsm"}}
OPTIONS = {"m3l": {"fusion": "linear", "missing": "token"}, "u2mkd": {"fusion": "impute"}}


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_and_its_checkpoint_loads(name, chain, tmp_path):
    kw = {role: str(chain[src]) for role, src in NEEDS.get(name, {}).items()}
    recipe, before, after, res = train(name, tmp_path / name, options=OPTIONS.get(name, {}), **kw)
    assert after < before, f"{name}: loss did not fall ({before:.4f} -> {after:.4f})"
    model, spec = load_model(res.last)
    assert spec == SPEC
    batch = _batch()
    inputs = {m: batch[m] for m in MODALITIES}
    avail = torch.tensor([[True, False, False, False], [False, True, True, False],
                          [False, False, False, True], [True, True, True, True]])
    with torch.no_grad():
        logits = model(inputs, avail).logits
        ref = recipe.output_model().eval()(inputs, avail).logits
    assert logits.shape == (4, SPEC.num_classes, 32, 40)
    torch.testing.assert_close(logits, ref)
    if name in ("rmmss-fsm", "compress", "anyseg", "rmmss-hpdm", "u2mkd"):
        frozen = [p for n, p in recipe.named_parameters() if not p.requires_grad]
        assert frozen, f"{name}: the teacher should be frozen"


def test_chain_losses_fall(chain):
    for key in ("teacher", "lidar", "robust", "fsm"):
        before, after = chain[f"{key}_loss"]
        assert after < before, f"{key}: {before:.4f} -> {after:.4f}"


def test_fsm_trains_only_the_selection_module(chain):
    ckpt = load_checkpoint(chain["fsm"])
    teacher = load_checkpoint(chain["teacher"])["state_dict"]
    robust = load_checkpoint(chain["robust"])["state_dict"]
    for k, v in teacher.items():
        assert torch.equal(ckpt["state_dict"][f"teacher.{k}"], v), k
    for k, v in robust.items():
        assert torch.equal(ckpt["state_dict"][f"robust.{k}"], v), k
    assert ckpt["model"]["name"] == "rmmss_fsm"
    assert any(k.startswith("stages.") for k in ckpt["state_dict"])


def test_missing_teacher_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a teacher checkpoint"):
        build_recipe("anyseg", recipe_config("anyseg"), SPEC)
    with pytest.raises(KeyError, match="valid"):
        build_recipe("nope", recipe_config("nope"), SPEC)


def test_m3l_semi_supervised_uses_pseudo_labels_and_resumes_its_ema(tmp_path):
    data = PartiallyLabeled(BlockWorld(), fraction=0.25, seed=0)
    assert int(data.labeled.sum()) == 4
    cfg = recipe_config("m3l", options={"fusion": "linear", "missing": "token"})
    torch.manual_seed(0)
    recipe = build_recipe("m3l", cfg, SPEC)
    res = fit(cfg, recipe, data, tmp_path / "m3l", spec=SPEC)
    ckpt = load_checkpoint(res.last)
    assert "ema" in ckpt["recipe_state"]
    # the EMA teacher moved towards the student and is not equal to it
    ema, student = recipe.ema.state_dict(), recipe.model.state_dict()
    key = next(k for k in ema if k.endswith("weight") and ema[k].is_floating_point())
    assert not torch.equal(ema[key], student[key])
    torch.manual_seed(0)
    part = build_recipe("m3l", cfg, SPEC)
    fit(cfg, part, data, tmp_path / "m3l2", spec=SPEC, should_stop=lambda s: s == 3)
    torch.manual_seed(0)
    resumed = build_recipe("m3l", cfg, SPEC)
    fit(cfg, resumed, data, tmp_path / "m3l2", spec=SPEC, resume=True)
    for k, v in recipe.ema.state_dict().items():
        assert torch.equal(v, resumed.ema.state_dict()[k]), k
