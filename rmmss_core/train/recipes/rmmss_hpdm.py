"""``rmmss-hpdm``: RMMSS stage 1, the robust model by hybrid prototype distillation (HPDM).

Any-modal dropout for the student; frozen full-modality teacher (``teacher=PATH``).
``L = OHEM-CE + 50 KL(teacher logits || student logits) + 100 L_proto + 12 L_ifv``, as the
authors' training script combines them (RobustSeg/RobustSeg@ea9add7:
tools/train_deliver_mad50_proto_cur_reg.py:162-170):

- logit KD: ``KLDivLoss(reduction='mean')`` over ``B*K*H*W`` (``loss.kl_reduction``).
- L_proto, per stage and modality slot: the student's class prototypes of a modality A are
  matched to the teacher's prototypes of a paired modality B. Pairing (``loss.proto_pairing``):
  ``same`` (default): B = A, as the main script's ``mmkd.PCUMD`` does (RobustSeg/UMMSS@de81cfd:
  mmkd/PCUMD.py:22-26 pairs the student's k-th selected modality with the teacher's slot
  ``index[k]``, the same sensor; imported by RobustSeg/RobustSeg@5898146:
  tools/train_deliver_mad50_proto_cur_reg.py:32,162-170); ``random``: for every teacher slot a student
  slot drawn at random, re-drawn per stage and slot, as the zero-padding variant does
  (mmkd/PCUMD_zero_padding_random.py:19-24, used by
  tools/train_deliver_mad50_proto_cur_reg_zero_padding_random.py:32). Authors' default:
  prototypes per image with all K rows (absent classes as zero rows), KLDiv 'mean' over ``K*C``,
  summed over images, stages and slots, divided by B (mmkd/PCUMD.py:8-46). Options:
  ``loss.proto_scope=batch`` (prototypes pooled over the batch), ``loss.proto_absent=drop``
  (softmax over the present classes only), ``loss.proto_stages=mean``.
- L_ifv, per stage on the fused features (``losses.ifv_kd_loss``; ``loss.ifv_softmax``,
  ``loss.ifv_stages``).
"""
from __future__ import annotations

import torch

from rmmss_core.losses import (
    class_prototypes,
    ifv_kd_loss,
    image_prototype_kd,
    image_prototypes,
    logit_kd_loss,
    prototype_kd_loss,
    random_modality_pairs,
)
from rmmss_core.losses._common import zero_like_graph
from rmmss_core.train.recipes.distill import DistillRecipe, DistillStep

PROTO_PAIRING = ("same", "random")


def proto_loss(s_feats, t_feats, mask, t_mask, label, num_classes: int, scope: str = "image",
               absent: str = "zero", stages: str = "sum", generator=None,
               pairing: str = "same") -> torch.Tensor:
    """L_proto over stages and modality slots. Features: 4 x ``B x M x C x h x w``; masks ``B x M``.

    ``pairing="same"``: each modality the student has against the teacher's same modality (the
    authors' main script); ``"random"``: for each modality the teacher has, one of the student's
    drawn uniformly per stage (``generator``), the zero-padding variant's rule.

    ``scope="image"``: per image and slot ``image_prototype_kd`` (``absent="zero"``: all K rows,
    'mean' KL; ``"drop"``: present classes only); ``stages="sum"`` sums over images, stages and
    slots and divides by B (the authors), ``"mean"`` averages over the (image, stage, slot) terms.
    ``scope="batch"``: prototypes pooled over the samples that have the modality, one term per
    stage and slot (``prototype_kd_loss``, present classes only), summed or averaged likewise.
    """
    have_s = [i for i in range(mask.shape[1]) if mask[:, i].any()]
    have_t = [i for i in range(t_mask.shape[1]) if t_mask[:, i].any()]
    batch = mask.shape[0]
    terms: list[torch.Tensor] = []
    count = 0
    if pairing not in PROTO_PAIRING:
        raise ValueError(f"L_proto pairing must be one of {PROTO_PAIRING}, got {pairing!r}")
    for s, t in zip(s_feats, t_feats, strict=True):
        if pairing == "same":
            pairs = [(a, a) for a in have_s if a in have_t]
        else:
            pairs = [(a, b) for b, a in random_modality_pairs(have_t, have_s, generator)] if have_s else []
        for a, b in pairs:
            rows = mask[:, a] & t_mask[:, b]
            if not rows.any():
                continue
            if scope == "image":
                ps, present_s = image_prototypes(s[rows, a].float(), label[rows], num_classes)
                pt, present_t = image_prototypes(t[rows, b].float(), label[rows], num_classes)
                kl = image_prototype_kd(ps, pt, None if absent == "zero" else present_s & present_t)
                terms.append(kl.sum())
                count += int(rows.sum())
            else:
                ps, present_s = class_prototypes(s[:, a].float(), label, num_classes, sample_mask=rows)
                pt, present_t = class_prototypes(t[:, b].float(), label, num_classes, sample_mask=rows)
                terms.append(prototype_kd_loss(ps, pt, present_s & present_t))
                count += 1
    if not terms:
        return zero_like_graph(s_feats[0])
    total = torch.stack(terms).sum()
    if stages == "sum":
        return total / batch if scope == "image" else total
    return total / count


class HPDMRecipe(DistillRecipe):
    name = "rmmss-hpdm"

    def loss_terms(self, st: DistillStep):
        w, k = self.cfg.loss, self.spec.num_classes
        ifv = torch.stack([ifv_kd_loss(fs.float(), ft.float(), st.label, k, w.ifv_temperature, softmax=w.ifv_softmax)
                           for fs, ft in zip(st.student.features.fused, st.teacher.features.fused, strict=True)])
        return {
            "kd": logit_kd_loss(st.student.logits.float(), st.teacher.logits.float(), w.kd_temperature,
                                reduction=w.kl_reduction),
            "proto": proto_loss(st.student.features.per_modality, st.teacher.features.per_modality, st.mask,
                                st.available, st.label, k, w.proto_scope, w.proto_absent, w.proto_stages,
                                pairing=w.proto_pairing),
            "ifv": ifv.sum() if w.ifv_stages == "sum" else ifv.mean(),
        }

    def weights(self):
        w = self.cfg.loss
        return {"kd": w.logit_kd, "proto": w.proto, "ifv": w.ifv}
