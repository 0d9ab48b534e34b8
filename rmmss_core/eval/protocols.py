"""Evaluation protocols of METHODS.md: EMM (15 subsets), RMM (random missing pixels), NM (noise).

One pass over the data evaluates every condition on every batch: the loader is read once and
each condition has its own seeded generator, so results do not depend on which protocols run.
A model is any ``nn.Module`` or callable following ``model(inputs, available)`` whose result is a
``B x K x H x W`` tensor, an object with ``.logits`` or a dict with ``"logits"``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from rmmss_core.data.corruptions import element_dropout, gaussian_noise, in_encoded_space, salt_and_pepper
from rmmss_core.eval.metrics import ConfusionMatrix, expected_miou
from rmmss_core.modalities import MODALITIES, NUM_MODALITIES, SUBSET_NAMES, SUBSETS, subset_mask
from rmmss_core.spec import PreprocessSpec

PROTOCOLS = ("emm", "rmm", "nm")
RMM_RATES = (0.25, 0.5, 0.75)
SALT_PEPPER_DENSITIES = (0.05, 0.1, 0.2)
GAUSSIAN_STDS = (0.1, 0.2, 0.5)
GAUSSIAN_MODALITIES = (0, 1, 3)            # R, D, L
EXPECTED_PS = (0.2, 0.1, 0.05)
ALL = tuple(range(NUM_MODALITIES))


@dataclass(frozen=True)
class Condition:
    """One evaluated setting: which modalities are available and which corruption is applied.

    ``corruption`` is None (EMM), ``"rmm"``, ``"salt_pepper"`` or ``"gaussian"``, at ``level``,
    applied to the modalities ``corrupted``.
    """

    protocol: str
    name: str
    subset: tuple[int, ...] = ALL
    corruption: str | None = None
    level: float = 0.0
    corrupted: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.protocol}/{self.name}"


def build_conditions(protocols: Iterable[str] = PROTOCOLS) -> list[Condition]:
    """The conditions of the named protocols, in a fixed order."""
    protocols = [p.strip().lower() for p in protocols if p.strip()]
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise ValueError(f"unknown protocol(s) {bad or protocols}; choose from {PROTOCOLS}")
    out: list[Condition] = []
    if "emm" in protocols:
        out += [Condition("emm", name, subset) for name, subset in zip(SUBSET_NAMES, SUBSETS, strict=True)]
    if "rmm" in protocols:
        out += [Condition("rmm", f"{r:g}", ALL, "rmm", r, ALL) for r in RMM_RATES]
    if "nm" in protocols:
        out += [Condition("nm", f"salt_pepper/{d:g}", ALL, "salt_pepper", d, ALL) for d in SALT_PEPPER_DENSITIES]
        out += [Condition("nm", f"gaussian/{s:g}", ALL, "gaussian", s, GAUSSIAN_MODALITIES) for s in GAUSSIAN_STDS]
    return out


def model_logits(model: nn.Module | Callable[..., Any], inputs: dict[str, torch.Tensor],
                 available: torch.Tensor) -> torch.Tensor:
    """Call ``model(inputs, available)`` and return its ``B x K x H x W`` logits."""
    out = model(inputs, available)
    logits = out["logits"] if isinstance(out, dict) else getattr(out, "logits", out)
    if not torch.is_tensor(logits) or logits.dim() != 4:
        raise ValueError(f"model must return B x K x H x W logits, got {type(logits).__name__} "
                         f"{tuple(logits.shape) if torch.is_tensor(logits) else ''}")
    return logits


def split_batch(batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """A batch (``{"inputs", "available", "label"}`` or the flat per-sample keys) ->
    (inputs, available ``B x M`` bool, label ``B x H x W``)."""
    src = batch["inputs"] if "inputs" in batch else batch
    missing = [m for m in MODALITIES if m not in src]
    if missing or "label" not in batch:
        raise ValueError(f"batch lacks {missing + ([] if 'label' in batch else ['label'])}")
    inputs = {m: src[m] for m in MODALITIES}
    b = inputs[MODALITIES[0]].shape[0]
    available = batch.get("available")
    if available is None:
        available = torch.ones(b, NUM_MODALITIES, dtype=torch.bool)
    elif not torch.is_tensor(available):
        available = torch.as_tensor(available)
    return inputs, available.bool().reshape(b, NUM_MODALITIES), batch["label"]


@dataclass
class EvalRun:
    """Confusion matrices per condition key, samples seen, and overlay records."""

    confusion: dict[str, ConfusionMatrix]
    conditions: list[Condition]
    samples: int = 0
    overlays: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready results (fractions, not %): ``emm`` (subsets, miou_avg, miou_e),
        ``rmm`` (per rate), ``nm`` (salt_pepper / gaussian per level), ``samples``."""
        out: dict[str, Any] = {"samples": self.samples}
        by_proto: dict[str, list[Condition]] = {}
        for c in self.conditions:
            by_proto.setdefault(c.protocol, []).append(c)
        if "emm" in by_proto:
            subsets = {c.name: self.confusion[c.key].summary() for c in by_proto["emm"]}
            mious = {n: s["miou"] for n, s in subsets.items()}
            nan_mious = {n: s["miou_nanmean"] for n, s in subsets.items()}
            out["emm"] = {"subsets": subsets,
                          "miou_avg": sum(mious.values()) / len(mious),
                          "miou_avg_nanmean": sum(nan_mious.values()) / len(nan_mious),
                          "miou_e": {f"{p:g}": expected_miou(mious, p) for p in EXPECTED_PS}}
        if "rmm" in by_proto:
            out["rmm"] = {c.name: self.confusion[c.key].summary() for c in by_proto["rmm"]}
        if "nm" in by_proto:
            nm: dict[str, dict[str, Any]] = {}
            for c in by_proto["nm"]:
                kind, level = c.name.split("/")
                nm.setdefault(kind, {})[level] = self.confusion[c.key].summary()
            out["nm"] = nm
        return out


class Evaluator:
    """Runs conditions over a DataLoader of the batch contract, seeded, on CPU or CUDA.

    Args:
        spec: the model's preprocessing spec (normalisation for NM and overlays; classes).
        conditions: from ``build_conditions``.
        overlay_samples: global sample indices (loader order) to keep for qualitative overlays,
            with predictions under the EMM subsets named in ``overlay_subsets``.
    """

    def __init__(self, spec: PreprocessSpec, conditions: Sequence[Condition], device: str | torch.device = "cpu",
                 seed: int = 0, overlay_samples: Sequence[int] = (),
                 overlay_subsets: Sequence[str] = ("RDEL", "RD", "R")):
        if not conditions:
            raise ValueError("no conditions to evaluate")
        self.spec, self.conditions = spec, list(conditions)
        self.device, self.seed = torch.device(device), seed
        self.overlay_samples = set(int(i) for i in overlay_samples)
        self.overlay_subsets = tuple(overlay_subsets)

    def _corrupt(self, cond: Condition, inputs: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """The shared corruptions of ``rmmss_core.data.corruptions`` (the ones training uses).

        RMM zeroes whole pixels (all channels) of the normalised input, as the ``zero`` missing
        representation does; NM noise is added in the encoded [0, 1] space and normalised again.
        """
        out = dict(inputs)
        for i in cond.corrupted:
            m, level = MODALITIES[i], cond.level
            if cond.corruption == "rmm":
                out[m] = element_dropout(out[m], level, per_pixel=True, generator=gen)
            elif cond.corruption == "salt_pepper":
                out[m] = in_encoded_space(out[m], m, self.spec,
                                          lambda x, lv=level: salt_and_pepper(x, lv, generator=gen))
            elif cond.corruption == "gaussian":
                out[m] = in_encoded_space(out[m], m, self.spec,
                                          lambda x, lv=level: gaussian_noise(x, lv, generator=gen))
            else:
                raise ValueError(f"unknown corruption {cond.corruption!r} in condition {cond.key}")
        return out

    @torch.inference_mode()
    def run(self, model: nn.Module | Callable[..., Any], loader: Iterable[dict[str, Any]],
            max_samples: int | None = None, progress: bool = True, desc: str = "eval") -> EvalRun:
        """Evaluate ``model`` on every condition; returns the confusion matrices and overlays."""
        if isinstance(model, nn.Module):
            model = model.to(self.device).eval()
        k = self.spec.num_classes
        run = EvalRun({c.key: ConfusionMatrix(k, self.spec.ignore_index, self.device) for c in self.conditions},
                      self.conditions)
        gens = [torch.Generator().manual_seed(self.seed * 1_000_003 + i) for i in range(len(self.conditions))]
        total = None if max_samples is None else max_samples
        bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)
        try:
            for batch in loader:
                inputs, batch_avail, label = split_batch(batch)
                b = label.shape[0]
                if max_samples is not None:
                    b = min(b, max_samples - run.samples)
                    if b <= 0:
                        break
                inputs = {m: x[:b].to(self.device, torch.float32) for m, x in inputs.items()}
                batch_avail, label = batch_avail[:b].to(self.device), label[:b].to(self.device)
                names = list(batch.get("name", [""] * b))[:b]
                picks = [j for j in range(b) if run.samples + j in self.overlay_samples]
                records = [self._overlay_record(run.samples + j, names[j], inputs, label, j) for j in picks]
                for cond, gen in zip(self.conditions, gens, strict=True):
                    avail = subset_mask(cond.subset, b, self.device) & batch_avail
                    x = self._corrupt(cond, inputs, gen) if cond.corruption else inputs
                    x = {m: x[m] * avail[:, i, None, None, None] for i, m in enumerate(MODALITIES)}
                    ok = avail.any(dim=1)
                    if not ok.any():
                        continue
                    if not ok.all():
                        x, avail_ok, lab = {m: v[ok] for m, v in x.items()}, avail[ok], label[ok]
                    else:
                        avail_ok, lab = avail, label
                    logits = model_logits(model, x, avail_ok)
                    if logits.shape[2:] != lab.shape[1:]:
                        logits = F.interpolate(logits.float(), size=lab.shape[1:], mode="bilinear",
                                               align_corners=False)
                    pred = logits.argmax(dim=1)
                    run.confusion[cond.key].update(pred, lab)
                    if cond.protocol == "emm" and cond.name in self.overlay_subsets and records:
                        full = torch.full_like(label, -1)
                        full[ok] = pred
                        for rec, j in zip(records, picks, strict=True):
                            rec["preds"][cond.name] = full[j].cpu()
                for rec in records:          # panels in the order the caller listed the subsets
                    rec["preds"] = {n: rec["preds"][n] for n in self.overlay_subsets if n in rec["preds"]}
                run.overlays.extend(records)
                run.samples += b
                bar.update(b)
        finally:
            bar.close()
        return run

    def _overlay_record(self, index: int, name: str, inputs: dict[str, torch.Tensor], label: torch.Tensor,
                        j: int) -> dict[str, Any]:
        norm = self.spec.normalization["rgb"]
        mean = torch.tensor(norm.mean).reshape(3, 1, 1)
        std = torch.tensor(norm.std).reshape(3, 1, 1)
        rgb = (inputs["rgb"][j].cpu() * std + mean).clamp(0, 1)
        return {"index": index, "name": str(name), "rgb": (rgb * 255).round().byte().permute(1, 2, 0),
                "label": label[j].cpu(), "preds": {}}


def evaluate(model: nn.Module | Callable[..., Any], loader: Iterable[dict[str, Any]], spec: PreprocessSpec,
             protocols: Iterable[str] = PROTOCOLS, device: str | torch.device = "cpu", seed: int = 0,
             max_samples: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Convenience: run the protocols and return ``EvalRun.summary()``."""
    ev = Evaluator(spec, build_conditions(protocols), device, seed)
    return ev.run(model, loader, max_samples, progress).summary()
