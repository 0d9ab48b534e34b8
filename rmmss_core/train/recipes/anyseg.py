"""``anyseg``: AnySeg's student (Zheng et al. 2024).

Any-modal dropout for the student; a frozen full-modality teacher (``teacher=PATH``) sees every
modality. ``L = OHEM-CE + 50 L_mad + 5 L_umd + 10 L_cmd`` (weights in ``loss.*``).
"""
from __future__ import annotations

import torch

from rmmss_core.losses import cmd_loss, mad_loss, umd_loss
from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, build_student, load_frozen, supervised


class AnySegRecipe(Recipe):
    name = "anyseg"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)
        self.teacher = load_frozen(cfg.teacher, "teacher", spec)

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        with torch.no_grad():
            t = self.teacher(inputs, available, return_features=True)
        mask = anymodal_mask(available)
        s = self.model(inputs, mask, return_features=True)
        w = self.cfg.loss
        terms = {
            "ce": supervised(self.cfg, s.logits, label),
            "mad": mad_loss(s.logits.float(), t.logits.float()),
            "umd": umd_loss([f.float() for f in s.features.per_modality],
                            [f.float() for f in t.features.per_modality], mask),
            "cmd": cmd_loss([f.float() for f in s.features.per_modality],
                            [f.float() for f in t.features.per_modality], mask),
        }
        loss = terms["ce"] + w.mad * terms["mad"] + w.umd * terms["umd"] + w.cmd * terms["cmd"]
        return loss, {k: v.detach() for k, v in terms.items()}

