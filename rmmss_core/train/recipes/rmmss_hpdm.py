"""``rmmss-hpdm``: RMMSS stage 1, the robust model by hybrid prototype distillation (HPDM).

Any-modal dropout for the student; frozen full-modality teacher (``teacher=PATH``).
``L = OHEM-CE + 50 KL(teacher logits || student logits) + 100 L_proto + 12 L_ifv``:
- L_proto, per stage: for every modality A the student has, its class prototypes are matched to
  the teacher's prototypes of a randomly paired modality B (``random_modality_pairs``).
- L_ifv, per stage on the fused features: each pixel's similarity to its class centre, KL
  between spatial softmaxes at T = 2 (times T^2).
"""
from __future__ import annotations

import torch

from rmmss_core.losses import (
    class_prototypes,
    ifv_kd_loss,
    logit_kd_loss,
    prototype_kd_loss,
    random_modality_pairs,
)
from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, build_student, load_frozen, supervised


class HPDMRecipe(Recipe):
    name = "rmmss-hpdm"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)
        self.teacher = load_frozen(cfg.teacher, "teacher", spec)

    def proto_loss(self, s_feats, t_feats, mask, t_mask, label):
        """Mean over stages and modality pairs of L_proto. Features: 4 x ``B x M x C x h x w``."""
        k = self.spec.num_classes
        have_s = [i for i in range(mask.shape[1]) if mask[:, i].any()]
        have_t = [i for i in range(t_mask.shape[1]) if t_mask[:, i].any()]
        losses = []
        for s, t in zip(s_feats, t_feats, strict=True):
            for a, b in random_modality_pairs(have_s, have_t):
                ps, present_s = class_prototypes(s[:, a].float(), label, k, sample_mask=mask[:, a])
                pt, present_t = class_prototypes(t[:, b].float(), label, k, sample_mask=t_mask[:, b])
                losses.append(prototype_kd_loss(ps, pt, present_s & present_t))
        return torch.stack(losses).mean()

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        with torch.no_grad():
            t = self.teacher(inputs, available, return_features=True)
        mask = anymodal_mask(available)
        s = self.model(inputs, mask, return_features=True)
        w, k = self.cfg.loss, self.spec.num_classes
        terms = {
            "ce": supervised(self.cfg, s.logits, label),
            "kd": logit_kd_loss(s.logits.float(), t.logits.float(), w.kd_temperature),
            "proto": self.proto_loss(s.features.per_modality, t.features.per_modality, mask, available, label),
            "ifv": torch.stack([ifv_kd_loss(fs.float(), ft.float(), label, k, w.ifv_temperature)
                                for fs, ft in zip(s.features.fused, t.features.fused, strict=True)]).mean(),
        }
        loss = terms["ce"] + w.logit_kd * terms["kd"] + w.proto * terms["proto"] + w.ifv * terms["ifv"]
        return loss, {k_: v.detach() for k_, v in terms.items()}

