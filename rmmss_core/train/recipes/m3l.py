"""``m3l``: M3L (Maheshwari et al. 2023), linear fusion + masked modality learning + mean teacher.

The model should use ``fusion: linear`` and ``missing: token`` (config/train/m3l.yaml). Per sample
the student's inputs are masked (``loss.m3l_mask``: ``one`` = one modality or none, as in the
paper's two-sensor setting; ``anymodal`` = any-modal dropout, the generalisation to four sensors
we use by default, since masking at most one of four never shows single-sensor inputs). An EMA
copy (decay ``min(1 - 1/(step+1), loss.ema_decay)``) sees the unmasked inputs; its argmax is the
pseudo-label on unlabeled frames (``data.labeled_fraction < 1``):
``L = OHEM-CE(labeled) + pseudo * CE(student, teacher argmax on unlabeled)``.
"""
from __future__ import annotations

import copy
import logging

import torch

from rmmss_core.losses import ema_update, pseudo_label_loss
from rmmss_core.train.recipes.base import Recipe, freeze, split_batch
from rmmss_core.train.recipes.common import (
    anymodal_mask,
    build_student,
    one_or_none_mask,
    supervised,
)

log = logging.getLogger("rmmss.train")


class M3LRecipe(Recipe):
    name = "m3l"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)
        if getattr(self.model.config, "fusion", "linear") != "linear":
            log.warning("m3l with fusion=%s: M3L's linear fusion is fusion=linear", self.model.config.fusion)
        self.ema = freeze(copy.deepcopy(self.model))
        if cfg.loss.m3l_mask not in ("one", "anymodal"):
            raise ValueError(f"loss.m3l_mask must be 'one' or 'anymodal', got {cfg.loss.m3l_mask!r}")

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        labeled = batch.get("labeled", torch.ones(label.shape[0], dtype=torch.bool, device=label.device)).bool()
        mask = anymodal_mask(available) if self.cfg.loss.m3l_mask == "anymodal" else one_or_none_mask(available)
        logits = self.model(inputs, mask).logits
        terms = {"ce": supervised(self.cfg, logits, label)}
        unlabeled = ~labeled
        if unlabeled.any():
            with torch.no_grad():
                t_logits = self.ema(inputs, available).logits
            valid = unlabeled[:, None, None].expand_as(label)
            terms["pseudo"] = pseudo_label_loss(logits.float(), t_logits.float(), valid)
        else:
            terms["pseudo"] = torch.zeros((), device=logits.device)
        loss = terms["ce"] + self.cfg.loss.pseudo * terms["pseudo"]
        return loss, {k: v.detach() for k, v in terms.items()}

    def after_step(self, step):
        ema_update(self.ema, self.model, step, self.cfg.loss.ema_decay)

    def extra_state(self):
        return {"ema": {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}}

    def load_extra_state(self, state):
        if "ema" in state:
            self.ema.load_state_dict(state["ema"])

