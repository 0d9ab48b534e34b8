"""The base of the distillation recipes: one trained student and one frozen teacher.

``anyseg``, ``rmmss-hpdm``, ``u2mkd`` and ``compress`` differ only in their loss terms; building
the student, loading and freezing the teacher (``teacher=PATH``), drawing the student's any-modal
dropout mask and running both models live here once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rmmss_core.models import SegOutput
from rmmss_core.train.recipes.base import Recipe, split_batch
from rmmss_core.train.recipes.common import anymodal_mask, build_student, load_frozen, supervised


@dataclass
class DistillStep:
    """One batch through teacher and student.

    inputs ``{modality: B x 3 x H x W}``; available / mask bool ``B x 4`` (what the frame has /
    what the student sees); label ``B x H x W``; teacher / student: their ``SegOutput``s.
    """

    inputs: dict[str, torch.Tensor]
    available: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    teacher: SegOutput
    student: SegOutput


class DistillRecipe(Recipe):
    """Student ``self.model`` (``cfg.model``) + frozen ``self.teacher`` (``cfg.teacher``).

    Subclasses implement ``loss_terms(step) -> {name: tensor}`` and ``weights() -> {name: w}``; the
    loss is ``OHEM-CE + sum_name w[name] * term[name]``. ``teacher_sees``: ``"available"`` (the
    teacher gets every modality the frame has) or ``"mask"`` (the student's dropout mask, as the
    FSM-to-compact compression does).
    """

    teacher_sees = "available"
    features = True

    def __init__(self, cfg: Any, spec):
        super().__init__(cfg, spec)
        self.model = build_student(cfg, spec)
        self.teacher = load_frozen(cfg.teacher, "teacher", spec)

    def student_mask(self, available: torch.Tensor) -> torch.Tensor:
        return anymodal_mask(available, self.cfg.loss.dropout_per)

    def run(self, batch) -> DistillStep:
        inputs, available, label = split_batch(batch)
        mask = self.student_mask(available)
        with torch.no_grad():
            t = self.teacher(inputs, available if self.teacher_sees == "available" else mask,
                             return_features=self.features)
        s = self.model(inputs, mask, return_features=self.features)
        return DistillStep(inputs, available, mask, label, t, s)

    def loss_terms(self, step: DistillStep) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    def forward(self, batch, step):
        st = self.run(batch)
        terms = {"ce": supervised(self.cfg, st.student.logits, st.label), **self.loss_terms(st)}
        w = self.weights()
        loss = terms["ce"] + sum(w[k] * v for k, v in terms.items() if k != "ce")
        return loss, {k: v.detach() for k, v in terms.items()}
