"""RMMSS stage 2: the feature selection module (FSM) and the final RMMSS student.

**Our reading.** The RMMSS paper names an FSM that scores the frozen teacher's and the frozen
robust model's features ("feature score") and selects the best representation, but no public
code or equation defines it. This module is our reading, consistent with the abstract and with
CMNeXt's hub (docs/METHODS.md):

- At each of the 4 encoder stages, for each source s in (teacher, robust) with fused features
  ``f_s`` (``B x C x h x w``): ``a_s = conv1x1(dwconv3x3(f_s)) + mask_bias_s(available)``,
  ``f_s' = sigmoid(a_s) * f_s + f_s``; the selected feature is the element-wise max over sources
  (``select="max"``) or the ``softmax_s(a_s)``-weighted sum (``select="softmax"``).
  ``mask_bias_s`` is our addition: a linear map of the explicit availability mask ``B x 4`` to a
  per-channel bias, so the gate knows which sensors are missing instead of inferring it.
- A trainable SegFormer decoder (initialised from the robust model's) decodes the selected pyramid.
- At the logits, the teacher's, the robust model's and the decoded logits are weighted per pixel
  by ``softmax_s(conv1x1(dwconv3x3(z_s)) + mask_bias_s)`` and summed: the final prediction.
- Training (recipe ``rmmss-fsm``): both models frozen, any-modal dropout, OHEM CE plus logit KD to
  the teacher with all modalities.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rmmss_core.modalities import NUM_MODALITIES
from rmmss_core.models import SegFeatures, SegOutput, build_model, register_model
from rmmss_core.train.recipes.base import freeze

SOURCES = ("teacher", "robust")


@dataclass(frozen=True)
class FSMStudentConfig:
    """The two frozen models as ``{"name", "config"}`` (checkpoint ``model`` entries) + FSM settings."""

    teacher: dict[str, Any] = field(default_factory=dict)
    robust: dict[str, Any] = field(default_factory=dict)
    select: str = "max"
    hidden: int = 0  # reserved: the scorers are depth-wise + 1x1 (no hidden width)

    def __post_init__(self):
        if self.select not in ("max", "softmax"):
            raise ValueError(f"FSM select must be 'max' or 'softmax', got {self.select!r}")
        for role in SOURCES:
            spec = getattr(self, role)
            if not spec or "name" not in spec or "config" not in spec:
                raise ValueError(f"FSM student needs the {role} model as {{'name', 'config'}}, got {spec!r}")


class Scorer(nn.Module):
    """``a = conv1x1(dwconv3x3(x)) + Linear(available)``: ``B x C x h x w`` -> ``B x out x h x w``."""

    def __init__(self, channels: int, out: int):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pw = nn.Conv2d(channels, out, 1)
        self.mask_bias = nn.Linear(NUM_MODALITIES, out)
        nn.init.zeros_(self.mask_bias.weight)
        nn.init.zeros_(self.mask_bias.bias)

    def forward(self, x: Tensor, available: Tensor) -> Tensor:
        return self.pw(self.dw(x)) + self.mask_bias(available.to(x.dtype))[:, :, None, None]


class StageSelect(nn.Module):
    """One stage of the FSM over the sources' fused features (each ``B x C x h x w``)."""

    def __init__(self, channels: int, select: str, sources: int = len(SOURCES)):
        super().__init__()
        self.select = select
        self.scorers = nn.ModuleList(Scorer(channels, channels) for _ in range(sources))

    def forward(self, feats: list[Tensor], available: Tensor) -> Tensor:
        scores = [sc(f, available) for sc, f in zip(self.scorers, feats, strict=True)]
        refined = torch.stack([torch.sigmoid(a) * f + f for a, f in zip(scores, feats, strict=True)])
        if self.select == "max":
            return refined.amax(dim=0)
        return (torch.softmax(torch.stack(scores), dim=0) * refined).sum(dim=0)


class LogitSelect(nn.Module):
    """Per-pixel softmax weighting of ``S`` logit maps (each ``B x K x H x W``)."""

    def __init__(self, num_classes: int, sources: int):
        super().__init__()
        self.scorers = nn.ModuleList(Scorer(num_classes, 1) for _ in range(sources))

    def forward(self, logits: list[Tensor], available: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the selected logits ``B x K x H x W`` and the weights ``B x S x H x W``."""
        scores = torch.cat([sc(z, available) for sc, z in zip(self.scorers, logits, strict=True)], dim=1)
        weights = torch.softmax(scores, dim=1)
        return (weights[:, :, None] * torch.stack(logits, dim=1)).sum(dim=1), weights


class FSMStudent(nn.Module):
    """Frozen teacher + frozen robust model + trainable FSM (stage selection, decoder, logit selection).

    forward(inputs, available, return_features=False) -> SegOutput(logits B x K x H x W)
    """

    def __init__(self, teacher: nn.Module, robust: nn.Module, select: str = "max"):
        super().__init__()
        t_ch, r_ch = tuple(teacher.encoder.out_channels), tuple(robust.encoder.out_channels)
        if t_ch != r_ch or teacher.num_classes != robust.num_classes:
            raise ValueError(f"FSM needs teacher and robust models of the same stage widths and classes: "
                             f"{t_ch}/{teacher.num_classes} vs {r_ch}/{robust.num_classes}")
        self.teacher, self.robust = freeze(teacher), freeze(robust)
        self.stages = nn.ModuleList(StageSelect(c, select) for c in t_ch)
        self.decoder = copy.deepcopy(robust.decoder)
        for p in self.decoder.parameters():
            p.requires_grad_(True)
        self.logit_select = LogitSelect(robust.num_classes, len(SOURCES) + 1)

    @property
    def num_classes(self) -> int:
        return self.robust.num_classes

    def init_decoder_from_robust(self) -> None:
        self.decoder.load_state_dict(self.robust.decoder.state_dict())

    def forward(self, inputs: dict[str, Tensor], available: Tensor, return_features: bool = False) -> SegOutput:
        avail = available.bool()
        with torch.no_grad():
            t = self.teacher(inputs, avail, return_features=True)
            r = self.robust(inputs, avail, return_features=True)
        selected = [stage(list(fs), avail) for stage, fs in
                    zip(self.stages, zip(t.features.fused, r.features.fused, strict=True), strict=True)]
        dec = self.decoder(selected, r.features.per_modality, avail[:, self.robust.mask_index])
        size = t.logits.shape[-2:]
        decoded = F.interpolate(dec.logits, size=size, mode="bilinear", align_corners=False)
        logits, weights = self.logit_select([t.logits, r.logits, decoded], avail)
        if not return_features:
            return SegOutput(logits)
        return SegOutput(logits, SegFeatures(per_modality=r.features.per_modality, fused=selected,
                                             embedding=dec.embedding, branch_logits=weights[:, :, None]))


@register_model("rmmss_fsm", FSMStudentConfig)
def build_fsm_student(cfg: FSMStudentConfig) -> FSMStudent:
    """Rebuild the FSM student (weights of all three parts come from the checkpoint's state_dict)."""
    return FSMStudent(build_model(cfg.teacher), build_model(cfg.robust), cfg.select)
