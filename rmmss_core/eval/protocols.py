"""Evaluation protocols of METHODS.md, as the authors' scripts define them (RobustSeg/UMMSS@b08d32a
tools/val_mm_EMM.py, val_mm_RMM.py, val_mm_NM.py):

- EMM: each of the 15 available subsets, inputs of missing modalities zeroed; mIoU^Avg and
  mIoU^E(p). ``tell_missing``: the authors call the model on the zeroed inputs without saying
  which are missing (``False``, the default of ``rmmss eval`` and the benchmark;
  RobustSeg/UMMSS@b08d32a:tools/val_mm_EMM.py); ``True`` (our option, what the ROS node does and
  what validation during training uses) also passes the availability mask. The benchmark runs
  both (protocol ``emm_told`` = always told).
- RMM: for each rate r in {0.25, 0.5, 0.75} and each of the 15 combinations of 0..3 *affected*
  modalities (never all four; val_mm_RMM.py:107-108), every element of the affected modalities'
  normalised inputs is zeroed with probability r (val_mm_RMM.py:124-125); all modalities are
  available. mIoU^Avg_RMM and mIoU^E_RMM(p) per rate, with ``p^#affected (1-p)^(4-#affected)``
  weights renormalised over the 15 (val_mm_RMM.py:294-324).
- NM: three levels; each applies salt-and-pepper (density 0.05/0.1/0.2) to R, D, E, L and then
  Gaussian noise (std 0.1/0.2/0.5) to R, D, L, on the normalised inputs, unclipped
  (val_mm_NM.py:100-118).

One pass over the data evaluates every condition on every batch: the loader is read once and
each condition has its own seeded generator, so results do not depend on which protocols run.
A model is any ``nn.Module`` or callable following ``model(inputs, available)`` whose result is a
``B x K x H x W`` tensor, an object with ``.logits`` or a dict with ``"logits"``.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from rmmss_core.data.corruptions import nm_gaussian, nm_salt_and_pepper, rmm_zero
from rmmss_core.eval.metrics import ConfusionMatrix, expected_miou
from rmmss_core.modalities import MODALITIES, NUM_MODALITIES, SUBSET_NAMES, SUBSETS, subset_mask
from rmmss_core.spec import PreprocessSpec

PROTOCOLS = ("emm", "emm_told", "rmm", "nm")
DEFAULT_PROTOCOLS = ("emm", "rmm", "nm")
RMM_RATES = (0.25, 0.5, 0.75)
NM_LEVELS = ("low", "mid", "high")
SALT_PEPPER_DENSITIES = (0.05, 0.1, 0.2)
GAUSSIAN_STDS = (0.1, 0.2, 0.5)
SALT_PEPPER_MODALITIES = (0, 1, 2, 3)      # R, D, E, L
GAUSSIAN_MODALITIES = (0, 1, 3)            # R, D, L
EXPECTED_PS = (0.2, 0.1, 0.05)
ALL = tuple(range(NUM_MODALITIES))
# the 15 combinations of 0..3 affected modalities, in the authors' order (by count, then lexicographic)
RMM_COMBINATIONS: tuple[tuple[int, ...], ...] = tuple(
    c for k in range(NUM_MODALITIES) for c in itertools.combinations(range(NUM_MODALITIES), k))


def combination_name(affected: tuple[int, ...]) -> str:
    """``()`` -> ``"none"``, ``(0, 3)`` -> ``"RL"``."""
    return "".join("RDEL"[i] for i in affected) or "none"


def expected_weights(counts: Sequence[int], p: float, num_modalities: int = NUM_MODALITIES) -> list[float]:
    """``p^k (1-p)^(M-k)`` for each count k (missing or affected modalities), renormalised to sum 1."""
    w = [p ** k * (1 - p) ** (num_modalities - k) for k in counts]
    total = sum(w)
    return [x / total for x in w]


@dataclass(frozen=True)
class Condition:
    """One evaluated setting: which modalities are available and which corruption is applied.

    ``corruption`` is None (EMM), ``"rmm"`` (rate ``level`` on the modalities ``corrupted``) or
    ``"nm"`` (level index ``level`` into NM_LEVELS: salt-and-pepper on SALT_PEPPER_MODALITIES, then
    Gaussian noise on GAUSSIAN_MODALITIES). ``tell``: the model is given the availability mask
    (otherwise it gets all modalities marked available, the missing ones' inputs zeroed).
    """

    protocol: str
    name: str
    subset: tuple[int, ...] = ALL
    corruption: str | None = None
    level: float = 0.0
    corrupted: tuple[int, ...] = ()
    tell: bool = True

    @property
    def key(self) -> str:
        return f"{self.protocol}/{self.name}"


def build_conditions(protocols: Iterable[str] = DEFAULT_PROTOCOLS, tell_missing: bool = True) -> list[Condition]:
    """The conditions of the named protocols, in a fixed order.

    ``emm``: the 15 subsets, the model told which are missing only if ``tell_missing`` (``True``
    here, for validation during training; ``rmmss eval`` and the benchmark pass ``False``, the
    authors' protocol, unless asked); ``emm_told``: the same, always told; ``rmm``: 3 rates x 15
    combinations; ``nm``: 3 levels.
    """
    protocols = [p.strip().lower() for p in protocols if p.strip()]
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise ValueError(f"unknown protocol(s) {bad or protocols}; choose from {PROTOCOLS}")
    out: list[Condition] = []
    for proto, tell in (("emm", tell_missing), ("emm_told", True)):
        if proto in protocols:
            out += [Condition(proto, name, subset, tell=tell) for name, subset in zip(SUBSET_NAMES, SUBSETS, strict=True)]
    if "rmm" in protocols:
        out += [Condition("rmm", f"{r:g}/{combination_name(c)}", ALL, "rmm", r, c)
                for r in RMM_RATES for c in RMM_COMBINATIONS]
    if "nm" in protocols:
        out += [Condition("nm", lv, ALL, "nm", float(i), ALL) for i, lv in enumerate(NM_LEVELS)]
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
        for proto in ("emm", "emm_told"):
            if proto not in by_proto:
                continue
            subsets = {c.name: self.confusion[c.key].summary() for c in by_proto[proto]}
            mious = {n: s["miou"] for n, s in subsets.items()}
            nan_mious = {n: s["miou_nanmean"] for n, s in subsets.items()}
            out[proto] = {"subsets": subsets, "told": by_proto[proto][0].tell,
                          "miou_avg": sum(mious.values()) / len(mious),
                          "miou_avg_nanmean": sum(nan_mious.values()) / len(nan_mious),
                          "miou_e": {f"{p:g}": expected_miou(mious, p) for p in EXPECTED_PS}}
        if "rmm" in by_proto:
            rmm: dict[str, Any] = {}
            for c in by_proto["rmm"]:
                rate, combo = c.name.split("/")
                rmm.setdefault(rate, {"combinations": {}})["combinations"][combo] = self.confusion[c.key].summary()
            for entry in rmm.values():
                combos = entry["combinations"]
                mious = [v["miou"] for v in combos.values()]
                counts = [0 if n == "none" else len(n) for n in combos]
                entry["miou_avg"] = sum(mious) / len(mious)
                entry["miou_e"] = {f"{p:g}": sum(w * m for w, m in zip(expected_weights(counts, p), mious, strict=True))
                                   for p in EXPECTED_PS}
            out["rmm"] = rmm
        if "nm" in by_proto:
            out["nm"] = {c.name: self.confusion[c.key].summary() for c in by_proto["nm"]}
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
        """The protocols' corruptions (``rmmss_core.data.corruptions``) on the normalised inputs."""
        out = dict(inputs)
        if cond.corruption == "rmm":
            for i in cond.corrupted:
                out[MODALITIES[i]] = rmm_zero(out[MODALITIES[i]], cond.level, generator=gen)
        elif cond.corruption == "nm":
            lv = int(cond.level)
            for i in SALT_PEPPER_MODALITIES:
                out[MODALITIES[i]] = nm_salt_and_pepper(out[MODALITIES[i]], SALT_PEPPER_DENSITIES[lv], generator=gen)
            for i in GAUSSIAN_MODALITIES:
                out[MODALITIES[i]] = nm_gaussian(out[MODALITIES[i]], GAUSSIAN_STDS[lv], generator=gen)
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
                    told = avail_ok if cond.tell else batch_avail[ok] if not ok.all() else batch_avail
                    logits = model_logits(model, x, told)
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
             protocols: Iterable[str] = DEFAULT_PROTOCOLS, device: str | torch.device = "cpu", seed: int = 0,
             max_samples: int | None = None, progress: bool = True, tell_missing: bool = True) -> dict[str, Any]:
    """Convenience: run the protocols and return ``EvalRun.summary()``."""
    ev = Evaluator(spec, build_conditions(protocols, tell_missing), device, seed)
    return ev.run(model, loader, max_samples, progress).summary()
