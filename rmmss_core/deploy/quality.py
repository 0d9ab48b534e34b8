"""The expected quality of each sensor subset, measured by ``rmmss eval`` and kept with the model.

A deployed model serves every one of the 15 sensor subsets; how good its masks are with the
sensors that are left is what ``rmmss eval``'s EMM protocol measures (mIoU per subset). This
module turns an evaluation into a :class:`QualityTable` and stores it with the model, so the ROS
node can publish, with every mask, the expected mIoU of the subset it just used
(rmmss_ros.outputs.quality formats it).

Where the table lives:

- a ``.pt`` checkpoint: the key ``expected_quality`` (the checkpoint is rewritten atomically,
  everything else unchanged; ``load_model`` ignores the key);
- an ``.onnx`` file: the JSON file beside it, ``<stem>.quality.json`` (written atomically), else
  the metadata entry ``rmmss.quality`` that ``rmmss export`` copies from the checkpoint's table.

Protocol: the node tells the model which sensors are missing, which is EMM's ``emm_told``
condition; a table made from plain ``emm`` (the authors' protocol: missing inputs zeroed, the
model not told) is stored with ``protocol: "emm"`` and a note, since it can differ from what the
node sees. ``emm_told`` is preferred whenever the evaluation ran it.

Table (``to_dict``): ``{"format": "rmmss-quality-v1", "miou": {subset: fraction, ... all 15},
"protocol", "data": {"dataset", "data", "split", "samples", ...}, "measured": ISO 8601 UTC,
"source": checkpoint file name, "note"}``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmmss_core.modalities import SUBSET_NAMES
from rmmss_core.utils.io import atomic_torch_save, atomic_write_json, load_checkpoint

FORMAT = "rmmss-quality-v1"
CHECKPOINT_KEY = "expected_quality"
ONNX_META_KEY = "rmmss.quality"
SIDECAR_SUFFIX = ".quality.json"
PROTOCOLS = ("emm_told", "emm")  # in order of preference: the node tells the model
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class QualityTableError(ValueError):
    """A stored quality table is malformed (the text names the file and what is wrong)."""


@dataclass(frozen=True)
class QualityTable:
    """mIoU (fraction in [0, 1]) per sensor subset name (``"RDEL"``, ``"RD"``, ... all 15)."""

    miou: dict[str, float]
    protocol: str = "emm_told"
    data: dict[str, Any] = field(default_factory=dict)
    measured: str = ""
    source: str = ""
    note: str = ""

    def __post_init__(self):
        missing = [s for s in SUBSET_NAMES if s not in self.miou]
        unknown = [s for s in self.miou if s not in SUBSET_NAMES]
        if missing or unknown:
            raise QualityTableError(f"quality table needs mIoU for all 15 subsets {list(SUBSET_NAMES)}; "
                                    f"missing {missing}, unknown {unknown}")
        bad = {s: v for s, v in self.miou.items()
               if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not 0 <= v <= 1}
        if bad:
            raise QualityTableError(f"quality table mIoU must be fractions in [0, 1]; bad: {bad}")
        if self.protocol not in PROTOCOLS:
            raise QualityTableError(f"quality table protocol must be one of {PROTOCOLS}, got {self.protocol!r}")

    def get(self, subset: str) -> float:
        return float(self.miou[subset])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "miou": {s: float(self.miou[s]) for s in SUBSET_NAMES},
                "protocol": self.protocol, "data": dict(self.data), "measured": self.measured,
                "source": self.source, "note": self.note}

    @classmethod
    def from_dict(cls, d: Any, where: str = "quality table") -> QualityTable:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            fmt = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise QualityTableError(f"{where}: expected format {FORMAT!r}, got {fmt!r}")
        if not isinstance(d.get("miou"), Mapping):
            raise QualityTableError(f"{where}: 'miou' must map subset names to fractions")
        try:
            return cls(miou=dict(d["miou"]), protocol=str(d.get("protocol", "emm_told")),
                       data=dict(d.get("data") or {}), measured=str(d.get("measured", "")),
                       source=str(d.get("source", "")), note=str(d.get("note", "")))
        except QualityTableError as e:
            raise QualityTableError(f"{where}: {e}") from None


def table_from_eval(summary: Mapping[str, Any], meta: Mapping[str, Any], source: str = "",
                    now: _dt.datetime | None = None) -> QualityTable:
    """A table from one checkpoint's ``rmmss eval`` summary (``EvalRun.summary()``) and the run's
    meta (dataset, data, split, ...). Prefers ``emm_told``; ValueError when neither EMM ran."""
    proto = next((p for p in PROTOCOLS if p in summary), None)
    if proto is None:
        raise ValueError("storing the expected quality needs the EMM protocol: add emm_told (what the node "
                         "does: the model is told which sensors are missing) to --protocols")
    subsets = summary[proto]["subsets"]
    if proto == "emm" and summary[proto].get("told"):  # rmmss eval --tell-missing: the node's condition
        proto = "emm_told"
    note = "" if proto == "emm_told" else (
        "measured with the authors' EMM protocol (missing inputs zeroed, the model not told); the node tells "
        "the model which sensors are missing: evaluate with --protocols emm_told for the node's numbers")
    data = {k: v for k, v in meta.items()
            if k in ("dataset", "data", "split", "max_samples", "modalities", "left_out", "authors_protocol")}
    data["samples"] = summary.get("samples")
    when = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0).isoformat()
    return QualityTable(miou={s: float(subsets[s]["miou"]) for s in SUBSET_NAMES}, protocol=proto,
                        data=data, measured=when, source=source, note=note)


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.quality.json``."""
    p = Path(onnx_path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def store_quality(model_path: str | os.PathLike, table: QualityTable) -> Path:
    """Store ``table`` with the model (see the module docstring); returns the file written.
    Raises CheckpointError / FileNotFoundError naming the model, ValueError for another suffix."""
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist")
        out = sidecar_path(path)
        atomic_write_json(out, table.to_dict())
        return out
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"model {path}: expected a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) or an .onnx file")
    ckpt = load_checkpoint(path)  # CheckpointError naming the file
    ckpt[CHECKPOINT_KEY] = table.to_dict()
    atomic_torch_save(ckpt, path)
    return path


def quality_from_checkpoint(ckpt: Mapping[str, Any], where: str = "checkpoint") -> QualityTable | None:
    """The table in a loaded checkpoint dict, or None; QualityTableError if it is malformed."""
    d = ckpt.get(CHECKPOINT_KEY)
    return None if d is None else QualityTable.from_dict(d, f"{where} [{CHECKPOINT_KEY}]")


def load_quality(model_path: str | os.PathLike) -> QualityTable | None:
    """The table stored with a model (``.pt`` or ``.onnx``), or None when it has none.

    Raises FileNotFoundError / CheckpointError naming a missing or corrupt model file, and
    QualityTableError naming the file whose table is malformed.
    """
    path = Path(model_path)
    if path.suffix.lower() in ONNX_SUFFIXES:
        side = sidecar_path(path)
        if side.is_file():
            try:
                d = json.loads(side.read_text())
            except (OSError, ValueError) as e:
                raise QualityTableError(f"{side}: not a readable JSON quality table ({e})") from e
            return QualityTable.from_dict(d, str(side))
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist")
        meta = _onnx_metadata(path)
        if ONNX_META_KEY not in meta:
            return None
        try:
            d = json.loads(meta[ONNX_META_KEY])
        except ValueError as e:
            raise QualityTableError(f"{path} metadata {ONNX_META_KEY}: not JSON ({e})") from e
        return QualityTable.from_dict(d, f"{path} metadata {ONNX_META_KEY}")
    return quality_from_checkpoint(load_checkpoint(path), f"checkpoint {path}")


def _onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (the graph is parsed, external weights are not loaded)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any parse error: name the file
        raise QualityTableError(f"{path}: not a readable ONNX file ({e})") from e
    return {p.key: p.value for p in proto.metadata_props}


def check_store_request(protocols: str, targets: list[str] | None = None,
                        checkpoints: list[str] | None = None) -> None:
    """Before any work: ``rmmss eval --store-quality [MODEL ...]`` needs an EMM protocol in
    ``--protocols``; extra target files (an ``.onnx`` exported from the checkpoint, another copy of
    it) need exactly one ``--checkpoint``, must exist, and an ONNX file must predict its classes."""
    names = {p.strip().lower() for p in protocols.split(",")}
    if not names & set(PROTOCOLS):
        raise ValueError(f"--store-quality needs the EMM protocol, but --protocols is {protocols!r}: "
                         "add emm_told (what the node does: the model is told which sensors are missing)")
    if not targets:
        return
    if len(checkpoints or []) != 1:
        raise ValueError("--store-quality MODEL ... stores one checkpoint's table: give exactly one --checkpoint")
    for t in targets:
        path = Path(t)
        if not path.is_file():
            raise ValueError(f"--store-quality {t}: no such file")
        if path.suffix.lower() not in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES:
            raise ValueError(f"--store-quality {t}: expected an .onnx file or a checkpoint")
        if path.suffix.lower() in ONNX_SUFFIXES:
            from rmmss_core.spec import PreprocessSpec

            ckpt = load_checkpoint(checkpoints[0])
            mine = tuple(PreprocessSpec.from_dict(ckpt["spec"]).class_names)
            spec = _onnx_metadata(path).get("rmmss.spec")
            if spec is None:
                raise ValueError(f"--store-quality {t}: not exported by rmmss export (no rmmss.spec metadata)")
            theirs = tuple(PreprocessSpec.from_json(spec).class_names)
            if mine != theirs:
                raise ValueError(f"--store-quality {t}: predicts {len(theirs)} classes {theirs[:3]}..., the "
                                 f"checkpoint {checkpoints[0]} {len(mine)} {mine[:3]}...: not exported from it")


def store_eval_tables(checkpoints: list[str], names: list[str], results: Mapping[str, Mapping[str, Any]],
                      meta: Mapping[str, Any], targets: list[str] | None = None) -> list[Path]:
    """``rmmss eval --store-quality``: each evaluated checkpoint gets its own table (atomically);
    ``targets`` (one checkpoint evaluated): the same table also goes to those files (an ONNX file
    gets the JSON file beside it)."""
    written = []
    for path, name in zip(checkpoints, names, strict=True):
        table = table_from_eval(results[name], meta, source=Path(path).name)
        written.append(store_quality(path, table))
        for t in targets or []:
            written.append(store_quality(t, table))
    return written
