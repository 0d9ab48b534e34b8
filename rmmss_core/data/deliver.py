"""DELIVER reader (real dataset and the synthetic world written in its layout).

As the DELIVER benchmark loads it: RGB from ``img/``; "depth" from ``hha/`` (real DELIVER) or
``depth/`` (synthetic, metric-normalised); ``event/``, ``lidar/``; 1-channel images repeated to 3;
event images resized to the label size with nearest; label = channel 0 of the semantic PNG with raw
1..K -> 0..K-1 and raw 0 / 255 -> 255 (ignore). Encoded images are ``png / 255``; normalisation and
input size come from the spec (default: ImageNet mean/std for RGB, identity for the others).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rmmss_core.data.image_io import DataError, read_channel0, read_png
from rmmss_core.data.layout import (
    DATASET_INFO,
    FAILURE_CASES,
    FrameKey,
    folder_for,
    frame_path,
    list_frames,
    matches_failure_case,
)
from rmmss_core.data.sample import Transform, make_sample
from rmmss_core.encodings.common import from_uint8
from rmmss_core.modalities import MODALITIES
from rmmss_core.preprocess import resize
from rmmss_core.spec import PreprocessSpec


def read_dataset_info(root: str | Path) -> dict[str, Any]:
    """``rmmss_dataset.json`` at the root (``{}`` if absent). Keys read here: ``depth_folder``
    ("hha" / "depth") and ``spec`` (a PreprocessSpec dict) as defaults for the reader."""
    p = Path(root) / DATASET_INFO
    if not p.is_file():
        return {}
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: unreadable dataset description ({e})") from e
    if not isinstance(info, dict):
        raise DataError(f"{p}: expected a JSON object, got {type(info).__name__}")
    return info


def remap_deliver_label(raw: np.ndarray, num_classes: int, path: str | Path = "label") -> np.ndarray:
    """DELIVER raw ids ``H x W`` uint8: 1..K -> 0..K-1, 0 and 255 -> 255; any other value -> DataError."""
    raw = np.asarray(raw)
    bad = (raw > num_classes) & (raw != 255)
    if bad.any():
        vals = np.unique(raw[bad])[:10].tolist()
        raise DataError(f"{path}: unknown label value(s) {vals}; DELIVER labels are 0..{num_classes} or 255")
    lut = np.full(256, 255, dtype=np.uint8)
    lut[1:num_classes + 1] = np.arange(num_classes, dtype=np.uint8)
    return lut[raw.astype(np.uint8)]


def read_encoded(path: Path) -> np.ndarray:
    """An encoded-modality PNG -> float32 ``H x W x 3`` = png / 255 (1 channel repeated, alpha dropped)."""
    a = read_png(path)
    if a.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit image, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return from_uint8(np.ascontiguousarray(a[:, :, :3]))


class DeliverDataset(Dataset):
    """Frames of ``split`` under ``root`` in DELIVER layout; samples as in ``rmmss_core.data.sample``.

    conditions: subset of the condition folders (None = all). cases: failure cases
    (motionblur, ...) selecting sequences whose name contains the case (None = all).
    modalities: which to load; the others are unavailable in every sample. A requested modality
    whose folder is absent is a DataError naming the folder (never silently blank).
    missing_ok: a missing per-frame file makes that modality unavailable instead of an error.
    resize_to_input: resize to ``spec.input_size`` (else native / transform size).
    """

    def __init__(self, root: str | Path, split: str = "train", conditions: Sequence[str] | None = None,
                 cases: Sequence[str] | None = None, spec: PreprocessSpec | None = None,
                 transform: Transform | None = None, depth_folder: str | None = None,
                 modalities: Sequence[str] = MODALITIES, missing_ok: bool = False,
                 resize_to_input: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root does not exist")
        info = read_dataset_info(self.root)
        if depth_folder is None:
            depth_folder = info.get("depth_folder") or (
                "depth" if not (self.root / "hha").is_dir() and (self.root / "depth").is_dir() else "hha")
        self.depth_folder = depth_folder
        if spec is None:
            spec = PreprocessSpec.from_dict(info["spec"]) if "spec" in info else PreprocessSpec()
        self.spec = spec
        bad = [m for m in modalities if m not in MODALITIES]
        if bad:
            raise ValueError(f"unknown modalities {bad}; expected some of {MODALITIES}")
        absent = [m for m in MODALITIES if m in modalities and not (self.root / folder_for(m, depth_folder)).is_dir()]
        if absent:
            rest = [m for m in MODALITIES if m in modalities and m not in absent]
            folders = ", ".join(str(self.root / folder_for(m, depth_folder)) for m in absent)
            raise DataError(f"{folders}: the {'/'.join(absent)} folder is missing; restore it, or use fewer "
                            f"sensors on purpose (rmmss train: data.modalities=[{','.join(rest)}]; rmmss eval: "
                            f"--modalities {''.join(m[0].upper() for m in rest) or 'R'})")
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        self.transform, self.missing_ok, self.resize_to_input = transform, missing_ok, resize_to_input
        frames = list_frames(self.root, split, tuple(conditions) if conditions else None)
        if cases:
            unknown = [c for c in cases if c not in FAILURE_CASES]
            if unknown:
                raise ValueError(f"unknown failure case(s) {unknown}; known: {FAILURE_CASES}")
            frames = [k for k in frames if any(matches_failure_case(k, c) for c in cases)]
        if not frames:
            raise DataError(f"{self.root}: no labelled frames for split {split!r}, conditions "
                            f"{conditions or 'all'}, cases {cases or 'all'}")
        self.frames: list[FrameKey] = frames

    def __len__(self) -> int:
        return len(self.frames)

    def path(self, index: int, modality: str) -> Path:
        return frame_path(self.root, self.frames[index], modality, self.depth_folder)

    def load_encoded(self, index: int) -> tuple[dict[str, np.ndarray | None], np.ndarray]:
        """Encoded images ``H x W x 3`` in [0, 1] (None = unavailable) and the remapped label ``H x W``."""
        label_path = self.path(index, "semantic")
        label = remap_deliver_label(read_channel0(label_path), self.spec.num_classes, label_path)
        H, W = label.shape
        encoded: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
        for m in self.modalities:
            p = self.path(index, m)
            if self.missing_ok and not p.is_file():
                continue
            img = read_encoded(p)
            if img.shape[:2] != (H, W):
                if m != "event":
                    raise DataError(f"{p}: size {img.shape[1]} x {img.shape[0]} does not match the label "
                                    f"{label_path.name} ({W} x {H})")
                chw = resize(torch.from_numpy(img).permute(2, 0, 1), (H, W), "event")
                img = chw.permute(1, 2, 0).contiguous().numpy()
            encoded[m] = img
        return encoded, label

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.frames[index]
        try:
            encoded, label = self.load_encoded(index)
            return make_sample(encoded, label, key.name, self.spec, self.transform, self.resize_to_input)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - name the frame instead of a bare worker traceback
            raise DataError(f"{self.root} frame {key.name}: {type(e).__name__}: {e}") from e
