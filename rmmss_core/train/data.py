"""Dataset glue for training: per-sample seeding (exact resume), labeled fraction, device transfer."""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rmmss_core.classes import IGNORE_INDEX


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and ``random`` from one integer."""
    seed = int(seed) % (2**31 - 1)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class SeededDataset(Dataset):
    """Indexed by ``(index, sample_seed)`` pairs from ``ShardedSampler``: seeds every RNG before
    loading, so the random augmentation of a sample depends only on (seed, epoch, index)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, sample_seed = key
        seed_everything(sample_seed)
        return self.dataset[index]


class PartiallyLabeled(Dataset):
    """Keeps the labels of a seeded ``fraction`` of the frames; the others become unlabeled
    (label all ``IGNORE_INDEX``) and carry ``labeled=False`` for semi-supervised recipes."""

    def __init__(self, dataset: Dataset, fraction: float, seed: int = 0):
        n = len(dataset)  # type: ignore[arg-type]
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"labeled fraction must be in (0, 1], got {fraction}")
        keep = max(1, round(fraction * n))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
        self.labeled = torch.zeros(n, dtype=torch.bool)
        self.labeled[order[:keep]] = True
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        labeled = bool(self.labeled[index])
        if not labeled:
            sample["label"] = torch.full_like(torch.as_tensor(sample["label"]), IGNORE_INDEX)
        sample["labeled"] = torch.tensor(labeled)
        return sample


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
