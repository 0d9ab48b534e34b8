"""``m3l``: M3L (Maheshwari et al. 2023), linear fusion + masked modality learning + mean teacher.

The model should use ``fusion: linear`` and ``missing: token`` (config/train/m3l.yaml). Per sample
the student's inputs are masked (``loss.m3l_mask``: ``one`` = one modality or none, as in the
paper's two-sensor setting; ``anymodal`` = any-modal dropout, the generalisation to four sensors
we use by default, since masking at most one of four never shows single-sensor inputs).

What the authors' code does (harshm121/M3L@df83f1d, read from it; `src/` omitted below):

- two views of every labelled frame: the batch is ``[labelled frames clean, every frame masked]``
  concatenated (``semi_supervised/meanteachermaskstudent.py:272-277``: ``all_data_BIG`` is the
  labelled batch, then labelled + unlabelled, with ``range_batches_to_mask`` covering all but the
  first copy), so each labelled frame is trained once clean and once masked and each unlabelled
  frame once masked (``loss.m3l_views=both``; ``masked``: our former single masked copy);
- supervised: the mean over the predictions of every branch **and** the ensemble of the loss
  against the label on the rows that have one (``models/segmentation_models/
  linearfusemaskedconsmixbatch/segformer.py:163-169``); the ensemble combines the detached branch
  predictions, so its term trains only the ensemble weights. The criterion is the probability-
  threshold OHEM ``ProbOhemCrossEntropy2d(thresh=0.7, min_kept=int(0.08 H W) * batch)``
  (``semi_supervised/get_framework.py:15-18,49``; ``losses.prob_ohem_cross_entropy``), with
  ``batch`` the un-doubled batch size (``loss.m3l_sup=prob_ohem``, ``loss.ohem_thresh``,
  ``loss.m3l_min_kept``; ``ohem``: the AnySeg/RMMSS OHEM the other recipes use);
- mean teacher: an EMA copy (decay ``min(1 - 1/(step+1), loss.ema_decay)``) sees the unmasked
  inputs; the argmax of its ensemble prediction is the pseudo-label for **every row** of the
  concatenated batch (``meanteachermaskstudent.py:286-292``), and the pseudo term is the mean over
  branches and ensemble of the plain CE against it (``get_framework.py:50``), so the mean teacher
  acts even when every frame is labelled: ``L = sup + loss.pseudo * pseudo``.

Frames without labels (``data.labeled_fraction < 1``) have all-ignore labels: they get no clean
copy and add nothing to the supervised term. The concatenated batch makes the student's forward up
to twice as long as the other recipes'.
"""
from __future__ import annotations

import copy
import logging

import torch

from rmmss_core.classes import IGNORE_INDEX
from rmmss_core.losses import ema_update, prob_ohem_cross_entropy, pseudo_label_loss
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
        if cfg.loss.m3l_views not in ("both", "masked"):
            raise ValueError(f"loss.m3l_views must be 'both' or 'masked', got {cfg.loss.m3l_views!r}")
        if cfg.loss.m3l_sup not in ("prob_ohem", "ohem"):
            raise ValueError(f"loss.m3l_sup must be 'prob_ohem' or 'ohem', got {cfg.loss.m3l_sup!r}")

    def views(self, inputs, available, mask, label):
        """The student's batch: ``(inputs, student mask, teacher rows, label)`` with ``2 x B``-style
        rows ``[labelled frames clean, all frames masked]`` (``loss.m3l_views=both``) or the masked
        frames alone (``masked``). ``teacher rows`` index the un-doubled batch for each row."""
        b = label.shape[0]
        rows = torch.arange(b, device=label.device)
        if self.cfg.loss.m3l_views == "masked":
            return inputs, mask, rows, label
        clean = rows[(label != IGNORE_INDEX).flatten(1).any(dim=1)]
        return ({m: torch.cat([x[clean], x]) for m, x in inputs.items()},
                torch.cat([available[clean], mask]), torch.cat([clean, rows]), torch.cat([label[clean], label]))

    def supervised(self, logits: torch.Tensor, label: torch.Tensor, batch: int) -> torch.Tensor:
        w = self.cfg.loss
        if w.m3l_sup == "ohem":
            return supervised(self.cfg, logits, label)
        min_kept = int(label.shape[1] * label.shape[2] * w.m3l_min_kept) * batch
        return prob_ohem_cross_entropy(logits.float(), label, w.ohem_thresh, min_kept, IGNORE_INDEX)

    def forward(self, batch, step):
        inputs, available, label = split_batch(batch)
        if self.cfg.loss.m3l_mask == "anymodal":
            mask = anymodal_mask(available, self.cfg.loss.dropout_per)
        else:
            mask = one_or_none_mask(available)
        x, student_mask, teacher_rows, y = self.views(inputs, available, mask, label)
        out = self.model(x, student_mask, return_features=True)
        preds = prediction_list(out)
        with torch.no_grad():
            t_logits = self.ema(inputs, available).logits[teacher_rows]
        sup = torch.stack([self.supervised(p, y, label.shape[0]) for p in preds]).mean()
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
