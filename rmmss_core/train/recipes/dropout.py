"""``dropout``: the same network trained with any-modal dropout only (the baseline).

Per sample, k ~ U{1..M} modalities are kept (a uniform random subset of size k); OHEM CE.
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
        loss = supervised(self.cfg, self.model(inputs, anymodal_mask(available)).logits, label)
        return loss, {"ce": loss.detach()}

