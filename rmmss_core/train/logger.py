"""Rank-0 run logging: a tqdm progress bar, log lines, TensorBoard scalars and sample images, and
``OUT/train.log``: every ``rmmss`` log line of the run (appended across resumes) as plain text."""
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
TEXT_LOG = "train.log"
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")


def attach_text_log(out: Path) -> logging.FileHandler:
    """Append the ``rmmss`` loggers' INFO+ lines to ``out/train.log``; returns the handler."""
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / TEXT_LOG, mode="a", encoding="utf-8")
    handler.setFormatter(_FORMAT)
    handler.setLevel(logging.INFO)
    handler._rmmss_run = str(out.resolve())  # type: ignore[attr-defined]
    root = logging.getLogger("rmmss")
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def detach_text_log(out: Path | None = None) -> None:
    """Close and remove the text-log handler(s) of ``out`` (all runs when None)."""
    root = logging.getLogger("rmmss")
    key = str(Path(out).resolve()) if out is not None else None
    for h in list(root.handlers):
        run = getattr(h, "_rmmss_run", None)
        if run is not None and (key is None or run == key):
            root.removeHandler(h)
            h.close()


class RunLogger:
    """Does nothing on ranks other than 0 (``enabled=False``)."""

    def __init__(self, out: Path, spec: PreprocessSpec, enabled: bool, total: int, start: int,
                 progress: bool = True):
        self.enabled, self.spec = enabled, spec
        self.writer = None
        self.bar = None
        self.text_log: logging.FileHandler | None = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow import
        detach_text_log(out)
        self.text_log = attach_text_log(out)
        log.info("run %s: %s at step %d of %d", out, "resumed" if start else "started", start, total)
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
        text = f"[{prefix} {step}] " + " ".join(f"{k}={v:.4g}" for k, v in values.items())
        if self.bar is None:
            log.info(text)
            return
        self.bar.write(text)  # above the bar on the console; the text log still gets the line
        if self.text_log is not None:
            self.text_log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, text, (), None))

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
        if self.text_log is not None:
            logging.getLogger("rmmss").removeHandler(self.text_log)
            self.text_log.close()
            self.text_log = None
