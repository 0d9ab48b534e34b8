"""Training recipes: a plain registry ``name -> Recipe class``.

| name | what | needs |
| --- | --- | --- |
| teacher | full-modality teacher (AnySeg parallel multimodal learning), OHEM CE | - |
| dropout | any-modal dropout only (baseline) | - |
| anyseg | AnySeg student: dropout + L_mad + L_umd + L_cmd | teacher |
| rmmss-hpdm | RMMSS stage 1: logit KD + prototype KD + IFV KD | teacher |
| rmmss-fsm | RMMSS stage 2: feature selection over frozen teacher + robust | teacher, robust |
| m3l | linear fusion + masked modality learning + EMA mean teacher (semi-supervised) | - |
| u2mkd | LiDAR-only teacher -> multi-modal student with imputation | teacher (LiDAR-only) |
| compress | the RMMSS-FSM student -> one compact network | teacher (an rmmss-fsm checkpoint) |
"""
from __future__ import annotations

import importlib

from rmmss_core.spec import PreprocessSpec
from rmmss_core.train.config import TrainConfig
from rmmss_core.train.recipes.base import Recipe

# name -> "module:Class" (imported when used)
RECIPES: dict[str, str] = {
    "teacher": "teacher:TeacherRecipe",
    "dropout": "dropout:DropoutRecipe",
    "anyseg": "anyseg:AnySegRecipe",
    "rmmss-hpdm": "rmmss_hpdm:HPDMRecipe",
    "rmmss-fsm": "rmmss_fsm:FSMRecipe",
    "m3l": "m3l:M3LRecipe",
    "u2mkd": "u2mkd:U2MKDRecipe",
    "compress": "compress:CompressRecipe",
}


def build_recipe(name: str, cfg: TrainConfig, spec: PreprocessSpec) -> Recipe:
    """The recipe ``name`` for ``cfg``; raises KeyError listing the valid names."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; valid: {list(RECIPES)}")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(f"rmmss_core.train.recipes.{module}"), cls)(cfg, spec)


__all__ = ["RECIPES", "Recipe", "build_recipe"]
