"""Read one raw sequence of a dataset in the DELIVER layout (synthetic world, DELIVER, MUSES).

Layout (see ``docs/ARCHITECTURE.md``)::

    img/<condition>/<split>/<sequence>/<frame>_rgb_front.png
    semantic/<condition>/<split>/<sequence>/<frame>_semantic_front.png   (channel 0 = class + 1)
    event/<condition>/<split>/<sequence>/<frame>_event_front.png          (encoded event frame)
    raw/<condition>/<split>/<sequence>/calib.json, <frame>_points.npy, <frame>_events.npz,
                                       <frame>_depth.npy

A :class:`RawSequence` lists the frames with their stamps and loads each sensor's raw data lazily.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from rmmss_core.classes import IGNORE_INDEX


@dataclass(frozen=True)
class RawSequence:
    """One sequence: ``root`` of the dataset, its ``condition/split/sequence`` and parsed calib."""

    root: Path
    condition: str
    split: str
    sequence: str
    camera: dict[str, Any]
    T_cam_lidar: np.ndarray
    frames: tuple[str, ...]
    stamps_s: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{self.condition}/{self.split}/{self.sequence}"

    def _path(self, folder: str, frame: str, suffix: str) -> Path:
        return self.root / folder / self.condition / self.split / self.sequence / f"{frame}{suffix}"

    def rgb(self, frame: str) -> np.ndarray:
        """``H x W x 3`` uint8."""
        return _read_png(self._path("img", frame, "_rgb_front.png"), channels=3)

    def label(self, frame: str) -> np.ndarray:
        """``H x W`` uint8 class ids, 255 = ignore (DELIVER encoding: channel 0 = class + 1)."""
        raw = _read_png(self._path("semantic", frame, "_semantic_front.png"), channels=None)
        raw = raw[..., 0] if raw.ndim == 3 else raw
        out = np.full(raw.shape, IGNORE_INDEX, dtype=np.uint8)
        valid = raw > 0
        out[valid] = (raw[valid].astype(np.int64) - 1).astype(np.uint8)
        return out

    def event_frame(self, frame: str) -> np.ndarray:
        """The encoded event image ``H x W x 3`` uint8 (as the dataset stores it)."""
        return _read_png(self._path("event", frame, "_event_front.png"), channels=3)

    def depth(self, frame: str) -> np.ndarray:
        """Metric depth ``H x W`` float32, NaN invalid."""
        return _read_npy(self._path("raw", frame, "_depth.npy")).astype(np.float32)

    def points(self, frame: str) -> np.ndarray:
        """LiDAR ``N x 4`` float32 (x, y, z, intensity) in the LiDAR frame."""
        pts = _read_npy(self._path("raw", frame, "_points.npy")).astype(np.float32)
        if pts.ndim != 2 or pts.shape[1] < 4:
            raise ValueError(f"{self._path('raw', frame, '_points.npy')}: expected N x 4, got {pts.shape}")
        return pts[:, :4]

    def events(self, frame: str) -> dict[str, np.ndarray]:
        """Raw events ``x, y, t, p`` (1-D arrays, t in seconds on the sequence clock)."""
        path = self._path("raw", frame, "_events.npz")
        try:
            with np.load(path) as z:
                ev = {k: np.asarray(z[k]) for k in ("x", "y", "t", "p")}
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: unreadable events file ({e})") from e
        return ev


def find_sequences(root: str | Path) -> list[tuple[str, str, str]]:
    """All ``(condition, split, sequence)`` under ``root/raw`` that have a calib.json, sorted."""
    root = Path(root)
    if not (root / "raw").is_dir():
        raise FileNotFoundError(f"{root} has no raw/ folder: not a dataset written by `rmmss synth`"
                                " (raw sensor data is needed to write a bag)")
    out = [tuple(p.parent.relative_to(root / "raw").parts) for p in (root / "raw").glob("*/*/*/calib.json")]
    return sorted(out)  # type: ignore[arg-type]


def open_sequence(root: str | Path, sequence: str | None = None) -> RawSequence:
    """Open ``condition/split/sequence`` (or a unique suffix of it; None = the first one)."""
    root = Path(root)
    found = find_sequences(root)
    if not found:
        raise FileNotFoundError(f"{root}/raw has no <condition>/<split>/<sequence>/calib.json")
    if sequence is None:
        cond, split, seq = found[0]
    else:
        matches = [f for f in found if "/".join(f) == sequence or "/".join(f).endswith("/" + sequence)]
        if len(matches) != 1:
            names = ", ".join("/".join(f) for f in found[:10])
            raise ValueError(f"sequence {sequence!r} matches {len(matches)} of {root}: {names}")
        cond, split, seq = matches[0]
    calib_path = root / "raw" / cond / split / seq / "calib.json"
    try:
        calib = json.loads(calib_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{calib_path}: unreadable calibration ({e})") from e
    camera, t_cam_lidar, frames, stamps = parse_calib(calib, calib_path)
    return RawSequence(root, cond, split, seq, camera, t_cam_lidar, frames, stamps)


def parse_calib(calib: dict[str, Any], where: Path | str) -> tuple[dict, np.ndarray, tuple, tuple]:
    """``(camera dict with width/height/K[/D/P], T_cam_lidar 4x4, frame names, stamps in s)``."""
    try:
        camera = dict(calib["camera"])
        camera["K"] = np.asarray(camera.get("K", camera.get("k")), dtype=np.float64).reshape(3, 3)
        for key in ("width", "height"):
            camera[key] = int(camera[key])
        t = np.asarray(calib["T_cam_lidar"], dtype=np.float64).reshape(4, 4)
        frames_field = calib.get("frames", calib.get("frame_stamps"))
        if isinstance(frames_field, dict):
            names = tuple(sorted(frames_field))
            stamps = tuple(float(frames_field[n]) for n in names)
        elif frames_field and isinstance(frames_field[0], dict):
            names = tuple(str(f.get("frame", f.get("name"))) for f in frames_field)
            stamps = tuple(float(f.get("stamp", f.get("t", f.get("time")))) for f in frames_field)
        else:
            names = tuple(str(n) for n in frames_field)
            stamps = tuple(float(s) for s in calib["stamps"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{where}: calibration lacks camera/T_cam_lidar/frames ({e!r})") from e
    if len(names) != len(stamps) or not names:
        raise ValueError(f"{where}: {len(names)} frames but {len(stamps)} stamps")
    if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
        raise ValueError(f"{where}: frame stamps are not strictly increasing")
    return camera, t, names, stamps


def _read_png(path: Path, channels: int | None) -> np.ndarray:
    try:
        with PILImage.open(path) as im:
            if channels == 3:
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable image ({e})") from e
    return arr


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable array ({e})") from e
