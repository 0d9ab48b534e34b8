"""Two CPU processes (gloo) through the same env variables torchrun sets: gradients are
synchronised (both ranks end with identical weights although they saw different data) and only
rank 0 writes files."""
from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from _trainer_helpers import SPEC, RandomFrames, TinyRecipe, tiny_config

from rmmss_core.train.distributed import DistInfo, ShardedSampler, cleanup_distributed
from rmmss_core.train.trainer import fit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, dump: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    cfg = tiny_config(iters=6, ckpt_every=3)
    torch.manual_seed(1000 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    recipe = TinyRecipe(cfg)
    seen: list[str] = []
    original = recipe.forward

    def spy(batch, step):
        seen.extend(batch["name"])
        return original(batch, step)
    recipe.forward = spy
    try:
        fit(cfg, recipe, RandomFrames(), out, spec=SPEC)
    finally:
        cleanup_distributed()
    torch.save({"state": recipe.net.state_dict(), "seen": seen}, os.path.join(dump, f"rank{rank}.pt"))


def test_two_gloo_processes_stay_in_sync(tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(dump)), nprocs=2, join=True)
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"{k} differs between ranks: gradients not synchronised"
    # each rank saw its own shard of every epoch (24 frames, 2 ranks, batch 4: 3 steps per epoch)
    assert len(r0["seen"]) == len(r1["seen"]) == 24
    assert not set(r0["seen"][:12]) & set(r1["seen"][:12])
    # rank 0 alone wrote: one TensorBoard file, one checkpoint, equal to the ranks' weights
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "last.pt", "result.json", "spec.json", "tb", "train.log"]
    saved = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    for k, v in saved.items():
        assert torch.equal(v, r0["state"][k])


def test_sharded_sampler_partitions_and_restarts():
    a = list(ShardedSampler(10, 3, DistInfo(0, 2, 0)))
    b = list(ShardedSampler(10, 3, DistInfo(1, 2, 1)))
    assert len(a) == len(b) == 5 and {i for i, _ in a} | {i for i, _ in b} == set(range(10))
    full = ShardedSampler(10, 3, DistInfo(0, 2, 0))
    full.set_epoch(4, skip=2)
    again = ShardedSampler(10, 3, DistInfo(0, 2, 0))
    again.set_epoch(4)
    assert list(full) == list(again)[2:]
    again.set_epoch(5)
    assert list(again) != list(ShardedSampler(10, 3, DistInfo(0, 2, 0)))  # epochs reshuffle
