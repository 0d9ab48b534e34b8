"""Step 2: inference latency of the B0 student with 4 sensors, side by side with two references
measured in the same process on the same device.

* ours: ``create_model("anymodal", size="b0", fusion="mean", missing="drop")`` (the student of the
  recipes, random weights: latency does not depend on them), served by the deployed
  :class:`~rmmss_core.deploy.backends.torch_backend.TorchBackend` (channels_last, FP32SafeOps in
  half precision) in three modes: eager, CUDA graphs, ``torch.compile``;
* the same network built for one sensor (``modalities=("rgb",)``), fed the camera alone;
* Hugging Face ``SegformerForSemanticSegmentation`` with ``SegformerConfig()`` (MiT-B0 widths and
  depths, 25 classes, random weights: config only, nothing downloaded) fed the 4 sensors as a batch
  of 4, logits upsampled to the input size and argmax, like ours. Only when transformers is there.

Timed: inputs already on the device, one call = forward + upsample + argmax on the device, then a
device synchronisation; p50/p90 over the timed calls after warm-up.
"""
from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rmmss_core.gpu_check.common import Context, Row, guarded, time_fn

STEP = "latency"
SIZES = ((1024, 1024), (512, 512))
PRECISIONS = ("fp32", "bf16", "fp16")
MODES = ("eager", "cuda_graphs", "compile")
NETS = ("b0_4_sensors", "b0_1_sensor", "hf_segformer_b0_batch4")
NUM_CLASSES = 25
COMPILE_COST_S = 75.0  # what one torch.compile row may take on a GPU (compile + warm-up + timing)


def row_name(net: str, size: tuple[int, int], precision: str, mode: str) -> str:
    return f"{net} {size[0]}x{size[1]} {precision} {mode}"


def _checkpoint(work: Path, model_size: str, modalities: tuple[str, ...], size: tuple[int, int]) -> Path:
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec

    path = work / f"{model_size}-{len(modalities)}-{size[0]}x{size[1]}.pt"
    if not path.is_file():
        torch.manual_seed(0)
        model = create_model("anymodal", size=model_size, fusion="mean", missing="drop", num_classes=NUM_CLASSES,
                             modalities=modalities)
        save_model_checkpoint(path, model, PreprocessSpec(input_size=size))
    return path


def _ours(ctx: Context, work: Path, model_size: str, sensors: int, size: tuple[int, int], precision: str,
          mode: str, iters: int) -> dict[str, Any]:
    from rmmss_core.deploy.backends.torch_backend import TorchBackend
    from rmmss_core.modalities import MODALITIES

    mods = MODALITIES if sensors == 4 else ("rgb",)
    ckpt = _checkpoint(work, model_size, mods, size)
    t0 = time.perf_counter()
    be = TorchBackend(ckpt, str(ctx.device), precision, cuda_graphs=mode == "cuda_graphs", compile=mode == "compile")
    try:
        g = torch.Generator().manual_seed(0)
        host = {m: torch.randn(1, 3, *size, generator=g) if m in mods else torch.zeros(1, 3, *size) for m in MODALITIES}
        avail = torch.tensor([[m in mods for m in MODALITIES]])
        x, a = be._to_device(host, avail)  # inputs resident on the device: the network's latency
        with torch.inference_mode():
            be._run(x, a, "mask")  # first call: graph capture / compilation
        ctx.sync()
        first_s = time.perf_counter() - t0
        with torch.inference_mode():
            t = time_fn(lambda: be._run(x, a, "mask"), ctx.sync, warmup=3 if ctx.cuda else 1, iters=iters)
        t["setup_s"] = first_s
        if ctx.cuda:
            t["peak_mem_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
        return t
    finally:
        be.close()


def _hf(ctx: Context, size: tuple[int, int], precision: str, mode: str, iters: int, tiny: bool) -> dict[str, Any]:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from rmmss_core.deploy.backends.torch_backend import _GraphedCall
    from rmmss_core.deploy.precision import torch_dtype

    cfg = SegformerConfig(num_labels=NUM_CLASSES)  # defaults = MiT-B0 (hidden 32..256, depths 2,2,2,2)
    if tiny:
        cfg = SegformerConfig(num_labels=NUM_CLASSES, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                              decoder_hidden_size=64)
    torch.manual_seed(0)
    dtype = torch_dtype(precision)
    model = SegformerForSemanticSegmentation(cfg).eval().requires_grad_(False).to(ctx.device, dtype)
    fmt = torch.channels_last if ctx.cuda else torch.contiguous_format
    model = model.to(memory_format=fmt)

    def net(inputs: dict[str, torch.Tensor], available: torch.Tensor) -> torch.Tensor:
        logits = model(pixel_values=inputs["x"]).logits
        up = torch.nn.functional.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        return up.argmax(1).to(torch.uint8)

    fn = torch.compile(net, dynamic=False) if mode == "compile" else net
    x = {"x": torch.randn(4, 3, *size, generator=torch.Generator().manual_seed(0)).to(ctx.device, dtype,
                                                                                         memory_format=fmt)}
    a = torch.ones(1, 4, dtype=torch.bool, device=ctx.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        call = _GraphedCall(fn, x, a) if mode == "cuda_graphs" else fn
        call(x, a)
        ctx.sync()
        first_s = time.perf_counter() - t0
        t = time_fn(lambda: call(x, a), ctx.sync, warmup=3 if ctx.cuda else 1, iters=iters)
    t["setup_s"] = first_s
    return t


def run(ctx: Context, phase: str = "main") -> list[Row]:
    """``phase="main"``: eager and CUDA graphs rows; ``phase="compile"``: the torch.compile rows
    (run later, inside their own share of the budget). Each row is guarded."""
    rows: list[Row] = []
    have_hf = importlib.util.find_spec("transformers") is not None
    iters = 3 if ctx.smoke else 100
    if phase == "main":
        plan = [(net, size, precision, mode) for size in SIZES for precision in PRECISIONS
                for mode in ("eager", "cuda_graphs") for net in NETS]
    else:  # compiles are slow: the figures that matter most first, the rest as the budget allows
        plan = sorted(((net, size, precision, "compile") for size in SIZES for precision in PRECISIONS for net in NETS),
                      key=lambda c: (SIZES.index(c[1]), c[2] == "fp32", ("b0_4_sensors", "hf_segformer_b0_batch4",
                                                                      "b0_1_sensor").index(c[0]), PRECISIONS.index(c[2])))
    with tempfile.TemporaryDirectory(prefix="rmmss-gpu-check-") as tmp:
        work = Path(tmp)
        for net, size, precision, mode in plan:
            rows += _one(ctx, work, net, size, precision, mode, iters, have_hf)
    return rows


def _one(ctx: Context, work: Path, net: str, size: tuple[int, int], precision: str, mode: str, iters: int,
         have_hf: bool) -> list[Row]:
    name = row_name(net, size, precision, mode)
    smoke_size, tiny = ((64, 80), True) if ctx.smoke else (size, False)
    if net.startswith("hf_") and not have_hf:
        return [Row(STEP, name, "skipped", "transformers is not installed (the Hugging Face reference needs it)")]
    if mode == "cuda_graphs" and not ctx.cuda:
        return [ctx.gpu_row(STEP, name)]
    if mode == "compile":
        if ctx.smoke and not ctx.cuda:
            return [Row(STEP, name, "skipped", "--smoke on CPU: torch.compile takes minutes per graph on a CPU; "
                                               "the GPU run compiles")]
        budget = ctx.options.get("compile_deadline", ctx.deadline)
        if time.monotonic() + COMPILE_COST_S > budget:
            return [Row(STEP, name, "skipped", f"time budget: a compile row needs ~{COMPILE_COST_S:.0f} s, "
                                               f"{max(0.0, budget - time.monotonic()):.0f} s left for compile rows")]
    if ctx.left_s() < 5:
        return [Row(STEP, name, "skipped", "time budget of the whole check used up")]

    def measure() -> Row:
        if net.startswith("hf_"):
            fig = _hf(ctx, smoke_size, precision, mode, iters, tiny)
        else:
            fig = _ours(ctx, work, "tiny" if tiny else "b0", 4 if net == "b0_4_sensors" else 1, smoke_size,
                        precision, mode, iters)
        fig = {"net": net, "size": list(size), "precision": precision, "mode": mode, **fig}
        if ctx.smoke:
            fig.update(stand_in="tiny model" if tiny else "", stand_in_size=list(smoke_size))
            return Row(STEP, name, "smoke", f"smoke run on {ctx.device.type} at {smoke_size[0]}x{smoke_size[1]} "
                                            "with the tiny stand-in; not the full-size figure", fig)
        return Row(STEP, name, "ok", "", fig)

    if ctx.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)
    rows = guarded(STEP, name, measure)
    return rows


def summary(rows: list[Row]) -> dict[str, Any]:
    """Best precision/mode of ours at 1024x1024 and its ratio to the HF reference in that setting."""
    ok = [r for r in rows if r.step == STEP and r.status == "ok"]
    ours = [r for r in ok if r.figures["net"] == "b0_4_sensors" and r.figures["size"] == [1024, 1024]]
    if not ours:
        return {}
    best = min(ours, key=lambda r: r.figures["p50_ms"])
    out: dict[str, Any] = {"best": best.name, "best_p50_ms": best.figures["p50_ms"],
                           "target_p50_ms": 4.0, "meets_target": best.figures["p50_ms"] <= 4.0}
    f = best.figures
    for ref in ("hf_segformer_b0_batch4", "b0_1_sensor"):
        match = [r for r in ok if r.figures["net"] == ref and r.figures["size"] == f["size"]
                 and r.figures["precision"] == f["precision"] and r.figures["mode"] == f["mode"]]
        if match:
            out[f"ratio_to_{ref}"] = f["p50_ms"] / match[0].figures["p50_ms"]
    return out
