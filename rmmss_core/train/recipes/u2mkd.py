"""``u2mkd``: U2MKD (Sun et al. 2024) in our 2-D setting.

A frozen LiDAR-only teacher (``teacher=PATH``, trained by ``teacher`` with
``model.options.modalities=[lidar]``) distils into a multi-modal student with feature imputation
(``fusion: impute``), trained with any-modal dropout:
``L = OHEM-CE + uni_kd * KL(teacher || student) + feature_kd * MSE(bottleneck) + impute * L_imp``.
"""
from __future__ import annotations

import torch

from rmmss_core.losses import feature_kd_loss, imputation_loss, logit_kd_loss
from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, build_student, load_frozen, supervised


class U2MKDRecipe(Recipe):
    name = "u2mkd"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)
        self.teacher = load_frozen(cfg.teacher, "teacher", spec)
        if self.model.encoder.out_channels[-1] != self.teacher.encoder.out_channels[-1]:
            raise ValueError("u2mkd: teacher and student bottlenecks differ in width "
                             f"({self.teacher.encoder.out_channels[-1]} vs {self.model.encoder.out_channels[-1]})")

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        with torch.no_grad():
            t = self.teacher(inputs, available, return_features=True)
        mask = anymodal_mask(available)
        s = self.model(inputs, mask, return_features=True)
        w = self.cfg.loss
        terms = {"ce": supervised(self.cfg, s.logits, label),
                 "kd": logit_kd_loss(s.logits.float(), t.logits.float(), w.kd_temperature),
                 "feat": feature_kd_loss(s.features.fused[-1].float(), t.features.fused[-1].float())}
        if s.features.imputed is not None:
            real = [f.detach() for f in s.features.per_modality]
            terms["impute"] = imputation_loss(s.features.imputed, real, s.features.impute_valid)
        else:
            terms["impute"] = torch.zeros((), device=s.logits.device)
        loss = terms["ce"] + w.uni_kd * terms["kd"] + w.feature_kd * terms["feat"] + w.impute * terms["impute"]
        return loss, {k: v.detach() for k, v in terms.items()}

