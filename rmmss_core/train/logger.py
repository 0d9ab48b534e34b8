"""Rank-0 run logging: a tqdm progress bar, log lines, TensorBoard scalars and sample images."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import PreprocessSpec

log = logging.getLogger("rmmss.train")


class RunLogger:
    """Does nothing on ranks other than 0 (``enabled=False``)."""

    def __init__(self, out: Path, spec: PreprocessSpec, enabled: bool, total: int, start: int,
                 progress: bool = True):
        self.enabled, self.spec = enabled, spec
        self.writer = None
        self.bar = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow import
        self.writer = SummaryWriter(str(out / "tb"), purge_step=start if start else None)
        if progress:
            self.bar = tqdm(total=total, initial=start, desc=out.name, dynamic_ncols=True, leave=False)

    def progress(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        if not self.enabled:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)
        text = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        (self.bar.write if self.bar is not None else log.info)(f"[{prefix} {step}] {text}")

    @torch.no_grad()
    def images(self, model: torch.nn.Module, batch: Mapping[str, Any], step: int, every: int) -> None:
        """RGB | label | prediction with all sensors | prediction with the batch's own sensors."""
        if not self.enabled or every <= 0:
            return
        was_training = model.training
        model.eval()
        inputs = {m: batch[m][:2] for m in MODALITIES}
        avail = batch["available"][:2].bool()
        full = model(inputs, torch.ones_like(avail)).logits.argmax(1)
        own = model(inputs, avail).logits.argmax(1)
        model.train(was_training)
        palette = torch.tensor(self.spec.palette + ((0, 0, 0),), dtype=torch.uint8, device=full.device)
        label = batch["label"][:2].clone()
        label[(label < 0) | (label >= len(self.spec.palette))] = len(self.spec.palette)
        rgb = batch["rgb"][:2].float()
        rgb = ((rgb - rgb.amin()) / (rgb.amax() - rgb.amin() + 1e-6) * 255).to(torch.uint8)
        rows = [torch.cat([rgb[i], palette[label[i]].permute(2, 0, 1), palette[full[i]].permute(2, 0, 1),
                           palette[own[i]].permute(2, 0, 1)], dim=2) for i in range(rgb.shape[0])]
        self.writer.add_image("samples/rgb_label_full_own", torch.cat(rows, dim=1).cpu(), step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
