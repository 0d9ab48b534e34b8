"""What every recipe is: an ``nn.Module`` whose forward turns a batch into a loss.

The trainer optimises the recipe's parameters that require grad (frozen teachers are left out),
wraps the recipe in DDP, checkpoints ``output_model()`` in the models' format and validates it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from rmmss_core.modalities import MODALITIES
from rmmss_core.models.fsm import freeze  # noqa: F401  (one definition, shared with the FSM)
from rmmss_core.spec import PreprocessSpec


def split_batch(batch: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """``(inputs {modality: B x 3 x H x W}, available B x 4 bool, label B x H x W)``."""
    missing = [k for k in (*MODALITIES, "available", "label") if k not in batch]
    if missing:
        raise KeyError(f"batch lacks {missing}; keys are {sorted(batch)}")
    return {m: batch[m] for m in MODALITIES}, batch["available"].bool(), batch["label"].long()




class Recipe(nn.Module):
    """Subclasses set ``name`` and ``self.model`` (the network they produce) and implement
    ``forward(batch, step) -> (loss, logs)``; EMA-like state goes in ``extra_state``."""

    name: ClassVar[str] = ""

    def __init__(self, cfg: Any, spec: PreprocessSpec):
        super().__init__()
        self.cfg, self.spec = cfg, spec

    def forward(self, batch: Mapping[str, Any], step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def output_model(self) -> nn.Module:
        """The network this recipe produces (saved, validated, evaluated): ``self.model``."""
        return self.model

    def model_info(self) -> dict[str, Any]:
        """``{"name", "config"}`` so that ``create_model(name, **config)`` rebuilds the output model."""
        from rmmss_core.models import model_spec
        return model_spec(self.output_model())

    def after_step(self, step: int) -> None:
        """Called after every optimizer step (EMA updates)."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        del state

    def train(self, mode: bool = True) -> Recipe:
        super().train(mode)
        for m in self.modules():  # frozen sub-models stay in eval mode
            if getattr(m, "_rmmss_frozen", False):
                m.eval()
        return self
