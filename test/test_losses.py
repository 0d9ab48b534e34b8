"""Property tests of the losses on small hand-made tensors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rmmss_core.losses import (
    class_prototypes,
    cmd_loss,
    ema_decay,
    ema_update,
    feature_kd_loss,
    ifv_kd_loss,
    image_prototypes,
    imputation_loss,
    intra_class_similarity,
    logit_kd_loss,
    mad_loss,
    ohem_cross_entropy,
    prob_ohem_cross_entropy,
    prototype_kd_loss,
    pseudo_label_loss,
    random_modality_pairs,
    umd_loss,
)


def _teacher_only_grad_free(loss_fn, student, teacher, *rest, **kw):
    """Backward through the loss; the teacher must get no gradient, the student must."""
    student = student.clone().requires_grad_(True)
    teacher = teacher.clone().requires_grad_(True)
    loss = loss_fn(student, teacher, *rest, **kw)
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    return loss


# ---------------------------------------------------------------- OHEM CE
def _ohem_example():
    # K=2, 4 pixels, label 0 everywhere: p_true = 0.5, 0.5, 0.9, 0.9
    c0 = torch.tensor([0.0, 0.0, math.log(9), math.log(9)])
    logits = torch.stack([c0, torch.zeros(4)]).reshape(1, 2, 1, 4)
    return logits, torch.zeros(1, 1, 4, dtype=torch.long)


def test_ohem_keeps_only_hard_pixels():
    logits, label = _ohem_example()
    assert ohem_cross_entropy(logits, label).item() == pytest.approx(math.log(2), rel=1e-5)


def test_ohem_min_kept_takes_hardest():
    logits, label = _ohem_example()
    want = (2 * math.log(2) + 2 * math.log(10 / 9)) / 4
    got = ohem_cross_entropy(logits, label, min_kept_fraction=1.0)
    assert got.item() == pytest.approx(want, rel=1e-5)
    # 3 of 4 kept: the two hard ones and one easy one
    got3 = ohem_cross_entropy(logits, label, min_kept_fraction=0.75)
    assert got3.item() == pytest.approx((2 * math.log(2) + math.log(10 / 9)) / 3, rel=1e-5)


def test_ohem_excludes_ignore_pixels():
    logits, label = _ohem_example()
    logits = torch.cat([logits, torch.tensor([-20.0, 20.0]).reshape(1, 2, 1, 1)], dim=3)
    label = torch.cat([label, torch.full((1, 1, 1), 255)], dim=2)
    assert ohem_cross_entropy(logits, label).item() == pytest.approx(math.log(2), rel=1e-5)
    everything_ignored = torch.full_like(label, 255)
    zero = ohem_cross_entropy(logits.requires_grad_(), everything_ignored)
    assert zero.item() == 0.0
    zero.backward()


def test_ohem_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="label"):
        ohem_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, dtype=torch.long))


# ---------------------------------------------------------------- M3L's probability-threshold OHEM
# harshm121/M3L@df83f1d:src/utils/seg_opr/loss_func.py:51-81: keep p_true <= max(thresh, the
# min_kept-th smallest p_true), ties included; no mining when min_kept > valid or min_kept == 0.
def test_prob_ohem_keeps_below_threshold_like_ohem_when_enough_are_hard():
    logits, label = _ohem_example()                       # p_true = 0.5, 0.5, 0.9, 0.9
    assert prob_ohem_cross_entropy(logits, label, 0.7, min_kept=1).item() == pytest.approx(math.log(2), rel=1e-5)
    assert prob_ohem_cross_entropy(logits, label, 0.7, min_kept=2).item() == pytest.approx(math.log(2), rel=1e-5)


def test_prob_ohem_min_kept_raises_the_threshold_and_keeps_ties():
    logits, label = _ohem_example()
    everything = (2 * math.log(2) + 2 * math.log(10 / 9)) / 4
    # the 3rd smallest p is 0.9 > 0.7: the threshold becomes 0.9 and both 0.9 pixels are kept
    # (ohem_cross_entropy keeps exactly 3 here)
    got = prob_ohem_cross_entropy(logits, label, 0.7, min_kept=3)
    assert got.item() == pytest.approx(everything, rel=1e-5)
    assert ohem_cross_entropy(logits, label, 0.7, min_kept_fraction=0.75).item() != pytest.approx(everything)


def test_prob_ohem_no_mining_when_min_kept_exceeds_valid_or_is_zero():
    logits, label = _ohem_example()
    everything = (2 * math.log(2) + 2 * math.log(10 / 9)) / 4
    assert prob_ohem_cross_entropy(logits, label, 0.7, min_kept=5).item() == pytest.approx(everything, rel=1e-5)
    assert prob_ohem_cross_entropy(logits, label, 0.7, min_kept=0).item() == pytest.approx(everything, rel=1e-5)


def test_prob_ohem_ignore_pixels_grad_and_errors():
    logits, label = _ohem_example()
    logits = torch.cat([logits, torch.tensor([-20.0, 20.0]).reshape(1, 2, 1, 1)], dim=3)
    label = torch.cat([label, torch.full((1, 1, 1), 255)], dim=2)
    # 4 valid pixels, min_kept 5 > 4: plain CE over the valid ones, the ignore pixel left out
    everything = (2 * math.log(2) + 2 * math.log(10 / 9)) / 4
    x = logits.clone().requires_grad_(True)
    got = prob_ohem_cross_entropy(x, label, 0.7, min_kept=5)
    assert got.item() == pytest.approx(everything, rel=1e-5)
    got.backward()
    assert x.grad[..., 4].abs().sum() == 0 and x.grad[..., :4].abs().sum() > 0
    zero = prob_ohem_cross_entropy(logits.requires_grad_(), torch.full_like(label, 255), 0.7, 3)
    assert zero.item() == 0.0
    with pytest.raises(ValueError, match="min_kept"):
        prob_ohem_cross_entropy(logits, label, 0.7, min_kept=-1)


# ---------------------------------------------------------------- logit KD, L_mad
def test_mad_known_value_and_zero():
    t = torch.zeros(1, 2, 1, 1)
    s = torch.tensor([math.log(3), 0.0]).reshape(1, 2, 1, 1)
    # KLDivLoss('mean') as the authors: the per-pixel KL 0.5 ln(4/3) divided by K = 2
    assert mad_loss(s, t).item() == pytest.approx(0.25 * math.log(4 / 3), rel=1e-5)
    assert mad_loss(s, t, reduction="pixel").item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)
    x = torch.randn(2, 5, 3, 4)
    assert mad_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert mad_loss(torch.randn(2, 5, 3, 4), x).item() > 0
    _teacher_only_grad_free(mad_loss, torch.randn(2, 5, 3, 4), x)


def test_logit_kd_temperature_scaling():
    t = torch.zeros(1, 2, 1, 1)
    s = torch.tensor([2 * math.log(3), 0.0]).reshape(1, 2, 1, 1)
    # s / T = (ln 3, 0) -> KL = 0.5 ln(4/3), times T^2 = 4
    assert logit_kd_loss(s, t, temperature=2.0).item() == pytest.approx(2 * math.log(4 / 3), rel=1e-5)
    _teacher_only_grad_free(logit_kd_loss, torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2), temperature=4.0)


def test_logit_kd_valid_mask_excludes_pixels():
    s, t = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    valid = torch.tensor([[[True, False], [False, False]]])
    s2 = s.clone()
    s2[..., 1:, :] += 10
    s2[..., 0, 1] -= 5
    assert logit_kd_loss(s, t, valid=valid).item() == pytest.approx(logit_kd_loss(s2, t, valid=valid).item())
    assert logit_kd_loss(s, t, valid=valid).item() == pytest.approx(
        logit_kd_loss(s[..., :1, :1], t[..., :1, :1]).item(), rel=1e-6)


def test_feature_kd_loss():
    s, t = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    assert feature_kd_loss(t.clone(), t).item() == 0.0
    assert feature_kd_loss(s, t).item() == pytest.approx(((s - t) ** 2).mean().item(), rel=1e-6)
    _teacher_only_grad_free(feature_kd_loss, s, t)
    mask = torch.tensor([True, False, False])
    s2 = s.clone()
    s2[1:] = 100
    assert feature_kd_loss(s2, t, mask).item() == pytest.approx(feature_kd_loss(s[:1], t[:1]).item())


# ---------------------------------------------------------------- L_umd
def test_umd_known_value_zero_and_masking():
    t = torch.zeros(1, 2, 2, 1, 1)                     # B=1, M=2, C=2
    s = torch.zeros(1, 2, 2, 1, 1)
    s[0, 0, 0] = math.log(3)
    both = torch.tensor([[True, True]])
    # our channel-softmax reading: modality 0: 0.5 ln(4/3), modality 1: 0 -> mean over the 2 pairs
    opt = {"axis": "channel", "stages": "mean"}
    assert umd_loss(s, t, both, **opt).item() == pytest.approx(0.25 * math.log(4 / 3), rel=1e-5)
    only0 = torch.tensor([[True, False]])
    assert umd_loss(s, t, only0, **opt).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)
    assert umd_loss(s, t, both, modalities=[1], **opt).item() == pytest.approx(0.0, abs=1e-7)
    # the authors' H-axis softmax: with H = 1 every distribution is a point mass, so 0
    assert umd_loss(s, t, both).item() == pytest.approx(0.0, abs=1e-7)


def test_umd_unavailable_modality_contributes_nothing_and_teacher_detached():
    stages_t = [torch.randn(2, 4, 8, 4, 4), torch.randn(2, 4, 16, 2, 2)]
    stages_s = [x + 0.3 * torch.randn_like(x) for x in stages_t]
    avail = torch.tensor([[True, False, True, False], [False, True, False, False]])
    base = umd_loss(stages_s, stages_t, avail)
    assert base.item() > 0
    assert umd_loss(stages_t, [x.clone() for x in stages_t], avail).item() == pytest.approx(0, abs=1e-6)
    moved = [x.clone() for x in stages_s]
    moved[0][0, 1] += 50           # unavailable to the student
    moved[1][1, 3] -= 7
    assert umd_loss(moved, stages_t, avail).item() == pytest.approx(base.item(), rel=1e-6)
    s = [x.clone().requires_grad_() for x in stages_s]
    t = [x.clone().requires_grad_() for x in stages_t]
    umd_loss(s, t, avail).backward()
    assert all(x.grad is None for x in t)
    assert s[0].grad[0, 1].abs().sum() == 0 and s[0].grad[0, 0].abs().sum() > 0
    none = torch.zeros(2, 4, dtype=torch.bool)
    assert umd_loss(stages_s, stages_t, none).item() == 0.0


# ---------------------------------------------------------------- L_cmd
def test_cmd_known_value():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 2, 1, 1)   # orthogonal: sim 0
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).reshape(1, 2, 2, 1, 1)   # parallel: sim 1
    assert cmd_loss(s, t, torch.tensor([[True, True]]), per_channel=False).item() == pytest.approx(1.0)
    # per channel (the authors): student 0 and 0 -> 0; teacher 1 and 0 (a zero channel) -> 0.5
    assert cmd_loss(s, t, torch.tensor([[True, True]])).item() == pytest.approx(0.25)
    # one available modality: nothing to compare
    assert cmd_loss(s, t, torch.tensor([[True, False]])).item() == 0.0


def test_cmd_zero_scaling_invariance_and_masking():
    t = torch.randn(2, 4, 6, 3, 3)
    s = t + torch.randn_like(t)
    avail = torch.tensor([[True, True, True, False], [True, False, True, False]])
    assert cmd_loss(t.clone(), t, avail).item() == pytest.approx(0.0, abs=1e-6)
    base = cmd_loss(s, t, avail)
    assert base.item() > 0
    scale = torch.tensor([0.1, 3.0, 7.0, 0.5]).reshape(1, 4, 1, 1, 1)
    assert cmd_loss(s * scale, t, avail).item() == pytest.approx(base.item(), rel=1e-4)
    assert cmd_loss(s, t / scale, avail).item() == pytest.approx(base.item(), rel=1e-4)
    moved = s.clone()
    moved[:, 3] = torch.randn(2, 6, 3, 3)     # modality 3 unavailable everywhere
    moved[1, 1] = 0.0                          # modality 1 unavailable for sample 1
    assert cmd_loss(moved, t, avail).item() == pytest.approx(base.item(), rel=1e-5)
    _teacher_only_grad_free(cmd_loss, s, t, avail)


# ---------------------------------------------------------------- HPDM prototypes
def test_class_prototypes_known_values_single_division():
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    label = torch.tensor([[[0, 0], [1, 255]]])
    protos, present = class_prototypes(feats, label, num_classes=3)
    assert protos[:, 0].tolist() == pytest.approx([1.5, 3.0, 0.0])
    assert present.tolist() == [True, True, False]


def test_class_prototypes_resize_order_and_sample_mask():
    feats = torch.randn(2, 5, 4, 4)
    label = torch.randint(0, 3, (2, 8, 8))
    protos, present = class_prototypes(feats, label, 3)
    small = label[:, ::2, ::2]                      # nearest downsampling picks these pixels
    protos2, _ = class_prototypes(feats, small, 3)
    assert torch.allclose(protos, protos2)
    perm = torch.randperm(16)
    f_perm = feats.flatten(2)[:, :, perm].reshape(2, 5, 4, 4)
    l_perm = small.flatten(1)[:, perm].reshape(2, 4, 4)
    assert torch.allclose(class_prototypes(f_perm, l_perm, 3)[0], protos, atol=1e-6)
    only_first, _ = class_prototypes(feats, small, 3, sample_mask=torch.tensor([True, False]))
    assert torch.allclose(only_first, class_prototypes(feats[:1], small[:1], 3)[0])
    for k in range(3):
        if present[k]:
            mask = (small == k)
            want = feats.permute(0, 2, 3, 1)[mask].mean(0)
            assert torch.allclose(protos[k], want, atol=1e-6)


def test_class_centres_follow_the_input_dtype():
    """float64 features give float64 prototypes and IFV centres, equal to the float64 formula
    (they were computed in float32: about 1e-8 relative off)."""
    g = torch.Generator().manual_seed(0)
    feats = 1.0 + 1e-9 * torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) + \
        torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4) / 3.0
    label = torch.randint(0, 3, (2, 4, 4), generator=g)
    protos, present = class_prototypes(feats, label, 3)
    assert protos.dtype == torch.float64
    per_image, _ = image_prototypes(feats, label, 3)
    assert per_image.dtype == torch.float64
    flat = feats.permute(0, 2, 3, 1)
    for k in range(3):
        if present[k]:
            want = flat[label == k].mean(0)
            assert torch.allclose(protos[k], want, rtol=1e-14, atol=0)
        for i in range(2):
            if (label[i] == k).any():
                assert torch.allclose(per_image[i, k], flat[i][label[i] == k].mean(0), rtol=1e-14, atol=0)
    sim, valid = intra_class_similarity(feats, label, 3)
    assert sim.dtype == torch.float64
    centre = flat[0][label[0] == label[0, 0, 0]].mean(0)
    want = torch.nn.functional.cosine_similarity(flat[0, 0, 0], centre, dim=0)
    assert abs(sim[0, 0].item() - want.item()) < 1e-14
    # half-precision inputs still work (sums in float32)
    protos16, _ = class_prototypes(feats.to(torch.bfloat16), label, 3)
    assert protos16.dtype == torch.float32


def test_prototype_kd_known_value_and_properties():
    s = torch.zeros(2, 1)
    t = torch.tensor([[math.log(3)], [0.0]])
    present = torch.tensor([True, True])
    want = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert prototype_kd_loss(s, t, present).item() == pytest.approx(want, rel=1e-5)
    p = torch.randn(5, 8)
    present = torch.tensor([True, True, False, True, False])
    assert prototype_kd_loss(p.clone(), p, present).item() == pytest.approx(0.0, abs=1e-6)
    q = torch.randn(5, 8)
    base = prototype_kd_loss(q, p, present)
    assert base.item() > 0
    q2 = q.clone()
    q2[[2, 4]] = 100.0                          # absent classes do not count
    assert prototype_kd_loss(q2, p, present).item() == pytest.approx(base.item(), rel=1e-6)
    _teacher_only_grad_free(prototype_kd_loss, q, p, present)
    assert prototype_kd_loss(q, p, torch.tensor([True, False, False, False, False])).item() == 0.0


def test_random_modality_pairs_seeded():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = random_modality_pairs([0, 2], [0, 1, 2, 3], g1)
    assert a == random_modality_pairs([0, 2], [0, 1, 2, 3], g2)
    assert [x for x, _ in a] == [0, 2] and all(b in range(4) for _, b in a)


# ---------------------------------------------------------------- HPDM IFV
def test_intra_class_similarity_known_value():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)   # pixel0 (1,0), pixel1 (0,1)
    label = torch.tensor([[[0, 0]]])
    sim, valid = intra_class_similarity(feats, label, 2)
    # centre (0.5, 0.5): cosine 1/sqrt(2) for both pixels
    assert sim[0].tolist() == pytest.approx([1 / math.sqrt(2)] * 2, rel=1e-5)
    assert valid.all()


def test_ifv_zero_positive_ignore_and_teacher_width():
    label = torch.randint(0, 3, (2, 8, 8))
    label[0, :2] = 255
    t = torch.randn(2, 6, 8, 8)
    assert ifv_kd_loss(t.clone(), t, label, 3).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 6, 8, 8)
    base = ifv_kd_loss(s, t, label, 3, softmax="flat")
    assert base.item() > 0
    s2 = s.clone()
    s2[0, :, :2] = 1000 * torch.randn(6, 2, 8)    # ignore pixels changed: no effect
    assert ifv_kd_loss(s2, t, label, 3, softmax="flat").item() == pytest.approx(base.item(), rel=1e-5)
    assert ifv_kd_loss(s * 5.0, t, label, 3, softmax="flat").item() == pytest.approx(base.item(), rel=1e-4)
    wide_teacher = torch.cat([t, t], dim=1)        # same cosine maps, twice the channels
    assert ifv_kd_loss(s, wide_teacher, label, 3, softmax="flat").item() == pytest.approx(base.item(), rel=1e-4)
    _teacher_only_grad_free(ifv_kd_loss, s, t, label, 3, softmax="flat")
    _teacher_only_grad_free(ifv_kd_loss, s, t, label, 3)
    assert ifv_kd_loss(t.clone(), t, label, 3).item() == pytest.approx(0.0, abs=1e-6)  # row (authors)
    assert ifv_kd_loss(s, t, torch.full_like(label, 255), 3).item() == 0.0


def test_ifv_temperature_factor():
    label = torch.randint(0, 2, (1, 4, 4))
    s, t = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    sim_s, _ = intra_class_similarity(s, label, 2)
    sim_t, _ = intra_class_similarity(t, label, 2)
    p_t = torch.softmax(sim_t / 2, 1)
    want = 4 * (p_t * (torch.log_softmax(sim_t / 2, 1) - torch.log_softmax(sim_s / 2, 1))).sum()
    assert ifv_kd_loss(s, t, label, 2, softmax="flat").item() == pytest.approx(want.item(), rel=1e-5)


# ---------------------------------------------------------------- M3L
def test_pseudo_label_loss():
    t = torch.randn(2, 4, 3, 3)
    s = torch.randn(2, 4, 3, 3)
    want = nn.functional.cross_entropy(s, t.argmax(1))
    assert pseudo_label_loss(s, t).item() == pytest.approx(want.item(), rel=1e-6)
    _teacher_only_grad_free(pseudo_label_loss, s, t)
    valid = torch.zeros(2, 3, 3, dtype=torch.bool)
    valid[0, 0, 0] = True
    want1 = nn.functional.cross_entropy(s[:1, :, :1, :1], t[:1, :, :1, :1].argmax(1))
    assert pseudo_label_loss(s, t, valid).item() == pytest.approx(want1.item(), rel=1e-6)
    confident = nn.functional.one_hot(t.argmax(1), 4).permute(0, 3, 1, 2) * 100.0
    assert pseudo_label_loss(confident, t).item() < 1e-3


def test_ema_decay_and_update():
    assert ema_decay(0) == 0.0 and ema_decay(1) == 0.5 and ema_decay(10_000) == 0.99
    teacher = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    student = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    student.train()(torch.randn(8, 3))            # moves running stats and num_batches_tracked
    assert ema_update(teacher, student, step=0) == 0.0
    for a, b in zip(teacher.state_dict().values(), student.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    assert ema_update(teacher, student, step=1000) == 0.99
    w = teacher[0].weight
    assert torch.allclose(w, 0.99 * before["0.weight"] + 0.01 * student[0].weight)
    with pytest.raises(ValueError, match="different"):
        ema_update(teacher, nn.Linear(3, 2), 1)


# ---------------------------------------------------------------- U2MKD
def test_imputation_loss_masks_missing_modalities():
    real = torch.randn(2, 4, 3, 2, 2)
    imputed = real.clone()
    avail = torch.tensor([[True, False, False, False], [False, True, True, False]])
    imputed[0, 1] += 5.0                           # no real target there: ignored
    assert imputation_loss(imputed, real, avail).item() == 0.0
    imputed[0, 0] += 2.0                           # 12 elements off by 2 out of 3 * 12 selected
    assert imputation_loss(imputed, real, avail).item() == pytest.approx(4.0 / 3, rel=1e-6)
    two_stages = imputation_loss([imputed, imputed], [real, real], avail)
    assert two_stages.item() == pytest.approx(8.0 / 3, rel=1e-6)
    _teacher_only_grad_free(imputation_loss, imputed, real, avail)
    assert imputation_loss(imputed, real, torch.zeros(2, 4, dtype=torch.bool)).item() == 0.0
