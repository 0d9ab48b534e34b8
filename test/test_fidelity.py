"""Faithful to the authors' code (issue #13): the nine corrections, each on small hand-made tensors
whose right value is worked out by hand or from the authors' formula, and the readings made
explicit (authors' default and our named option, both tested).

Sources (repo@commit:path:line) are in the docstrings of the code under test.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rmmss_core.losses import cmd_loss, logit_kd_loss, mad_loss, umd_loss
from rmmss_core.modalities import MODALITIES

# the authors' formula is KLDivLoss(reduction='mean'); PyTorch warns that 'batchmean' is the true KL
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")

# ================================================================ 1. L_mad / RMMSS logit KD


def _uniform_vs_peaked(k: int, a: float):
    """Teacher uniform over K classes, student logit ``a`` on class 0: one pixel."""
    t = torch.zeros(1, k, 1, 1)
    s = torch.zeros(1, k, 1, 1)
    s[0, 0] = a
    return s, t


def test_mad_is_kldiv_mean_over_all_elements():
    k, a = 25, math.log(3.0)
    s, t = _uniform_vs_peaked(k, a)
    # by hand: KL(u || softmax(s)) = -ln K - a / K + ln(e^a + K - 1); 'mean' divides by B*K*H*W = K
    per_pixel = -math.log(k) - a / k + math.log(math.exp(a) + k - 1)
    assert mad_loss(s, t).item() == pytest.approx(per_pixel / k, rel=1e-5)
    # the authors' formula, literally: KLDivLoss(reduction='mean')(log_softmax(s), softmax(t))
    authors = nn.KLDivLoss(reduction="mean")(torch.log_softmax(s, 1), torch.softmax(t, 1))
    x_s, x_t = torch.randn(2, 25, 3, 4), torch.randn(2, 25, 3, 4)
    authors_rand = nn.KLDivLoss(reduction="mean")(torch.log_softmax(x_s, 1), torch.softmax(x_t, 1))
    assert mad_loss(s, t).item() == pytest.approx(authors.item(), rel=1e-5)
    assert mad_loss(x_s, x_t).item() == pytest.approx(authors_rand.item(), rel=1e-5)
    # our former reading, a named option: K times stronger
    assert mad_loss(s, t, reduction="pixel").item() == pytest.approx(per_pixel, rel=1e-5)
    assert logit_kd_loss(x_s, x_t, reduction="element").item() == pytest.approx(authors_rand.item(), rel=1e-5)


def test_hpdm_logit_kd_default_is_the_authors_reduction():
    from rmmss_core.train.config import LossConfig
    assert LossConfig().kl_reduction == "element"


# ================================================================ 2. L_cmd per channel

def _cmd_case():
    # student: channel-wise the two modalities agree (cos 1 per channel), flattened they do not
    s = torch.tensor([[[1.0, 0.0], [0.0, 10.0]],        # modality A: C=2 channels of H*W=2
                      [[1.0, 0.0], [0.0, 1.0]]])        # modality B
    t = torch.tensor([[[1.0, 0.0], [1.0, 0.0]],         # teacher: per-channel cos 0 and 0
                      [[0.0, 1.0], [0.0, 1.0]]])
    return s.reshape(1, 2, 2, 1, 2), t.reshape(1, 2, 2, 1, 2)


def test_cmd_compares_per_channel_cosines_averaged_over_channels():
    s, t = _cmd_case()
    both = torch.tensor([[True, True]])
    # per channel: student similarity 1, teacher 0 -> MSE over the 2 off-diagonal entries = 1
    assert cmd_loss(s, t, both).item() == pytest.approx(1.0, rel=1e-6)
    # the flattened reading (named option): cos([1,0,0,10], [1,0,0,1]) = 11 / sqrt(202)
    flat = 11 / math.sqrt(202)
    assert cmd_loss(s, t, both, per_channel=False).item() == pytest.approx(flat ** 2, rel=1e-5)


# ================================================================ 3.-5. M3L linear fusion

def test_m3l_linear_fusion_mixes_with_the_mean_of_the_others():
    from rmmss_core.models.fusion import LinearFusion
    tokens = torch.tensor([1.0, 0.0]).reshape(2, 1, 1)           # (B*M) x L x C, B=1, M=2
    mask = torch.tensor([[True, True]])
    out = LinearFusion(2, 0.8).mixer(mask)(tokens).flatten()
    assert out.tolist() == pytest.approx([0.8, 0.2])                # M3L modules.py: 0.8 self / 0.2 other
    old = LinearFusion(2, 0.8, mean="all").mixer(mask)(tokens).flatten()
    assert old.tolist() == pytest.approx([0.9, 0.1])                # the former reading, an option
    # four branches, branch 3 not taking part: a_0' = 0.8 a_0 + 0.2 mean(a_1, a_2)
    four = torch.tensor([1.0, 2.0, 4.0, 100.0]).reshape(4, 1, 1)
    out4 = LinearFusion(4, 0.8).mixer(torch.tensor([[True, True, True, False]]))(four).flatten()
    assert out4[:3].tolist() == pytest.approx([0.8 + 0.2 * 3.0, 1.6 + 0.2 * 2.5, 3.2 + 0.2 * 1.5])
    alone = LinearFusion(2, 0.8).mixer(torch.tensor([[True, False]]))(tokens).flatten()
    assert alone[0].item() == pytest.approx(1.0)                     # no other branch: unchanged


def _silent_block():
    from rmmss_core.models.blocks import TransformerBlock
    blk = TransformerBlock(dim=4, heads=1, sr_ratio=1, mlp_ratio=2, drop_path=0.0, branches=2)
    with torch.no_grad():
        blk.attn.proj.weight.zero_()
        blk.attn.proj.bias.zero_()
        blk.mlp.fc2.weight.zero_()
        blk.mlp.fc2.bias.zero_()
    return blk.eval()


def test_m3l_mixes_the_attention_output_before_the_residual():
    from rmmss_core.models.fusion import LinearFusion
    blk = _silent_block()
    x = torch.randn(2, 6, 4)                                         # B=1, M=2 branches, L=6 (2x3)
    mix = LinearFusion(2, 0.8).mixer(torch.tensor([[True, True]]))
    # attention and MLP output zero: M3L's block returns its input unchanged
    assert torch.allclose(blk(x, (2, 3), mix), x, atol=1e-6)
    stream = LinearFusion(2, 0.8, position="stream").mixer(torch.tensor([[True, True]]))
    mixed = blk(x, (2, 3), stream)                                   # the former reading mixes the stream
    want = torch.stack([0.8 * x[0] + 0.2 * x[1], 0.2 * x[0] + 0.8 * x[1]])
    assert torch.allclose(mixed, want, atol=1e-6)


def _tiny_linear(**kw):
    from rmmss_core.models import create_model
    opts = dict(size="tiny", fusion="linear", missing="token", num_classes=3, drop_path_rate=0.0,
                decoder_dropout=0.0)
    opts.update(kw)
    return create_model("anymodal", **opts)


def _inputs(b=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, 3, h, w, generator=g) for m in MODALITIES}


def test_m3l_ensemble_uses_detached_branch_predictions():
    torch.manual_seed(0)
    model = _tiny_linear()
    with torch.no_grad():
        model.decoder.ensemble.copy_(torch.tensor([0.3, -0.2, 0.1, 0.0]))
    out = model(_inputs(), torch.ones(2, 4, dtype=torch.bool), return_features=True)
    out.logits.sum().backward()
    assert model.decoder.ensemble.grad is not None and model.decoder.ensemble.grad.abs().sum() > 0
    for head in model.decoder.heads:                                   # no gradient through the ensemble
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in head.parameters())
    # the ensemble value is still the softmax-weighted sum of the branch predictions
    w = torch.softmax(model.decoder.ensemble.detach(), 0)
    want = (w[None, :, None, None, None] * out.features.branch_logits.detach()).sum(1)
    assert torch.allclose(out.logits.detach(), want, atol=1e-5)


def _m3l_recipe(**loss):
    from _recipe_helpers import SPEC, recipe_config

    from rmmss_core.train.config import LossConfig
    from rmmss_core.train.recipes import build_recipe
    cfg = recipe_config("m3l", options={"fusion": "linear", "missing": "token", "decoder_dropout": 0.0},
                        loss=LossConfig(**loss))
    torch.manual_seed(0)
    return build_recipe("m3l", cfg, SPEC), cfg


def _block_batch(n=4, labeled=None):
    from _recipe_helpers import BlockWorld
    data = BlockWorld(n)
    batch = {m: torch.stack([data[i][m] for i in range(n)]) for m in MODALITIES}
    batch["label"] = torch.stack([data[i]["label"] for i in range(n)])
    batch["available"] = torch.ones(n, 4, dtype=torch.bool)
    if labeled is not None:
        batch["labeled"] = labeled
        batch["label"][~labeled] = 255
    return batch


def _capture_student(recipe):
    """Record what the student's forward receives: (inputs, mask) of each call."""
    calls = []
    recipe.model.register_forward_pre_hook(lambda mod, args: calls.append((args[0], args[1])))
    return calls


def test_m3l_labelled_frames_trained_clean_and_masked_in_one_concatenated_batch():
    """harshm121/M3L@df83f1d:src/semi_supervised/meanteachermaskstudent.py:272-277: the batch is
    [labelled clean, labelled + unlabelled masked]."""
    recipe, cfg = _m3l_recipe()
    recipe.train()
    labeled = torch.tensor([True, False, True, False])
    batch = _block_batch(labeled=labeled)
    calls = _capture_student(recipe)
    torch.manual_seed(3)
    recipe(batch, 0)
    (x, mask), = calls
    assert mask.shape == (6, 4)                                   # 2 labelled clean + 4 masked
    for m in MODALITIES:
        assert torch.equal(x[m][:2], batch[m][labeled]) and torch.equal(x[m][2:], batch[m])
    assert mask[:2].all()                                          # the clean copy sees every sensor
    torch.manual_seed(3)
    from rmmss_core.train.recipes.common import anymodal_mask
    assert torch.equal(mask[2:], anymodal_mask(batch["available"], cfg.loss.dropout_per))
    # the former single masked copy stays an option
    recipe2, _ = _m3l_recipe(m3l_views="masked")
    calls2 = _capture_student(recipe2)
    recipe2(batch, 0)
    assert calls2[0][1].shape == (4, 4)


def test_m3l_losses_mean_over_branches_and_ensemble_pseudo_labels_on_the_whole_batch():
    from rmmss_core.losses import prob_ohem_cross_entropy
    from rmmss_core.train.recipes.common import anymodal_mask
    from rmmss_core.train.recipes.m3l import prediction_list
    recipe, cfg = _m3l_recipe()
    recipe.train()
    batch = _block_batch()                               # every frame labelled (labeled_fraction 1)
    torch.manual_seed(1)
    loss, logs = recipe(batch, 0)
    # recompute by the authors' formulas with the same random mask
    torch.manual_seed(1)
    mask = anymodal_mask(batch["available"], cfg.loss.dropout_per)
    assert not mask.all()                                # the masked copy differs from the clean one
    inputs = {m: torch.cat([batch[m], batch[m]]) for m in MODALITIES}
    out = recipe.model(inputs, torch.cat([batch["available"], mask]), return_features=True)
    preds = prediction_list(out)
    assert len(preds) == 5                                # 4 branches + the ensemble
    with torch.no_grad():
        pseudo = recipe.ema({m: batch[m] for m in MODALITIES}, batch["available"]).logits.argmax(1)
    pseudo = torch.cat([pseudo, pseudo])
    label = torch.cat([batch["label"], batch["label"]])
    min_kept = int(0.08 * 32 * 40) * 4                    # int(0.08 H W) * batch (get_framework.py:18)
    sup = sum(prob_ohem_cross_entropy(p, label, 0.7, min_kept) for p in preds) / 5
    pl = sum(F.cross_entropy(p, pseudo) for p in preds) / 5
    assert logs["ce"].item() == pytest.approx(sup.item(), rel=1e-5)
    # the mean teacher acts although every frame has a label
    assert logs["pseudo"].item() > 0.1
    assert logs["pseudo"].item() == pytest.approx(pl.item(), rel=1e-5)
    assert loss.item() == pytest.approx(sup.item() + cfg.loss.pseudo * pl.item(), rel=1e-5)


def test_m3l_project_ohem_and_single_masked_copy_are_options():
    from rmmss_core.train.recipes.common import anymodal_mask, supervised
    from rmmss_core.train.recipes.m3l import prediction_list
    recipe, cfg = _m3l_recipe(m3l_views="masked", m3l_sup="ohem")
    recipe.train()
    batch = _block_batch()
    torch.manual_seed(1)
    _, logs = recipe(batch, 0)
    torch.manual_seed(1)
    mask = anymodal_mask(batch["available"], cfg.loss.dropout_per)
    preds = prediction_list(recipe.model({m: batch[m] for m in MODALITIES}, mask, return_features=True))
    sup = sum(supervised(cfg, p, batch["label"]) for p in preds) / 5
    assert logs["ce"].item() == pytest.approx(sup.item(), rel=1e-5)


def test_m3l_pseudo_labels_cover_unlabelled_frames_too():
    recipe, _ = _m3l_recipe()
    labeled = torch.tensor([True, False, False, False])
    torch.manual_seed(1)
    _, logs = recipe(_block_batch(labeled=labeled), 0)
    assert logs["pseudo"].item() > 0.1 and torch.isfinite(logs["ce"])


# ================================================================ 7. RMM, 8. NM

def test_rmm_is_three_rates_by_fifteen_combinations_of_zero_to_three_affected():
    from rmmss_core.eval.protocols import RMM_COMBINATIONS, build_conditions
    conds = [c for c in build_conditions(["rmm"])]
    assert len(conds) == 45
    assert sorted({c.level for c in conds}) == [0.25, 0.5, 0.75]
    combos = {c.corrupted for c in conds}
    want = {c for k in range(4) for c in itertools.combinations(range(4), k)}
    assert combos == want == set(RMM_COMBINATIONS) and (0, 1, 2, 3) not in combos
    assert all(c.subset == (0, 1, 2, 3) for c in conds)                     # every modality available


def test_rmm_zeroes_single_elements_with_probability_r():
    from rmmss_core.data.corruptions import rmm_zero
    x = torch.ones(2, 3, 100, 100)
    y = rmm_zero(x, 0.5, torch.Generator().manual_seed(0))
    zero = y == 0
    assert 0.48 < zero.float().mean() < 0.52
    # element-wise: the channels of a pixel are dropped independently (~3/8 of pixels mixed)
    mixed = zero.any(1) & ~zero.all(1)
    assert 0.7 < mixed.float().mean() < 0.8
    assert torch.equal(y[~zero], x[~zero])


def test_rmm_summary_gives_avg_and_expected_miou_per_rate():
    from rmmss_core.eval.protocols import EvalRun, build_conditions

    class CM:
        def __init__(self, v):
            self.v = v

        def summary(self):
            return {"miou": self.v}

    conds = build_conditions(["rmm"])
    # mIoU of a combination = 1 - 0.1 * (number of affected modalities) - rate / 10
    conf = {c.key: CM(1 - 0.1 * len(c.corrupted) - c.level / 10) for c in conds}
    s = EvalRun(conf, conds).summary()["rmm"]
    assert set(s) == {"0.25", "0.5", "0.75"}
    # counts 0,1,2,3 appear 1,4,6,4 times (28 in all): Avg = 1 - 0.1 * 28 / 15 - r / 10
    assert s["0.5"]["miou_avg"] == pytest.approx(1 - 0.1 * 28 / 15 - 0.05)
    p = 0.2
    w = [p ** k * (1 - p) ** (4 - k) * n for k, n in zip(range(4), (1, 4, 6, 4), strict=True)]
    e = sum(wi * (1 - 0.1 * k - 0.05) for k, wi in enumerate(w)) / sum(w)
    assert s["0.5"]["miou_e"]["0.2"] == pytest.approx(e)
    assert len(s["0.25"]["combinations"]) == 15 and "none" in s["0.25"]["combinations"]


def test_nm_is_three_combined_levels_on_the_normalised_input_unclipped():
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.spec import PreprocessSpec
    conds = build_conditions(["nm"])
    assert [c.name for c in conds] == ["low", "mid", "high"]
    ev = Evaluator(PreprocessSpec(input_size=(64, 64)), conds)
    x = {m: torch.zeros(2, 3, 64, 64) for m in MODALITIES}
    x["event"][:, :, :, :32] = 1.0                     # max 1, min 0
    y = ev._corrupt(conds[2], x, torch.Generator().manual_seed(0))      # high: s&p 0.2, std 0.5
    ev_changed = y["event"] != x["event"]
    # event: salt-and-pepper only, values are the tensor's max/min: ceil(0.2 * n / 2) each
    assert set(torch.unique(y["event"]).tolist()) <= {0.0, 1.0}
    assert 0.05 < ev_changed.float().mean() < 0.1
    for m in ("rgb", "depth", "lidar"):               # R, D, L: also Gaussian, no clipping
        d = y[m]
        assert 0.45 < d.std().item() < 0.56
        assert d.max() > 1.5 and d.min() < -1.5
    assert (x["rgb"] == 0).all()                       # inputs untouched


def test_nm_salt_and_pepper_counts_and_values():
    from rmmss_core.data.corruptions import nm_salt_and_pepper
    x = torch.linspace(-2, 3, 2 * 3 * 10 * 10).reshape(2, 3, 10, 10)
    y = nm_salt_and_pepper(x, 0.1, torch.Generator().manual_seed(0))
    n = math.ceil(0.1 * x.numel() * 0.5)               # 30 draws each, with replacement
    salt, pepper = (y == 3.0) & (x != 3.0), (y == -2.0) & (x != -2.0)
    assert 0 < salt.sum() <= n and 0 < pepper.sum() <= n
    changed = y != x
    assert torch.equal(changed, salt | pepper)


# ================================================================ 9. the authors' FSM

def test_authors_fsm_selects_original_features_by_weighted_argmax():
    from rmmss_core.models.fsm import TokenSelect
    sel = TokenSelect(channels=2)
    with torch.no_grad():
        for i, net in enumerate(sel.scores):             # spatial score: sigmoid(bias), constant
            net.pw.weight.zero_()
            net.pw.bias.fill_(0.0 if i == 0 else 20.0)  # s_0 = 0.5, s_1 ~ 1
    x0 = torch.tensor([3.0, 1.0]).reshape(1, 2, 1, 1)
    x1 = torch.tensor([2.0, 0.9]).reshape(1, 2, 1, 1)
    out, winner = sel([x0, x1])
    # channel 0: 1.5 * 3 = 4.5 vs 2 * 2 = 4 -> teacher's 3; channel 1: 1.5 vs 1.8 -> robust's *original* 0.9
    assert out.flatten().tolist() == pytest.approx([3.0, 0.9])
    assert winner.flatten().tolist() == [0, 1]
    assert sel.scores[0](x0).shape == (1, 1, 1, 1)      # one spatial score per source


def test_fsm_default_is_the_authors_and_ours_is_an_option():
    from rmmss_core.models.fsm import FSMStudent, LogitSelect, TokenSelect
    from rmmss_core.train.config import FSMConfig
    assert FSMConfig().variant == "authors"
    from rmmss_core.models import create_model
    t = create_model("anymodal", size="tiny", num_classes=3)
    r = create_model("anymodal", size="tiny", num_classes=3)
    authors = FSMStudent(t, r)
    assert isinstance(authors.stages[0], TokenSelect) and not hasattr(authors, "logit_select")
    out = authors(_inputs(), torch.ones(2, 4, dtype=torch.bool), return_features=True)
    assert out.logits.shape == (2, 3, 32, 32)
    shares = out.features.branch_logits.flatten(1)
    assert torch.allclose(shares.sum(1), torch.ones(2))
    ours = FSMStudent(create_model("anymodal", size="tiny", num_classes=3),
                      create_model("anymodal", size="tiny", num_classes=3), variant="ours")
    assert isinstance(ours.logit_select, LogitSelect)
    assert ours(_inputs(), torch.ones(2, 4, dtype=torch.bool)).logits.shape == (2, 3, 32, 32)


def test_fsm_lives_with_the_models_without_an_import_cycle():
    import subprocess
    import sys
    code = ("import rmmss_core.models.fsm, sys; "
            "assert not any(m.startswith('rmmss_core.train') for m in sys.modules), "
            "[m for m in sys.modules if m.startswith('rmmss_core.train')]")
    subprocess.run([sys.executable, "-c", code], check=True)


# ================================================================ readings made explicit

def test_umd_authors_softmax_over_h_summed_over_stages_and_pairs_over_b():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(2, 3, 4, 5, 6, generator=g), torch.randn(2, 3, 8, 2, 3, generator=g)]
    t = [torch.randn(2, 3, 4, 5, 6, generator=g), torch.randn(2, 3, 8, 2, 3, generator=g)]
    avail = torch.tensor([[True, False, True], [False, True, False]])
    kl = nn.KLDivLoss(reduction="mean")
    want = 0.0
    for st, tt in zip(s, t, strict=True):              # the authors' loop (UMD.py): per sample, stage, slot
        for b in range(2):
            for m in range(3):
                if avail[b, m]:
                    want += kl(torch.log_softmax(st[b, m], dim=1), torch.softmax(tt[b, m], dim=1)).item()
    assert umd_loss(s, t, avail).item() == pytest.approx(want / 2, rel=1e-5)
    # our reading: channel softmax per pixel, mean over pairs then stages
    per = []
    for st, tt in zip(s, t, strict=True):
        sel_s, sel_t = st[avail], tt[avail]
        p_t = torch.softmax(sel_t, 1)
        per.append((p_t * (torch.log_softmax(sel_t, 1) - torch.log_softmax(sel_s, 1))).sum(1).mean())
    got = umd_loss(s, t, avail, axis="channel", stages="mean").item()
    assert got == pytest.approx(torch.stack(per).mean().item(), rel=1e-5)


def test_umd_and_cmd_stage_reduction_known_values():
    """#15: summing where the option says mean (or the reverse) changes a known multi-stage value."""
    # L_umd, channel axis: stage 1 one pair with KL 0.5 ln(4/3), stage 2 identical features (KL 0)
    s1 = torch.zeros(1, 1, 2, 1, 1)
    s1[0, 0, 0] = math.log(3)
    t1 = torch.zeros(1, 1, 2, 1, 1)
    s2 = torch.zeros(1, 1, 2, 1, 1)
    avail = torch.tensor([[True]])
    kl = 0.5 * math.log(4 / 3)
    assert umd_loss([s1, s2], [t1, s2], avail, axis="channel", stages="mean").item() == pytest.approx(kl / 2, rel=1e-5)
    assert umd_loss([s1, s2], [t1, s2], avail, axis="channel", stages="sum").item() == pytest.approx(kl, rel=1e-5)
    # L_cmd: stage 1 gives 1 (see _cmd_case), stage 2 identical (0)
    s, t = _cmd_case()
    both = torch.tensor([[True, True]])
    assert cmd_loss([s, s], [t, s], both, stages="mean").item() == pytest.approx(0.5, rel=1e-6)
    assert cmd_loss([s, s], [t, s], both, stages="sum").item() == pytest.approx(1.0, rel=1e-6)
    assert cmd_loss([s, s, s], [t, t, s], both, stages="mean").item() == pytest.approx(2 / 3, rel=1e-6)


def test_image_prototypes_keep_zero_rows_and_the_authors_kl():
    from rmmss_core.losses import image_prototype_kd, image_prototypes
    feats = torch.tensor([[[1.0, 3.0], [5.0, 7.0]]]).reshape(1, 1, 2, 2)    # C=1
    label = torch.tensor([[[0, 0], [2, 255]]])
    protos, present = image_prototypes(feats, label, 3)
    assert protos.flatten().tolist() == pytest.approx([2.0, 0.0, 5.0])       # class 1 absent: zero row
    assert present.flatten().tolist() == [True, False, True]
    teacher = torch.tensor([[[0.0], [0.0], [1.0]]])
    # authors: KLDivLoss('mean') over the K*C elements of softmax over all K rows
    want = nn.KLDivLoss(reduction="mean")(torch.log_softmax(protos, 1), torch.softmax(teacher, 1))
    assert image_prototype_kd(protos, teacher).item() == pytest.approx(want.item(), rel=1e-5)
    # our reading: present classes only, KL summed over classes, mean over channels
    pt = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    ps = torch.log_softmax(torch.tensor([2.0, 5.0]), 0)
    ours = (pt * (pt.log() - ps)).sum()
    assert image_prototype_kd(protos, teacher, present).item() == pytest.approx(ours.item(), rel=1e-5)


def _proto_case():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(2, 2, 3, 4, 4, generator=g) for _ in range(2)]
    t = [torch.randn(2, 2, 3, 4, 4, generator=g) for _ in range(2)]
    label = torch.randint(0, 3, (2, 8, 8), generator=g)
    return s, t, label


def _authors_proto(s, t, label, pairs_per_stage):
    """RobustSeg/UMMSS@de81cfd:mmkd/PCUMD.py:8-46: per image, stage and pair, KLDiv 'mean' of the
    per-image prototypes; the sum / B."""
    from rmmss_core.losses import image_prototypes
    total = 0.0
    for pairs, st, tt in zip(pairs_per_stage, s, t, strict=True):
        for a, b in pairs:
            for i in range(2):
                ps, _ = image_prototypes(st[i:i + 1, a], label[i:i + 1], 3)
                pt, _ = image_prototypes(tt[i:i + 1, b], label[i:i + 1], 3)
                total += nn.KLDivLoss(reduction="mean")(torch.log_softmax(ps, 1), torch.softmax(pt, 1)).item()
    return total / 2                                          # / B


def test_proto_default_pairs_each_modality_with_the_teachers_same_one():
    """The main script's mmkd/PCUMD.py:22-26 pairs student slot k (modality index[k]) with the
    teacher's slot index[k]: the same sensor, no random draw."""
    from rmmss_core.train.recipes.rmmss_hpdm import proto_loss
    s, t, label = _proto_case()
    mask = torch.tensor([[False, True], [False, True]])       # the student has modality 1
    full = torch.ones(2, 2, dtype=torch.bool)
    want = _authors_proto(s, t, label, [[(1, 1)], [(1, 1)]])
    for seed in range(4):                                     # deterministic: the generator plays no part
        got = proto_loss(s, t, mask, full, label, 3, generator=torch.Generator().manual_seed(seed))
        assert got.item() == pytest.approx(want, rel=1e-5)
    both = torch.ones(2, 2, dtype=torch.bool)
    assert proto_loss(s, t, both, full, label, 3).item() == pytest.approx(
        _authors_proto(s, t, label, [[(0, 0), (1, 1)]] * 2), rel=1e-5)


def test_proto_random_pairing_option_draws_a_student_slot_per_teacher_slot():
    """mmkd/PCUMD_zero_padding_random.py:19-24: for every teacher slot k a student slot at random."""
    from rmmss_core.losses import random_modality_pairs
    from rmmss_core.train.recipes.rmmss_hpdm import proto_loss
    s, t, label = _proto_case()
    mask = torch.tensor([[True, False], [True, False]])       # student has modality 0, teacher both
    full = torch.ones(2, 2, dtype=torch.bool)
    got = proto_loss(s, t, mask, full, label, 3, generator=torch.Generator().manual_seed(7), pairing="random")
    g = torch.Generator().manual_seed(7)
    pairs = [[(a, b) for b, a in random_modality_pairs([0, 1], [0], g)] for _ in range(2)]
    assert pairs[0] == [(0, 0), (0, 1)]                       # both teacher slots, each with a student slot
    assert got.item() == pytest.approx(_authors_proto(s, t, label, pairs), rel=1e-5)
    with pytest.raises(ValueError, match="pairing"):
        proto_loss(s, t, mask, full, label, 3, pairing="nope")


def test_proto_loss_scope_and_stage_options():
    from rmmss_core.train.recipes.rmmss_hpdm import proto_loss
    s, t, label = _proto_case()
    mask = torch.tensor([[True, False], [True, False]])
    full = torch.ones(2, 2, dtype=torch.bool)
    got = proto_loss(s, t, mask, full, label, 3).item()
    assert got == pytest.approx(_authors_proto(s, t, label, [[(0, 0)], [(0, 0)]]), rel=1e-5)
    mean = proto_loss(s, t, mask, full, label, 3, stages="mean").item()
    assert mean == pytest.approx(got * 2 / 4, rel=1e-5)      # 4 (image, stage) terms instead of sum / B
    pooled = proto_loss(s, t, mask, full, label, 3, scope="batch")
    assert torch.isfinite(pooled) and pooled.item() != pytest.approx(got)


def test_ifv_row_softmax_sums_rows_and_flat_option():
    from rmmss_core.losses import ifv_kd_loss
    # one image 2 x 2, C = 2: class 0 on the left column, class 1 on the right
    label = torch.tensor([[[0, 1], [0, 1]]])
    s = torch.tensor([[[1.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]]).reshape(1, 2, 2, 2)
    t = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]).reshape(1, 2, 2, 2)
    T = 2.0

    def sim(f):
        flat = f.flatten(2)[0]                               # C x 4 positions (row-major)
        out = []
        for p, cls in enumerate(label.flatten().tolist()):
            members = [q for q, c in enumerate(label.flatten().tolist()) if c == cls]
            centre = flat[:, members].mean(1)
            out.append(F.cosine_similarity(flat[:, p], centre, dim=0, eps=1e-8))
        return torch.stack(out).reshape(2, 2)

    ms, mt = sim(s), sim(t)
    row = sum((torch.softmax(mt[r] / T, 0) * (torch.log_softmax(mt[r] / T, 0) - torch.log_softmax(ms[r] / T, 0))).sum()
              for r in range(2)) * T * T
    assert ifv_kd_loss(s, t, label, 2).item() == pytest.approx(row.item(), rel=1e-5)
    flat = (torch.softmax(mt.flatten() / T, 0) * (torch.log_softmax(mt.flatten() / T, 0)
                                                  - torch.log_softmax(ms.flatten() / T, 0))).sum() * T * T
    assert ifv_kd_loss(s, t, label, 2, softmax="flat").item() == pytest.approx(flat.item(), rel=1e-5)


def test_ifv_row_keeps_ignore_pixels_with_similarity_one():
    from rmmss_core.losses import ifv_kd_loss
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(1, 3, 2, 3, generator=g), torch.randn(1, 3, 2, 3, generator=g)
    label = torch.tensor([[[0, 1, 255], [1, 0, 255]]])
    base = ifv_kd_loss(s, t, label, 2)
    s2 = s.clone()
    s2[..., 2] = 100.0                       # ignore pixels' features do not matter (cos fixed at 1)
    assert ifv_kd_loss(s2, t, label, 2).item() == pytest.approx(base.item(), rel=1e-5)


def test_anymodal_dropout_per_batch_and_per_sample():
    from rmmss_core.train.recipes.common import anymodal_mask
    torch.manual_seed(0)
    full = torch.ones(6, 4, dtype=torch.bool)
    for _ in range(20):
        m = anymodal_mask(full, "batch")
        assert (m == m[0]).all() and m[0].any()              # one subset for the whole batch
    seen = set()
    for _ in range(400):
        m = anymodal_mask(full, "sample")
        seen |= {tuple(r.tolist()) for r in m}
    assert len(seen) == 15                                    # every non-empty subset per sample


@pytest.mark.parametrize("per", ["batch", "sample"])
def test_anymodal_dropout_never_empties_a_row_that_has_a_sensor(per):
    """#15: samples that already miss sensors must keep at least one of the ones they have."""
    from rmmss_core.train.recipes.common import anymodal_mask
    torch.manual_seed(1)
    rows = torch.tensor([[True, False, False, False], [False, False, False, True], [False, True, True, False],
                         [True, True, True, True], [False, False, True, False]])
    for _ in range(300):
        m = anymodal_mask(rows, per)
        assert m.any(dim=1).all(), m
        assert not (m & ~rows).any()                          # never a sensor the frame lacks
    # per sample, a frame with two sensors sees each of its 3 subsets
    if per == "sample":
        seen = {tuple(anymodal_mask(rows, per)[2].tolist()) for _ in range(200)}
        assert seen == {(False, True, True, False), (False, True, False, False), (False, False, True, False)}


def test_emm_authors_protocol_does_not_tell_the_model():
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.spec import PreprocessSpec
    seen = []

    def model(inputs, available):
        seen.append(available.clone())
        return torch.zeros(available.shape[0], 2, 4, 4)

    batch = [{**{m: torch.ones(3, 4, 4) for m in MODALITIES}, "label": torch.zeros(4, 4, dtype=torch.long),
              "available": torch.ones(4, dtype=torch.bool)}]
    loader = torch.utils.data.DataLoader(batch, batch_size=1)
    spec = PreprocessSpec(input_size=(32, 32), class_names=("a", "b"), palette=((0, 0, 0), (1, 1, 1)))
    r_cond = [c for c in build_conditions(["emm"], tell_missing=False) if c.name == "R"]
    Evaluator(spec, r_cond).run(model, loader, progress=False)
    assert seen[-1].tolist() == [[True, True, True, True]]          # not told
    t_cond = [c for c in build_conditions(["emm_told"]) if c.name == "R"]
    Evaluator(spec, t_cond).run(model, loader, progress=False)
    assert seen[-1].tolist() == [[True, False, False, False]]       # told


def test_u2mkd_feature_kd_through_an_adapter_on_the_lidar_branch(tmp_path):
    from _recipe_helpers import SPEC, recipe_config

    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.train.config import LossConfig
    from rmmss_core.train.recipes import build_recipe
    teacher = create_model("anymodal", size="tiny", modalities=("lidar",), num_classes=SPEC.num_classes)
    path = tmp_path / "t.pt"
    save_model_checkpoint(path, teacher, SPEC)
    batch = _block_batch()
    for feature in ("lidar", "fused"):
        cfg = recipe_config("u2mkd", options={"fusion": "impute"}, teacher=str(path),
                            loss=LossConfig(u2mkd_feature=feature, dropout_per="sample"))
        torch.manual_seed(0)
        recipe = build_recipe("u2mkd", cfg, SPEC)
        loss, logs = recipe(batch, 0)
        loss.backward()
        assert torch.isfinite(logs["feat"]) and logs["feat"].item() > 0
        if feature == "lidar":
            assert recipe.adapter[0].weight.grad is not None and recipe.adapter[0].weight.grad.abs().sum() > 0
        else:
            assert not hasattr(recipe, "adapter")


def test_hpdm_student_missing_inputs_dropped_by_default_zero_padded_as_option(tmp_path):
    import yaml
    from _recipe_helpers import SPEC, recipe_config

    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.train.recipes import build_recipe
    from rmmss_core.train.recipes.distill import DistillRecipe
    from rmmss_core.train.recipes.rmmss_hpdm import HPDMRecipe
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "config" / "train" / "rmmss_hpdm.yaml").read_text())
    assert raw["model"]["options"]["missing"] == "drop"          # the authors' select model
    assert issubclass(HPDMRecipe, DistillRecipe)
    teacher = create_model("anymodal", size="tiny", num_classes=SPEC.num_classes)
    path = tmp_path / "t.pt"
    save_model_checkpoint(path, teacher, SPEC)
    batch = _block_batch()
    losses = {}
    for missing in ("drop", "zero"):
        cfg = recipe_config("rmmss-hpdm", options={"missing": missing}, teacher=str(path))
        torch.manual_seed(0)
        recipe = build_recipe("rmmss-hpdm", cfg, SPEC)
        assert recipe.model.missing.kind == missing
        torch.manual_seed(3)
        loss, logs = recipe(batch, 0)
        assert torch.isfinite(loss) and set(logs) == {"ce", "kd", "proto", "ifv"}
        losses[missing] = loss.item()
    assert losses["drop"] != pytest.approx(losses["zero"])
