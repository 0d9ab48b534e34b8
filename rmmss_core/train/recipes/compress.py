"""``compress`` (beyond the papers): distil the two-model RMMSS-FSM student (``teacher=PATH`` to an
``rmmss-fsm`` checkpoint) into one compact any-modal network for deployment.

Both see the same any-modal-dropout inputs; ``L = OHEM-CE + logit_kd * KL(FSM || student)``
(per-pixel KL). The benchmark reports the accuracy kept against parameters and latency.
"""
from __future__ import annotations

from rmmss_core.losses import logit_kd_loss
from rmmss_core.train.recipes.distill import DistillRecipe, DistillStep


class CompressRecipe(DistillRecipe):
    name = "compress"
    teacher_sees = "mask"
    features = False

    def loss_terms(self, st: DistillStep):
        return {"kd": logit_kd_loss(st.student.logits.float(), st.teacher.logits.float(),
                                    self.cfg.loss.kd_temperature)}

    def weights(self):
        return {"kd": self.cfg.loss.logit_kd}
