"""A small stand-in network, recipe and in-memory dataset for the trainer tests (no model zoo)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from rmmss_core.losses import ohem_cross_entropy
from rmmss_core.modalities import MODALITIES, random_anymodal_mask
from rmmss_core.spec import PreprocessSpec
from rmmss_core.train.config import DataConfig, OptimConfig, TrainConfig
from rmmss_core.train.recipes.base import Recipe, split_batch

K = 5
SPEC = PreprocessSpec.for_class_set("deliver", input_size=(32, 40))


@dataclass
class Out:
    logits: torch.Tensor


class TinyNet(nn.Module):
    """Shared conv per modality, mean over available ones, a GroupNorm and a 1x1 head."""

    def __init__(self, classes: int = K):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, inputs, available, return_features=False):
        feats = torch.stack([self.conv(inputs[m]) for m in MODALITIES], 1)  # B x M x C x H x W
        w = available.float()[:, :, None, None, None]
        fused = (feats * w).sum(1) / w.sum(1).clamp(min=1)
        return Out(self.head(self.drop(torch.relu(self.norm(fused)))))


class TinyRecipe(Recipe):
    name = "tiny"

    def __init__(self, cfg, spec=SPEC):
        super().__init__(cfg, spec)
        self.net = TinyNet()

    def forward(self, batch, step):
        inputs, _, label = split_batch(batch)
        avail = random_anymodal_mask(label.shape[0]).to(label.device)  # global RNG: seeded per step
        loss = ohem_cross_entropy(self.net(inputs, avail).logits, label)
        return loss, {"ce": loss.detach()}

    def output_model(self):
        return self.net

    def model_info(self):
        return {"name": "tiny", "config": {"classes": K}}


class RandomFrames(Dataset):
    """Fixed frames with a random horizontal flip (to check that augmentation replays exactly)."""

    def __init__(self, n: int = 24, size=(32, 40), seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        h, w = size
        self.x = torch.randn(n, 4, 3, h, w, generator=g)
        self.y = torch.randint(0, K, (n, h, w), generator=g)
        self.y[:, :2] = 255

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x, y = self.x[i], self.y[i]
        if torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        sample = {m: x[j] for j, m in enumerate(MODALITIES)}
        sample.update(label=y, available=torch.ones(4, dtype=torch.bool), name=f"f{i}")
        return sample


def tiny_config(**kw) -> TrainConfig:
    base = dict(recipe="tiny", iters=12, device="cpu", log_every=2, ckpt_every=5, progress=False,
                optim=OptimConfig(lr=1e-2, warmup_iters=3), data=DataConfig(batch_size=4, num_workers=0))
    base.update(kw)
    return TrainConfig(**base)


def weights(path: Path) -> dict[str, torch.Tensor]:
    from rmmss_core.utils.io import load_checkpoint
    return load_checkpoint(path)["state_dict"]
