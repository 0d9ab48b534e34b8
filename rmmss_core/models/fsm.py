"""RMMSS stage 2: the feature selection module (FSM) and the final RMMSS student.

The student is a frozen teacher + a frozen robust model (RMMSS stage 1) + a trainable FSM, and a
SegFormer decoder (initialised from the robust model's) that decodes the selected pyramid.

``variant="authors"`` (default) is the public FSM, RobustSeg/UMMSS@b08d32a:mmkd/FSM.py:14-73
(``PredictorConv`` and ``TokenSelectionModule.tokenselect``), per encoder stage over the two
sources (teacher, robust) with fused features ``x_s`` (``B x C x h x w``):

- one spatial score per source: ``s_s = Sigmoid(Conv1x1_{C->1}(DWConv3x3_C(x_s)))`` (``B x 1 x h x w``),
  a separate score net per source (FSM.py:14-29);
- ``w_s = s_s * x_s + x_s``; the arg-max over sources of ``w`` at every element (``B x C x h x w``,
  the code's ``torch.argmax(stacked, dim=0)``, FSM.py:47-53);
- the **original** features ``x_s`` of the winning source are returned (FSM.py:55-73); the
  fraction of elements won by each source is the code's ``percentages`` (``selection_share``).

Since the arg-max is not differentiable, the score nets receive no gradient from any loss on the
output: in training only the decoder learns (the authors' stage-2 loss and decoding are not
released, METHODS.md "Open"). There is no logit-level selection in this variant.

``variant="ours"`` (our former reading, kept as a named option): channel-wise scores
``a_s = conv1x1_{C->C}(dwconv3x3(x_s)) + bias(available)``, the element-wise max (or a
score-softmax weighting) of the refined ``sigmoid(a_s) * x_s + x_s``, and a per-pixel softmax
selection among the teacher's, robust model's and decoded logits. Differentiable end to end.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rmmss_core.modalities import NUM_MODALITIES
from rmmss_core.models.registry import build_model, register_model
from rmmss_core.models.segmentor import SegFeatures, SegOutput

SOURCES = ("teacher", "robust")
VARIANTS = ("authors", "ours")


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode for good (training's ``Recipe.train`` keeps it in eval mode)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    module._rmmss_frozen = True  # type: ignore[attr-defined]
    return module


@dataclass(frozen=True)
class FSMStudentConfig:
    """The two frozen models as ``{"name", "config"}`` (checkpoint ``model`` entries) + FSM settings."""

    teacher: dict[str, Any] = field(default_factory=dict)
    robust: dict[str, Any] = field(default_factory=dict)
    variant: str = "ours"  # checkpoints written before the authors' FSM existed are "ours"
    select: str = "max"
    hidden: int = 0  # reserved: the scorers are depth-wise + 1x1 (no hidden width)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"FSM variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.select not in ("max", "softmax"):
            raise ValueError(f"FSM select must be 'max' or 'softmax', got {self.select!r}")
        for role in SOURCES:
            spec = getattr(self, role)
            if not spec or "name" not in spec or "config" not in spec:
                raise ValueError(f"FSM student needs the {role} model as {{'name', 'config'}}, got {spec!r}")


# ---------------------------------------------------------------- the authors' FSM
class SpatialScore(nn.Module):
    """``Sigmoid(Conv1x1_{C->1}(DWConv3x3(x)))``: ``B x C x h x w`` -> ``B x 1 x h x w`` in (0, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pw = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.pw(self.dw(x)))


class TokenSelect(nn.Module):
    """One stage of the authors' FSM over ``S`` sources (each ``B x C x h x w``).

    forward(feats) -> (selected ``B x C x h x w``, winner index ``B x C x h x w`` long).
    Ties go to the first source (``torch.argmax`` returns the first maximum).
    """

    def __init__(self, channels: int, sources: int = len(SOURCES)):
        super().__init__()
        self.scores = nn.ModuleList(SpatialScore(channels) for _ in range(sources))

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        x = torch.stack(feats)                                                   # S x B x C x h x w
        s = torch.stack([net(f) for net, f in zip(self.scores, feats, strict=True)])  # S x B x 1 x h x w
        winner = torch.argmax(s * x + x, dim=0)                                  # B x C x h x w
        return torch.gather(x, 0, winner[None]).squeeze(0), winner


# ---------------------------------------------------------------- our former reading
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
    """One stage of our FSM over the sources' fused features (each ``B x C x h x w``)."""

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
    """Frozen teacher + frozen robust model + trainable FSM and decoder.

    forward(inputs, available, return_features=False) -> SegOutput(logits B x K x H x W).
    With features, ``branch_logits`` holds the selection shares ``B x S x 1 x 1 x 1`` (authors:
    the fraction of elements each source won over the 4 stages) or the logit-selection weights
    ``B x 3 x 1 x H x W`` (ours).
    """

    def __init__(self, teacher: nn.Module, robust: nn.Module, select: str = "max", variant: str = "authors"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"FSM variant must be one of {VARIANTS}, got {variant!r}")
        t_ch, r_ch = tuple(teacher.encoder.out_channels), tuple(robust.encoder.out_channels)
        if t_ch != r_ch or teacher.num_classes != robust.num_classes:
            raise ValueError(f"FSM needs teacher and robust models of the same stage widths and classes: "
                             f"{t_ch}/{teacher.num_classes} vs {r_ch}/{robust.num_classes}")
        self.variant = variant
        self.teacher, self.robust = freeze(teacher), freeze(robust)
        if variant == "authors":
            self.stages = nn.ModuleList(TokenSelect(c) for c in t_ch)
        else:
            self.stages = nn.ModuleList(StageSelect(c, select) for c in t_ch)
            self.logit_select = LogitSelect(robust.num_classes, len(SOURCES) + 1)
        self.decoder = copy.deepcopy(robust.decoder)
        for p in self.decoder.parameters():
            p.requires_grad_(True)

    @property
    def num_classes(self) -> int:
        return self.robust.num_classes

    def init_decoder_from_robust(self) -> None:
        self.decoder.load_state_dict(self.robust.decoder.state_dict())

    def select(self, t_fused: list[Tensor], r_fused: list[Tensor], avail: Tensor) -> tuple[list[Tensor], Tensor | None]:
        """Selected pyramid (4 x ``B x C_s x h x w``) and, for the authors' FSM, the shares ``B x 2``."""
        if self.variant == "ours":
            return [stage([t, r], avail) for stage, t, r in zip(self.stages, t_fused, r_fused, strict=True)], None
        selected, won = [], []
        for stage, t, r in zip(self.stages, t_fused, r_fused, strict=True):
            x, winner = stage([t, r])
            selected.append(x)
            won.append(torch.stack([(winner == i).flatten(1).float().mean(dim=1) for i in range(len(SOURCES))], 1))
        return selected, torch.stack(won).mean(dim=0)

    def forward(self, inputs: dict[str, Tensor], available: Tensor, return_features: bool = False) -> SegOutput:
        avail = available.bool()
        with torch.no_grad():
            t = self.teacher(inputs, avail, return_features=True)
            r = self.robust(inputs, avail, return_features=True)
        selected, shares = self.select(t.features.fused, r.features.fused, avail)
        dec = self.decoder(selected, r.features.per_modality, avail[:, self.robust.mask_index])
        size = t.logits.shape[-2:]
        logits = F.interpolate(dec.logits, size=size, mode="bilinear", align_corners=False)
        if self.variant == "ours":
            logits, weights = self.logit_select([t.logits, r.logits, logits], avail)
            extra = weights[:, :, None]
        else:
            extra = shares[:, :, None, None, None]
        if not return_features:
            return SegOutput(logits)
        return SegOutput(logits, SegFeatures(per_modality=r.features.per_modality, fused=selected,
                                             embedding=dec.embedding, branch_logits=extra))


@register_model("rmmss_fsm", FSMStudentConfig)
def build_fsm_student(cfg: FSMStudentConfig) -> FSMStudent:
    """Rebuild the FSM student (weights of all parts come from the checkpoint's state_dict)."""
    return FSMStudent(build_model(cfg.teacher), build_model(cfg.robust), cfg.select, cfg.variant)
