"""``u2mkd``: U2MKD (Sun et al. 2024) in our 2-D setting.

A frozen LiDAR-only teacher (``teacher=PATH``, trained by ``teacher`` with
``model.options.modalities=[lidar]``) distils into a multi-modal student with feature imputation
(``fusion: impute``), trained with any-modal dropout:
``L = OHEM-CE + uni_kd * KL(teacher || student) + feature_kd * MSE(bottleneck) + impute * L_imp``.

- KL on logits: ``KLDivLoss(reduction='batchmean')`` over points in U2MKD, i.e. the per-point KL
  averaged (our ``reduction="pixel"``; isunLt/U2MKD@d8dfa69:core/builder.py:652-653,
  core/nusc_trainers.py:334).
- Bottleneck feature KD (``loss.u2mkd_feature``). ``"lidar"`` (the authors): the student's
  **LiDAR-branch** last-stage features pass through a trainable adapter (Linear -> BatchNorm ->
  ReLU, here 1x1 conv -> BatchNorm2d -> ReLU) and are tied by MSE to the teacher's last-stage
  features, where the student sees the LiDAR (core/models/nuscenes/
  spvcnn_swiftnet18_spformer_tsd_full.py:440-441,576-580; core/nusc_trainers.py:337-345); the
  adapter is a training-only part of the recipe, not of the saved student. ``"fused"`` (our
  former reading): MSE between the student's fused bottleneck and the teacher's, no adapter.
"""
from __future__ import annotations

import torch
from torch import nn

from rmmss_core.losses import feature_kd_loss, imputation_loss, logit_kd_loss
from rmmss_core.losses._common import zero_like_graph
from rmmss_core.modalities import MODALITIES
from rmmss_core.train.recipes.distill import DistillRecipe, DistillStep


class U2MKDRecipe(DistillRecipe):
    name = "u2mkd"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        c_s, c_t = self.model.encoder.out_channels[-1], self.teacher.encoder.out_channels[-1]
        if cfg.loss.u2mkd_feature == "fused" and c_s != c_t:
            raise ValueError(f"u2mkd: teacher and student bottlenecks differ in width ({c_t} vs {c_s})")
        if cfg.loss.u2mkd_feature == "lidar" and "lidar" not in self.model.modalities:
            raise ValueError("u2mkd with loss.u2mkd_feature=lidar needs a student that encodes the lidar")
        if cfg.loss.u2mkd_feature == "lidar":
            self.adapter = nn.Sequential(nn.Conv2d(c_s, c_t, 1), nn.BatchNorm2d(c_t), nn.ReLU(inplace=True))

    def feature_term(self, st: DistillStep) -> torch.Tensor:
        t_feat = st.teacher.features.fused[-1].float()
        if self.cfg.loss.u2mkd_feature == "fused":
            return feature_kd_loss(st.student.features.fused[-1].float(), t_feat)
        lidar = self.model.modalities.index("lidar")
        sees = st.mask[:, MODALITIES.index("lidar")]
        if not sees.any():
            return zero_like_graph(st.student.logits)
        adapted = self.adapter(st.student.features.per_modality[-1][sees, lidar].float())
        return feature_kd_loss(adapted, t_feat[sees])

    def loss_terms(self, st: DistillStep):
        w, s = self.cfg.loss, st.student
        terms = {"kd": logit_kd_loss(s.logits.float(), st.teacher.logits.float(), w.kd_temperature),
                 "feat": self.feature_term(st)}
        if s.features.imputed is not None:
            real = [f.detach() for f in s.features.per_modality]
            terms["impute"] = imputation_loss(s.features.imputed, real, s.features.impute_valid)
        else:
            terms["impute"] = torch.zeros((), device=s.logits.device)
        return terms

    def weights(self):
        w = self.cfg.loss
        return {"kd": w.uni_kd, "feat": w.feature_kd, "impute": w.impute}
