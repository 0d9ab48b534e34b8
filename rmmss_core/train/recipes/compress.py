"""``compress`` (beyond the papers): distil the two-model RMMSS-FSM student (``teacher=PATH`` to an
``rmmss-fsm`` checkpoint) into one compact any-modal network for deployment.

Both see the same any-modal-dropout inputs; ``L = OHEM-CE + logit_kd * KL(FSM || student)``.
The benchmark reports the accuracy kept against parameters and latency.
"""
from __future__ import annotations

import torch

from rmmss_core.losses import logit_kd_loss
from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, build_student, load_frozen, supervised


class CompressRecipe(Recipe):
    name = "compress"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)
        self.teacher = load_frozen(cfg.teacher, "teacher", spec)

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        mask = anymodal_mask(available)
        with torch.no_grad():
            t_logits = self.teacher(inputs, mask).logits
        logits = self.model(inputs, mask).logits
        terms = {"ce": supervised(self.cfg, logits, label),
                 "kd": logit_kd_loss(logits.float(), t_logits.float(), self.cfg.loss.kd_temperature)}
        loss = terms["ce"] + self.cfg.loss.logit_kd * terms["kd"]
        return loss, {k: v.detach() for k, v in terms.items()}

