"""Step 4: one training step of the teacher recipe with MiT-B2, 4 sensors, 1024 x 1024, batch 2,
bf16 autocast: the trainer's step (``rmmss_core.train.trainer.fit``: autocast forward of the
recipe, OHEM cross-entropy, backward, gradient clipping, AdamW) on random inputs and labels.

Figures: step time p50/p90, images per second, peak device memory. The recipe is built from
``config/train/teacher.yaml`` with ``model.options.size=b2`` and ``data.input_size=[1024, 1024]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from rmmss_core.gpu_check.common import Context, Row, guarded, time_fn

STEP = "train"
NAME = "teacher step: MiT-B2, 4 sensors, 1024x1024, batch 2, bf16 autocast"
ROOT = Path(__file__).resolve().parents[2]


def teacher_step(device: torch.device, size: str, input_size: tuple[int, int], batch: int, amp: str,
                 sync, iters: int, warmup: int) -> dict[str, Any]:
    """Time the trainer's step for the teacher recipe; returns the timing dict and peak memory."""
    from rmmss_core.modalities import MODALITIES
    from rmmss_core.spec import PreprocessSpec
    from rmmss_core.train.config import TrainConfig
    from rmmss_core.train.optim import build_optimizer
    from rmmss_core.train.recipes import build_recipe
    from rmmss_core.utils.config import config_from_dict

    raw = yaml.safe_load((ROOT / "config" / "train" / "teacher.yaml").read_text())
    raw["model"]["options"]["size"] = size
    raw["data"].update(input_size=list(input_size), batch_size=batch)
    raw.update(amp=amp, device=str(device))
    cfg = config_from_dict(TrainConfig, raw, where="gpu-check teacher step")
    spec = PreprocessSpec(input_size=input_size)
    torch.manual_seed(0)
    recipe = build_recipe("teacher", cfg, spec).to(device).train()
    opt = build_optimizer(recipe, cfg.optim)
    params = [p for p in recipe.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(0)
    batch_t = {m: torch.randn(batch, 3, *input_size, generator=g).to(device) for m in MODALITIES}
    batch_t["available"] = torch.ones(batch, len(MODALITIES), dtype=torch.bool, device=device)
    batch_t["label"] = torch.randint(0, spec.num_classes, (batch, *input_size), generator=g).to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    use_amp = dtype is not None and device.type == "cuda"  # as the trainer: autocast on GPU only

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=dtype or torch.bfloat16, enabled=use_amp):
            loss, _ = recipe(batch_t, 0)
        if not torch.isfinite(loss):
            raise RuntimeError(f"teacher step: loss is {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip_grad)
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = time_fn(step, sync, warmup, iters, max_s=60.0)
    t["images_per_s"] = batch / (t["p50_ms"] / 1e3)
    t["params_m"] = sum(p.numel() for p in params) / 1e6
    if device.type == "cuda":
        t["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    t.update(model=size, input_size=list(input_size), batch=batch, amp=amp if use_amp else "none (CPU: fp32)")
    return t


def run(ctx: Context) -> list[Row]:
    if ctx.left_s() < 20:
        return [Row(STEP, NAME, "skipped", "time budget of the whole check used up")]

    def measure() -> Row:
        if ctx.smoke:
            fig = teacher_step(ctx.device, "tiny", (64, 80), 2, "bf16", ctx.sync, 2, 1)
            return Row(STEP, NAME, "smoke", "CPU smoke with MiT-tiny at 64x80; not the GPU figure", fig)
        fig = teacher_step(ctx.device, "b2", (1024, 1024), 2, "bf16", ctx.sync, 20, 3)
        return Row(STEP, NAME, "ok", "", fig)
    rows = guarded(STEP, NAME, measure)
    if ctx.cuda:
        torch.cuda.empty_cache()
    return rows
