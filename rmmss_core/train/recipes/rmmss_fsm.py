"""``rmmss-fsm``: RMMSS stage 2. Teacher (``teacher=PATH``) and robust model (``robust=PATH``,
from ``rmmss-hpdm``) frozen; only the feature selection module and its decoder
(``rmmss_core/models/fsm.py``; ``fsm.variant``: ``authors`` = RobustSeg/UMMSS mmkd/FSM.py, the
default, or ``ours``) train, with any-modal dropout. The authors' stage-2 loss is not released;
ours is ``L = OHEM-CE + fsm_kd * KL(teacher all-modal || FSM)`` (per-pixel KL).
The output checkpoint is the whole RMMSS student (registered model ``rmmss_fsm``)."""
from __future__ import annotations

import torch

from rmmss_core.losses import logit_kd_loss
from rmmss_core.models import model_spec
from rmmss_core.models.fsm import FSMStudent, FSMStudentConfig
from rmmss_core.models.registry import build_from_config
from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, load_frozen, supervised


class FSMRecipe(Recipe):
    name = "rmmss-fsm"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        teacher = load_frozen(cfg.teacher, "teacher", spec)
        robust = load_frozen(cfg.robust, "robust", spec)
        config = FSMStudentConfig(teacher=model_spec(teacher), robust=model_spec(robust),
                                  variant=cfg.fsm.variant, select=cfg.fsm.select)
        self.model: FSMStudent = build_from_config("rmmss_fsm", config)
        self.model.teacher.load_state_dict(teacher.state_dict())
        self.model.robust.load_state_dict(robust.state_dict())
        self.model.init_decoder_from_robust()

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        with torch.no_grad():
            full = self.model.teacher(inputs, available).logits
        out = self.model(inputs, anymodal_mask(available, self.cfg.loss.dropout_per))
        terms = {"ce": supervised(self.cfg, out.logits, label),
                 "kd": logit_kd_loss(out.logits.float(), full.float(), self.cfg.loss.kd_temperature)}
        loss = terms["ce"] + self.cfg.loss.fsm_kd * terms["kd"]
        return loss, {k: v.detach() for k, v in terms.items()}
