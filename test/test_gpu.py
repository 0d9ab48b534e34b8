"""CUDA-only checks (``gpu`` marker; skipped cleanly without a CUDA device, run by
``rmmss gpu-check``): ONNX export of a model that lives on the GPU, and NCCL data parallelism (two
processes when there are two GPUs, else a single-process NCCL group through DDP)."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rmmss_core.deploy import create_backend, export_model
from rmmss_core.deploy.export import random_inputs
from rmmss_core.modalities import subset_mask
from rmmss_core.models import create_model, save_model_checkpoint
from rmmss_core.spec import PreprocessSpec

SIZE = (64, 96)
pytestmark = pytest.mark.gpu


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("fp16", [False, True])
def test_export_of_a_cuda_model_matches_the_cuda_backend(tmp_path, fp16):
    """The model is traced on the GPU; ONNX Runtime (CPU) masks equal the CUDA torch backend's."""
    torch.manual_seed(0)
    model = create_model("anymodal", size="tiny", fusion="mean", missing="token").eval()
    spec = PreprocessSpec(input_size=SIZE)
    save_model_checkpoint(tmp_path / "m.pt", model, spec)
    onnx_path = export_model(model.cuda(), spec, tmp_path / "m.onnx", batch=2, opset=17, fp16=fp16)
    assert next(model.parameters()).is_cuda  # the caller's model is left where it was
    x = random_inputs(2, SIZE, seed=1)
    avail = subset_mask("RDL", 2).numpy()
    with create_backend("onnxruntime", onnx_path) as ob, \
            create_backend("torch", tmp_path / "m.pt", device="cuda", precision="fp16" if fp16 else "fp32") as tb:
        a, b = ob.infer(x, avail), tb.infer(x, avail)
    assert a.shape == b.shape == (2, *SIZE)
    assert (a == b).mean() >= (0.98 if fp16 else 0.999)


def _nccl_worker(rank: int, world: int, port: int, dump: str) -> None:
    from _trainer_helpers import SPEC, RandomFrames, TinyRecipe, tiny_config

    from rmmss_core.train.distributed import cleanup_distributed
    from rmmss_core.train.trainer import fit
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cfg = tiny_config(iters=4, ckpt_every=2, device="cuda")
    torch.manual_seed(1000 + rank)  # different initial weights: DDP must broadcast rank 0's
    recipe = TinyRecipe(cfg)
    try:
        fit(cfg, recipe, RandomFrames(), os.path.join(dump, "run"), spec=SPEC)
        backend = dist.get_backend() if dist.is_initialized() else "none"
    finally:
        cleanup_distributed()
    state = {k: v.cpu() for k, v in recipe.net.state_dict().items()}
    torch.save({"state": state, "backend": backend}, os.path.join(dump, f"rank{rank}.pt"))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="two NCCL processes need two GPUs; "
                    "test_single_process_nccl_group covers one")
def test_two_nccl_processes_stay_in_sync(tmp_path):
    mp.spawn(_nccl_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["backend"] == r1["backend"] == "nccl"
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"{k} differs between ranks"


def test_single_process_nccl_group(tmp_path):
    """A one-rank NCCL group: collectives, object broadcast and a DDP step on the GPU."""
    from rmmss_core.train.distributed import DistInfo, all_reduce_mean, broadcast_object
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        torch.cuda.set_device(0)
        t = torch.arange(4.0, device="cuda")
        dist.all_reduce(t)
        assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
        info = DistInfo(0, 1, 0)
        assert broadcast_object({"a": 1}, info) == {"a": 1} and all_reduce_mean({"x": 2.0}, info) == {"x": 2.0}
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)).cuda()
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[0])
        before = [p.detach().clone() for p in net.parameters()]
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        ddp(torch.randn(2, 3, 16, 16, device="cuda")).square().mean().backward()
        opt.step()
        assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
        assert all(np.isfinite(p.detach().cpu().numpy()).all() for p in net.parameters())
    finally:
        dist.destroy_process_group()
