"""From a resolved ``TrainConfig`` to a trained run: checks, spec, datasets, validation, recipe, ``fit``.

Used by ``rmmss train`` and by the robustness benchmark. Before anything expensive,
``train_recipe`` checks the run folder (an existing run is never replaced unless ``resume`` or
``overwrite``; a file in the way or a folder without write permission is one clear error), the
settings and the ``--teacher``/``--robust`` checkpoints (``requirements``). A run that fails before
its first checkpoint leaves no folder behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from rmmss_core.spec import DEFAULT_RESIZE_POLICY, PreprocessSpec
from rmmss_core.train.config import TrainConfig
from rmmss_core.train.data import PartiallyLabeled
from rmmss_core.train.distributed import resolve_device
from rmmss_core.train.recipes import build_recipe
from rmmss_core.train.trainer import TrainResult, fit

log = logging.getLogger("rmmss.train")


def dataset_spec(cfg: TrainConfig) -> PreprocessSpec:
    """The dataset's own spec (``rmmss_dataset.json``: its encodings) or the class set's, at
    ``data.input_size``, with the resize policy of a new spec (letterbox: the model being trained
    is new, whatever policy the dataset's writer recorded)."""
    from rmmss_core.data.deliver import read_dataset_info
    info = read_dataset_info(cfg.data.root) if cfg.data.root else {}
    spec = PreprocessSpec.from_dict(info["spec"]) if "spec" in info else PreprocessSpec.for_class_set(cfg.data.class_set)
    return dataclasses.replace(spec, input_size=tuple(cfg.data.input_size), resize_policy=DEFAULT_RESIZE_POLICY)


def build_train_set(cfg: TrainConfig, spec: PreprocessSpec) -> Dataset:
    """The training split with paired augmentation; a labeled fraction below 1 hides labels."""
    from rmmss_core.data import build_dataset
    from rmmss_core.data.augment import train_transform
    if not cfg.data.root:
        raise ValueError("no training data: pass --data DIR (or data.root=DIR)")
    transform = train_transform(tuple(cfg.data.input_size), lidar=spec.lidar) if cfg.data.augment else None
    data = build_dataset(cfg.data.dataset, root=cfg.data.root, split=cfg.data.train_split, spec=spec,
                         transform=transform, **_sensors(cfg))
    if cfg.data.labeled_fraction < 1.0:
        data = PartiallyLabeled(data, cfg.data.labeled_fraction, cfg.seed)
    return data


def build_validate(cfg: TrainConfig, spec: PreprocessSpec) -> Callable[[torch.nn.Module], Mapping[str, float]]:
    """``validate(model) -> {miou_avg, miou_full, miou_e0.1, ...}`` (DELIVER convention; ``*_present``:
    over the classes present in the frames) over the EMM subsets of
    ``cfg.val_subsets`` (all 15 by default) on the first ``data.val_frames`` validation frames."""
    from rmmss_core.data import build_dataset
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.modalities import parse_subset, subset_name
    val = build_dataset(cfg.data.dataset, root=cfg.data.root, split=cfg.data.val_split, spec=spec,
                        **_sensors(cfg))
    if cfg.data.val_frames:
        val = Subset(val, range(min(cfg.data.val_frames, len(val))))
    conditions = build_conditions(["emm"])
    if cfg.val_subsets:
        wanted = {subset_name(parse_subset(s)) for s in cfg.val_subsets}
        conditions = [c for c in conditions if c.name in wanted]
    device = resolve_device(cfg.device)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        from rmmss_core.eval.metrics import expected_miou
        loader = DataLoader(val, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers)
        evaluator = Evaluator(spec, conditions, device=device, seed=cfg.seed)
        run = evaluator.run(model, loader, progress=False)
        per = {c.name: run.confusion[c.key].summary() for c in conditions}
        out = {"miou_avg": sum(s["miou"] for s in per.values()) / len(per),
               "miou_avg_nanmean": sum(s["miou_nanmean"] for s in per.values()) / len(per),
               "miou_avg_present": sum(s["miou_present"] for s in per.values()) / len(per)}
        if "RDEL" in per:
            out["miou_full"] = per["RDEL"]["miou"]
            out["miou_full_present"] = per["RDEL"]["miou_present"]
        if len(per) == 15:
            out.update({f"miou_e{p:g}": expected_miou({k: s["miou"] for k, s in per.items()}, p)
                        for p in (0.2, 0.1, 0.05)})
        return out

    return validate


def _sensors(cfg: TrainConfig) -> dict:
    return {"modalities": tuple(cfg.data.modalities)} if cfg.data.modalities else {}


# what a run folder holds; their presence means "a run is here"
RUN_FILES = ("last.pt", "best.pt", "result.json", "config.yaml", "spec.json")
RUN_ENTRIES = (*RUN_FILES, "tb", "train.log")


PREVIOUS_RUN = ".previous-run"  # where --overwrite parks the old run until the new one has a checkpoint


def prepare_run_dir(out: str | Path, resume: bool = False, overwrite: bool = False) -> bool:
    """Check the run folder before any work; returns whether it must be created.

    Raises ValueError when ``out`` holds a run and neither ``resume`` nor ``overwrite`` is given,
    when both are, when a file is in the way or the folder cannot be written. Deletes nothing:
    ``overwrite`` is carried out by :func:`park_previous_run` once every other check has passed.
    """
    from rmmss_core.cli.checks import check_out_dir
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: continue the run or replace it")
    check_out_dir(out)
    present = [f for f in RUN_FILES if (out / f).exists()]
    if present and not (resume or overwrite):
        at = ""
        if (out / "last.pt").is_file():
            with contextlib.suppress(Exception):
                from rmmss_core.train.checkpoint import load_training_checkpoint
                at = f" (last.pt at step {load_training_checkpoint(out / 'last.pt')['step']})"
        raise ValueError(f"--out {out} already holds a run{at}: {', '.join(present)}; pass --resume to "
                         "continue it, --overwrite to replace it, or choose a new folder")
    return not out.exists()


def check_sources_outside(cfg: TrainConfig, out: Path) -> None:
    """--overwrite replaces ``out``: a --teacher/--robust inside it would be replaced while in use."""
    for role in ("teacher", "robust"):
        src = getattr(cfg, role)
        if src and out.resolve() in Path(src).resolve().parents:
            raise ValueError(f"--{role} {src} lies inside --out {out}, which --overwrite replaces; copy it "
                             "elsewhere or choose another --out")


def park_previous_run(out: Path) -> Path | None:
    """Move the previous run's files into ``out/.previous-run`` (rank 0); returns that folder.

    The old run comes back (:func:`restore_previous_run`) if the new one fails before its first
    checkpoint and is deleted (:func:`drop_previous_run`) once the new one has one.
    """
    present = [n for n in RUN_ENTRIES if (out / n).exists()]
    if not present or os.environ.get("RANK", "0") != "0":
        return None
    log.warning("--overwrite: replacing the run in %s (kept in %s until the new run's first checkpoint)",
                out, out / PREVIOUS_RUN)
    park = out / PREVIOUS_RUN
    shutil.rmtree(park, ignore_errors=True)
    park.mkdir()
    for name in present:
        os.replace(out / name, park / name)
    return park


def restore_previous_run(out: Path, park: Path | None) -> None:
    if park is None or not park.is_dir():
        return
    for name in RUN_ENTRIES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in park.iterdir():
        os.replace(p, out / p.name)
    park.rmdir()
    log.warning("the new run failed before its first checkpoint: the previous run in %s is back", out)


def drop_previous_run(park: Path | None) -> None:
    if park is not None:
        shutil.rmtree(park, ignore_errors=True)


def check_run(cfg: TrainConfig) -> dict:
    """Settings and sources (``requirements``) before any data is read; returns the sources."""
    from rmmss_core.data import DATASETS
    from rmmss_core.train.requirements import check_settings, check_sources
    if cfg.data.dataset not in DATASETS:
        raise ValueError(f"data.dataset={cfg.data.dataset!r} is not a dataset; valid: {sorted(DATASETS)}")
    root = Path(cfg.data.root) if cfg.data.root else None
    if root is not None and not root.is_dir():
        raise ValueError(f"--data {root}: {'is a file, not a dataset folder' if root.exists() else 'does not exist'}")
    check_settings(cfg)
    sources = check_sources(cfg)
    check_settings(cfg, sources)
    return sources


def train_recipe(cfg: TrainConfig, out: str | Path, resume: bool = False,
                 should_stop: Callable[[int], bool] | None = None, overwrite: bool = False) -> TrainResult:
    """Check, then build everything ``cfg`` names and train it into ``out``.

    ``resume``: continue ``out/last.pt``; ``overwrite``: replace a run already in ``out``. Without
    either, a folder that holds a run is refused (ValueError) before any work.
    """
    out = Path(out)
    created = prepare_run_dir(out, resume=resume, overwrite=overwrite)
    check_run(cfg)
    park = None
    if overwrite:
        check_sources_outside(cfg, out)
        park = park_previous_run(out)
    try:
        spec = dataset_spec(cfg)
        train_set = build_train_set(cfg, spec)
        validate = build_validate(cfg, spec)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every resume
        recipe = build_recipe(cfg.recipe, cfg, spec)
        log.info("recipe %s: %d trainable / %d parameters, %d training frames%s", cfg.recipe,
                 sum(p.numel() for p in recipe.parameters() if p.requires_grad),
                 sum(p.numel() for p in recipe.output_model().parameters()), len(train_set),
                 f", sensors {list(cfg.data.modalities)} only" if cfg.data.modalities else "")
        result = fit(cfg, recipe, train_set, out, spec=spec, validate=validate, resume=resume,
                     should_stop=should_stop)
    except BaseException:
        # a run that never reached its first checkpoint leaves nothing behind (and gives back the
        # run that --overwrite was about to replace)
        if not (out / "last.pt").exists() and os.environ.get("RANK", "0") == "0":
            from rmmss_core.train.logger import detach_text_log
            detach_text_log(out)
            if created:
                shutil.rmtree(out, ignore_errors=True)
            else:
                restore_previous_run(out, park)
        elif park is not None:
            drop_previous_run(park)
        raise
    drop_previous_run(park)
    _record_sensors(cfg, result)
    return result


def _record_sensors(cfg: TrainConfig, result: TrainResult) -> None:
    """result.json says which sensors the run read and which checkpoints it learnt from."""
    import json

    from rmmss_core.modalities import MODALITIES
    from rmmss_core.utils.io import atomic_write_json
    path = result.out / "result.json"
    if result.interrupted or not path.is_file() or os.environ.get("RANK", "0") != "0":
        return
    data = json.loads(path.read_text())
    data["data_modalities"] = list(cfg.data.modalities or MODALITIES)
    data["sources"] = {r: getattr(cfg, r) for r in ("teacher", "robust") if getattr(cfg, r)}
    atomic_write_json(path, data)
