"""``teacher``: the full-modality teacher, AnySeg's parallel multimodal learning.

The shared-encoder network sees every modality the frame has (all four in the synthetic world)
and learns with OHEM cross-entropy. With ``model.options.modalities=[lidar]`` the same recipe
trains U2MKD's LiDAR-only teacher.
"""
from __future__ import annotations

from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import build_student, supervised


class TeacherRecipe(Recipe):
    name = "teacher"

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        loss = supervised(self.cfg, self.model(inputs, available).logits, label)
        return loss, {"ce": loss.detach()}

