"""Training: typed configs, AdamW + warm-up/poly, atomic resumable checkpoints, DDP, recipes.

``fit(cfg, recipe, train_set, out, spec=..., validate=..., resume=...)`` is the one loop; each
recipe (``recipes/``) is an ``nn.Module`` that turns a batch into a loss.
"""
from rmmss_core.train.config import (
    DataConfig,
    FSMConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = ["DataConfig", "FSMConfig", "LossConfig", "ModelConfig", "OptimConfig", "TrainConfig"]
