"""Multi-GPU / multi-node through ``torchrun``: process group, DDP, sharded sampler, rank-0 logging.

    torchrun --nproc_per_node 4 -m rmmss_core.cli train teacher --data DIR --out runs/t

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them the run
is a single process. NCCL on GPUs, gloo on CPUs (the test suite runs two gloo processes).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the local rank's GPU when CUDA is available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        name = f"cuda:{local_rank}"
    return torch.device(name)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    if rank != 0:  # rank-0 logging: other ranks report warnings and errors only
        logging.getLogger("rmmss").setLevel(logging.WARNING)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DistributedDataParallel over the trainable parameters (frozen sub-models are fine)."""
    if not info.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of scalar logs over ranks (for logging; the loss itself is averaged by DDP)."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


class ShardedSampler(Sampler[tuple[int, int]]):
    """DistributedSampler with an exact mid-epoch restart, yielding ``(index, sample_seed)``.

    The order of epoch ``e`` is a permutation drawn from ``seed + e``, padded to a multiple of
    the world size and strided over ranks (like ``DistributedSampler``). ``skip`` drops the first
    samples of this rank's share, so a run resumed after ``k`` batches continues with batch ``k+1``.
    ``sample_seed`` seeds the augmentation of that sample (see ``SeededDataset``), which makes the
    data stream independent of worker count and of where the run was resumed.
    """

    def __init__(self, length: int, seed: int, info: DistInfo, shuffle: bool = True):
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.seed, self.info, self.shuffle = length, seed, info, shuffle
        self.per_rank = math.ceil(length / info.world_size)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.per_rank - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.length, generator=g) if self.shuffle else torch.arange(self.length)
        seeds = torch.randint(0, 2**31 - 1, (self.length,), generator=g)
        total = self.per_rank * self.info.world_size
        order = torch.cat([order, order[: total - self.length]]) if total > self.length else order
        mine = order[self.info.rank:total:self.info.world_size][self.skip:]
        return iter([(int(i), int(seeds[i])) for i in mine])
