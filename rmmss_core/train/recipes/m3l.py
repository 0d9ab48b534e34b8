"""``m3l``: M3L (Maheshwari et al. 2023), linear fusion + masked modality learning + mean teacher.

The model should use ``fusion: linear`` and ``missing: token`` (config/train/m3l.yaml). Per sample
the student's inputs are masked (``loss.m3l_mask``: ``one`` = one modality or none, as in the
paper's two-sensor setting; ``anymodal`` = any-modal dropout, the generalisation to four sensors
we use by default, since masking at most one of four never shows single-sensor inputs).

Losses as the authors' code (harshm121/M3L@01ce42a):

- supervised: the mean over the predictions of every branch **and** the ensemble of the CE
  against the label (``linearfusemaskedconsmixbatch/segformer.py:163-169``); the ensemble
  combines the detached branch predictions, so its CE trains only the ensemble weights;
- mean teacher: an EMA copy (decay ``min(1 - 1/(step+1), loss.ema_decay)``) sees the unmasked
  inputs; the argmax of its ensemble prediction is the pseudo-label for **the whole batch**
  (labelled and unlabelled frames alike), and the pseudo term is the same mean over branches and
  ensemble of the CE against it (``semi_supervised/meanteachermaskstudent.py:286-292``), so the
  mean teacher acts even when every frame is labelled:
  ``L = sup + loss.pseudo * pseudo``.

The supervised CE is the project's OHEM CE (as every recipe); M3L uses plain CE. Frames without
labels (``data.labeled_fraction < 1``) have all-ignore labels and add nothing to it.
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


def prediction_list(out) -> list[torch.Tensor]:
    """Logits ``B x K x H x W`` of every branch, then the ensemble, of a linear-fusion SegOutput
    (requested with ``return_features=True``); other fusions give just their one prediction."""
    feats = out.features
    if feats is None or feats.branch_logits is None:
        return [out.logits]
    return [feats.branch_logits[:, i] for i in range(feats.branch_logits.shape[1])] + [out.logits]


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
        if self.cfg.loss.m3l_mask == "anymodal":
            mask = anymodal_mask(available, self.cfg.loss.dropout_per)
        else:
            mask = one_or_none_mask(available)
        out = self.model(inputs, mask, return_features=True)
        preds = prediction_list(out)
        with torch.no_grad():
            t_logits = self.ema(inputs, available).logits
        sup = torch.stack([supervised(self.cfg, p, label) for p in preds]).mean()
        pseudo = torch.stack([pseudo_label_loss(p.float(), t_logits.float()) for p in preds]).mean()
        terms = {"ce": sup, "pseudo": pseudo}
        loss = sup + self.cfg.loss.pseudo * pseudo
        return loss, {k: v.detach() for k, v in terms.items()}

    def after_step(self, step):
        ema_update(self.ema, self.model, step, self.cfg.loss.ema_decay)

    def extra_state(self):
        return {"ema": {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}}

    def load_extra_state(self, state):
        if "ema" in state:
            self.ema.load_state_dict(state["ema"])
