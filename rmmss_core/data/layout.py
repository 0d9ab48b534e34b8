"""DELIVER's file layout, shared by the DELIVER reader and the synthetic world writer.

    <root>/{img,hha,depth,event,lidar,semantic}/<condition>/<split>/<sequence>/<frame>_<suffix>_front.png

e.g. ``img/cloud/train/MAP_1_point0/045050_rgb_front.png`` and
``semantic/cloud/train/MAP_1_point0/045050_semantic_front.png``. Real DELIVER stores the
"depth" input as HHA in ``hha/`` (suffix ``_depth``); the synthetic world stores metric-normalised
depth in ``depth/``. Raw sensor data of the synthetic world lives in
``raw/<condition>/<split>/<sequence>/`` (``calib.json``, ``<frame>_points.npy``,
``<frame>_events.npz``, ``<frame>_depth.npy``). ``rmmss_dataset.json`` at the root describes a
written dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONDITIONS: tuple[str, ...] = ("cloud", "fog", "night", "rain", "sun")
SPLITS: tuple[str, ...] = ("train", "val", "test")
FAILURE_CASES: tuple[str, ...] = ("motionblur", "overexposure", "underexposure", "lidarjitter",
                                  "eventlowres")
DATASET_INFO = "rmmss_dataset.json"
CALIB_FILE = "calib.json"

# modality -> (file suffix); folder is the suffix's folder below
SUFFIX: dict[str, str] = {"rgb": "rgb", "depth": "depth", "event": "event", "lidar": "lidar",
                          "semantic": "semantic"}
FOLDER: dict[str, str] = {"rgb": "img", "depth": "hha", "event": "event", "lidar": "lidar",
                          "semantic": "semantic"}
DEPTH_FOLDERS: tuple[str, ...] = ("hha", "depth")
RAW_KINDS: dict[str, str] = {"points": "_points.npy", "events": "_events.npz", "depth": "_depth.npy"}


@dataclass(frozen=True, order=True)
class FrameKey:
    """One frame: ``<condition>/<split>/<sequence>/<frame>``."""

    condition: str
    split: str
    sequence: str
    frame: str

    @property
    def name(self) -> str:
        return f"{self.condition}/{self.split}/{self.sequence}/{self.frame}"


def folder_for(modality: str, depth_folder: str = "hha") -> str:
    """Top-level folder of a modality (``"rgb"`` -> ``img``; ``"depth"`` -> ``depth_folder``)."""
    if modality not in FOLDER:
        raise KeyError(f"unknown modality {modality!r}; known: {sorted(FOLDER)}")
    if modality == "depth":
        if depth_folder not in DEPTH_FOLDERS:
            raise ValueError(f"depth_folder must be one of {DEPTH_FOLDERS}, got {depth_folder!r}")
        return depth_folder
    return FOLDER[modality]


def frame_path(root: str | Path, key: FrameKey, modality: str, depth_folder: str = "hha") -> Path:
    """Path of one modality's PNG (``modality`` in rgb, depth, event, lidar, semantic)."""
    return (Path(root) / folder_for(modality, depth_folder) / key.condition / key.split / key.sequence
            / f"{key.frame}_{SUFFIX[modality]}_front.png")


def raw_dir(root: str | Path, key: FrameKey) -> Path:
    """``raw/<condition>/<split>/<sequence>/`` of the synthetic world's raw sensor data."""
    return Path(root) / "raw" / key.condition / key.split / key.sequence


def raw_path(root: str | Path, key: FrameKey, kind: str) -> Path:
    """Raw file of a frame: ``kind`` in points, events, depth, calib (calib is per sequence)."""
    if kind == "calib":
        return raw_dir(root, key) / CALIB_FILE
    if kind not in RAW_KINDS:
        raise KeyError(f"unknown raw kind {kind!r}; known: {sorted(RAW_KINDS) + ['calib']}")
    return raw_dir(root, key) / f"{key.frame}{RAW_KINDS[kind]}"


def parse_frame_path(path: str | Path) -> tuple[str, FrameKey]:
    """``.../<folder>/<condition>/<split>/<sequence>/<frame>_<suffix>_front.png`` -> (modality, key)."""
    p = Path(path)
    parts = p.parts
    stem = p.name
    if len(parts) < 5 or not stem.endswith("_front.png") or stem.count("_") < 2:
        raise ValueError(f"{path} does not follow DELIVER naming "
                         "<folder>/<condition>/<split>/<sequence>/<frame>_<modality>_front.png")
    frame, suffix = stem[: -len("_front.png")].rsplit("_", 1)
    modality = {v: k for k, v in SUFFIX.items()}.get(suffix)
    if modality is None:
        raise ValueError(f"{path}: unknown modality suffix {suffix!r}; known {sorted(SUFFIX.values())}")
    return modality, FrameKey(parts[-4], parts[-3], parts[-2], frame)


def list_frames(root: str | Path, split: str, conditions: tuple[str, ...] | None = None,
                modality: str = "semantic", depth_folder: str = "hha") -> list[FrameKey]:
    """Sorted frames of ``split`` that have a ``modality`` file (default: a label), per condition."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base = root / folder_for(modality, depth_folder)
    if not base.is_dir():
        raise FileNotFoundError(f"{base} does not exist: {root} is not a DELIVER-layout dataset")
    conds = list_conditions(root, modality, depth_folder) if conditions is None else list(conditions)
    suffix = f"_{SUFFIX[modality]}_front.png"
    keys = []
    for cond in conds:
        for f in (base / cond / split).glob(f"*/*{suffix}"):
            keys.append(FrameKey(cond, split, f.parent.name, f.name[: -len(suffix)]))
    return sorted(keys)


def list_conditions(root: str | Path, modality: str = "semantic", depth_folder: str = "hha") -> list[str]:
    """Condition folders present under a modality's folder (sorted)."""
    base = Path(root) / folder_for(modality, depth_folder)
    return sorted(d.name for d in base.iterdir() if d.is_dir()) if base.is_dir() else []


def list_splits(root: str | Path, modality: str = "semantic", depth_folder: str = "hha") -> list[str]:
    """Splits present in any condition (in SPLITS order)."""
    base = Path(root) / folder_for(modality, depth_folder)
    present = {s.name for c in list_conditions(root, modality, depth_folder)
               for s in (base / c).iterdir() if s.is_dir()}
    return [s for s in SPLITS if s in present]


def matches_failure_case(key: FrameKey, case: str) -> bool:
    """A frame belongs to a sensor-failure case when the case name is part of its sequence name
    (as the reference DELIVER loader selects them: substring of the path)."""
    if case not in FAILURE_CASES:
        raise ValueError(f"unknown failure case {case!r}; known: {FAILURE_CASES}")
    return case in key.sequence
