"""``dropout``: the same network trained with any-modal dropout only (the baseline).

A random non-empty subset of each frame's modalities is kept (``loss.dropout_per``: one draw per
batch as the AnySeg code, or per sample; see ``common.anymodal_mask``); OHEM CE. With
``data.labeled_fraction < 1`` it trains on the labelled frames only (the semi-supervised baseline).
"""
from __future__ import annotations

from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, build_student, supervised


class DropoutRecipe(Recipe):
    name = "dropout"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        mask = anymodal_mask(available, self.cfg.loss.dropout_per)
        loss = supervised(self.cfg, self.model(inputs, mask).logits, label)
        return loss, {"ce": loss.detach()}
