"""Tiny learnable in-memory frames and configs for the recipe tests (32 x 40, tiny MiT)."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import PreprocessSpec
from rmmss_core.train.config import DataConfig, ModelConfig, OptimConfig, TrainConfig

SPEC = PreprocessSpec(input_size=(32, 40))
TINY = {"size": "tiny", "fusion": "mean", "missing": "drop", "drop_path_rate": 0.0}


class BlockWorld(Dataset):
    """8x8 blocks of 5 classes; every sensor sees the class through its own colour code + noise."""

    def __init__(self, n: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        blocks = torch.randint(0, 5, (n, 4, 5), generator=g)
        self.label = blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)  # n x 32 x 40
        codes = torch.randn(4, 5, 3, generator=g)  # sensor x class -> colour
        self.x = torch.stack([codes[m][self.label].permute(0, 3, 1, 2) for m in range(4)], 1)
        self.x += 0.5 * torch.randn(self.x.shape, generator=g)

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        sample = {m: self.x[i, j] for j, m in enumerate(MODALITIES)}
        sample.update(label=self.label[i], available=torch.ones(4, dtype=torch.bool), name=f"b{i}")
        return sample


def recipe_config(recipe: str, iters: int = 8, **kw) -> TrainConfig:
    options = dict(TINY)
    options.update(kw.pop("options", {}))
    base = dict(recipe=recipe, iters=iters, device="cpu", log_every=4, ckpt_every=4, progress=False,
                optim=OptimConfig(lr=2e-3, warmup_iters=0), model=ModelConfig("anymodal", options),
                data=DataConfig(batch_size=4, num_workers=0, input_size=(32, 40)))
    base.update(kw)
    return TrainConfig(**base)
