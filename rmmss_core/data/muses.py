"""MUSES reader: frame camera, LiDAR projected from raw ``.bin`` and events accumulated from ``.h5``.

Layout (split in train/val/test, weather in clear/fog/rain/snow, time in day/night)::

    frame_camera/<split>/<weather>/<time>/<name>_frame_camera.png      (1920 x 1080 RGB)
    gt_semantic/<split>/<weather>/<time>/<name>_gt_labelTrainIds.png   (19 trainIds, 255 ignore)
    lidar/<split>/<weather>/<time>/<name>_lidar.bin                    (float64 x 6: x,y,z,intensity,ring,t)
    event_camera/<split>/<weather>/<time>/<name>_event_camera.h5       (events/{x,y,t,p}, t in us)
    calib.json                                                         (at the root or in muses/)

``calib.json`` with the MUSES SDK's keys (timbroed/MUSES@fe892ca:processing/
event_camera_processing.py get_event_calib, and its lidar processing): ``intrinsics.rgb.K``
(3 x 3, for the 1920 x 1080 frame camera, rescaled to the image; ``D`` optional),
``intrinsics.event.K`` (the event camera's, for its own pixels; ``D`` optional),
``extrinsics.lidar2rgb`` (4 x 4, LiDAR -> frame-camera optical frame) and
``extrinsics.event2rgb`` (4 x 4, event camera -> frame camera). Events are mapped into the frame
camera through their calibration with the shared :func:`rmmss_core.encodings.map_event_points`
(rotation-only homography, points at infinity: what the SDK's zero-disparity rectification
reduces to); without both event keys they are used as frame pixels, with a warning. The names of
earlier rmmss versions (``frame_camera``, ``event_camera``, ``lidar2frame_camera``,
``event_camera2frame_camera``) are accepted as aliases. LiDAR intensity is on the 0..255 byte
scale (``intensity_units="byte"``, the shared normalisation; the SDK divides by 255 too);
events use the spec's window before the last event (the SDK's 30 ms); encodings use the shared
encoders with the spec's settings.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch.utils.data import Dataset

from rmmss_core.data.image_io import DataError, read_channel0, read_rgb
from rmmss_core.data.sample import Transform, make_sample
from rmmss_core.encodings import CameraModel, accumulate_events, encode_rgb, map_event_points, project_lidar
from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import Normalization, PreprocessSpec

log = logging.getLogger(__name__)
WEATHERS = ("clear", "fog", "rain", "snow")
# SDK key first, then the aliases of earlier rmmss versions
RGB_KEYS = ("rgb", "frame_camera")
EVENT_KEYS = ("event", "event_camera")
LIDAR2RGB_KEYS = ("lidar2rgb", "lidar2frame_camera")
EVENT2RGB_KEYS = ("event2rgb", "event_camera2frame_camera")
TIMES = ("day", "night")
MUSES_SIZE = (1920, 1080)  # (width, height) the calibration refers to
NUM_TRAIN_IDS = 19


def muses_spec(input_size: tuple[int, int] = (540, 960), **kwargs: Any) -> PreprocessSpec:
    """Spec with the MUSES authors' normalisation, converted to this repo's encoded [0, 1] space
    (decoded mean / std divided by the encoding's scale: range / 80 m, intensity / 255 -> as is,
    height (z + 3) / 10, event counts / 4)."""
    spec = PreprocessSpec.for_class_set("muses", input_size=input_size, **kwargs)
    le, ee = spec.lidar, spec.event
    hspan = le.max_height - le.min_height
    lidar = Normalization((4.917 / le.max_range, 6.149 / 255, (0.270 - le.min_height) / hspan),
                          (13.347 / le.max_range, 17.638 / 255, 1.232 / hspan))
    event = Normalization((0.1258 / ee.count_scale, 0.1273 / ee.count_scale, 0.0),
                          (0.5442 / ee.count_scale, 0.4763 / ee.count_scale, 1.0))
    norms = dict(spec.normalization, lidar=lidar, event=event)
    return PreprocessSpec.for_class_set("muses", input_size=input_size, normalization=norms, **kwargs)


def load_calib(root: Path) -> dict[str, Any]:
    for p in (root / "calib.json", root / "muses" / "calib.json"):
        if p.is_file():
            try:
                return json.loads(p.read_text())
            except (OSError, ValueError) as e:
                raise DataError(f"{p}: unreadable calibration ({e})") from e
    raise DataError(f"{root}: calib.json not found (looked in {root} and {root / 'muses'})")


def _get(calib: dict, path: Sequence[str], where: str, required: bool = True) -> Any:
    node: Any = calib
    for k in path:
        if not isinstance(node, dict) or k not in node:
            if not required:
                return None
            have = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise DataError(f"{where}: calib.json lacks {'.'.join(path)} (found {have})")
        node = node[k]
    return node


def read_lidar_bin(path: Path) -> np.ndarray:
    """MUSES ``.bin`` -> ``N x 6`` float64 (x, y, z, intensity, ring, t)."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    raw = np.fromfile(path, dtype=np.float64)
    if raw.size % 6:
        raise DataError(f"{path}: {raw.size} float64 values is not a multiple of 6 (x,y,z,i,ring,t)")
    return raw.reshape(-1, 6)


def read_events_h5(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MUSES ``.h5`` -> x, y (int), t (seconds, float64), p arrays."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        with h5py.File(path, "r") as f:
            if "events" not in f:
                raise DataError(f"{path}: no 'events' group (found {sorted(f)})")
            g = f["events"]
            missing = [k for k in ("x", "y", "t", "p") if k not in g]
            if missing:
                raise DataError(f"{path}: events group lacks {missing}")
            x, y, t, p = (np.asarray(g[k]) for k in ("x", "y", "t", "p"))
    except OSError as e:
        raise DataError(f"{path}: corrupt or unreadable HDF5 file ({e})") from e
    if not (len(x) == len(y) == len(t) == len(p)):
        raise DataError(f"{path}: event arrays differ in length")
    return x.astype(np.int64), y.astype(np.int64), t.astype(np.float64) * 1e-6, p


class MusesDataset(Dataset):
    """MUSES frames of ``split`` (samples as in ``rmmss_core.data.sample``; depth is never available).

    weathers / times filter the condition folders. require_labels=False allows frames without a
    label file (e.g. the hidden test split): their label is all 255.
    """

    def __init__(self, root: str | Path, split: str = "train", weathers: Sequence[str] | None = None,
                 times: Sequence[str] | None = None, spec: PreprocessSpec | None = None,
                 transform: Transform | None = None, modalities: Sequence[str] = MODALITIES,
                 require_labels: bool = True, resize_to_input: bool = True):
        self.root = Path(root)
        base = self.root / "frame_camera" / split
        if not base.is_dir():
            raise DataError(f"{base}: missing; {self.root} is not a MUSES root with split {split!r}")
        self.spec = spec or muses_spec()
        self.calib = load_calib(self.root)
        self.modalities = tuple(m for m in ("rgb", "event", "lidar") if m in modalities)
        self.transform, self.require_labels, self.resize_to_input = transform, require_labels, resize_to_input
        self.split = split
        suffix = "_frame_camera.png"
        self.frames = sorted(
            p.relative_to(base).as_posix()[: -len(suffix)] for p in base.glob(f"*/*/*{suffix}")
            if (weathers is None or p.parent.parent.name in weathers) and (times is None or p.parent.name in times))
        if not self.frames:
            raise DataError(f"{base}: no frames for weathers {weathers or 'all'}, times {times or 'all'}")

    def __len__(self) -> int:
        return len(self.frames)

    def path(self, index: int, kind: str) -> Path:
        folder, suffix = {"rgb": ("frame_camera", "_frame_camera.png"),
                          "label": ("gt_semantic", "_gt_labelTrainIds.png"),
                          "lidar": ("lidar", "_lidar.bin"),
                          "event": ("event_camera", "_event_camera.h5")}[kind]
        return self.root / folder / self.split / f"{self.frames[index]}{suffix}"

    def _first(self, section: str, keys: Sequence[str], where: str, required: bool = True) -> Any:
        """``calib[section][key]`` for the first of ``keys`` present (SDK name first)."""
        node = _get(self.calib, (section,), where, required)
        if isinstance(node, dict):
            for k in keys:
                if k in node:
                    return node[k]
        if not required:
            return None
        have = sorted(node) if isinstance(node, dict) else type(node).__name__
        raise DataError(f"{where}: calib.json lacks {section}.{keys[0]} (MUSES SDK key; alias "
                        f"{section}.{keys[1]}) (found {have})")

    def _camera(self, width: int, height: int, where: str) -> CameraModel:
        rgb = self._first("intrinsics", RGB_KEYS, where)
        if not isinstance(rgb, dict) or "K" not in rgb:
            raise DataError(f"{where}: calib.json lacks intrinsics.{RGB_KEYS[0]}.K")
        K = np.asarray(rgb["K"], dtype=np.float64)
        D = rgb.get("D")
        cam = CameraModel(MUSES_SIZE[0], MUSES_SIZE[1], K, np.zeros(5) if D is None else np.asarray(D))
        return cam if (width, height) == MUSES_SIZE else cam.scaled(width, height)

    def _lidar_extrinsic(self, where: str) -> np.ndarray:
        return np.asarray(self._first("extrinsics", LIDAR2RGB_KEYS, where), dtype=np.float64).reshape(4, 4)

    def _event_pixels(self, x: np.ndarray, y: np.ndarray, cam: CameraModel) -> tuple[np.ndarray, np.ndarray]:
        ev = self._first("intrinsics", EVENT_KEYS, "calib.json", required=False)
        T = self._first("extrinsics", EVENT2RGB_KEYS, "calib.json", required=False)
        if not isinstance(ev, dict) or "K" not in ev or T is None:
            if not getattr(self, "_warned_events", False):
                log.warning("%s: calib.json has no intrinsics.event.K + extrinsics.event2rgb; events are used "
                            "as frame-camera pixels", self.root)
                self._warned_events = True
            return x, y
        # the event camera's own pixels: size only bounds the lookup-free mapping, so a nominal one
        ev_cam = CameraModel(int(ev.get("width", 1280)), int(ev.get("height", 720)),
                             np.asarray(ev["K"], dtype=np.float64),
                             np.asarray(ev.get("D") or np.zeros(5), dtype=np.float64))
        R = np.asarray(T, dtype=np.float64).reshape(4, 4)[:3, :3]
        flat, ok = map_event_points(x, y, ev_cam, cam, R)
        return np.where(ok, flat % cam.width, -1), np.where(ok, flat // cam.width, -1)

    def load_encoded(self, index: int) -> tuple[dict[str, np.ndarray | None], np.ndarray]:
        """Encoded images ``H x W x 3`` in [0, 1] (None = unavailable) and the label ``H x W``."""
        rgb_path = self.path(index, "rgb")
        rgb = read_rgb(rgb_path)
        H, W = rgb.shape[:2]
        label_path = self.path(index, "label")
        if label_path.is_file() or self.require_labels:
            label = read_channel0(label_path)
            if label.shape != (H, W):
                raise DataError(f"{label_path}: size {label.shape[1]} x {label.shape[0]} does not match "
                                f"{rgb_path.name} ({W} x {H})")
            bad = (label >= NUM_TRAIN_IDS) & (label != 255)
            if bad.any():
                raise DataError(f"{label_path}: unknown label value(s) {np.unique(label[bad])[:10].tolist()}; "
                                f"trainIds are 0..{NUM_TRAIN_IDS - 1} or 255")
        else:
            label = np.full((H, W), 255, dtype=np.uint8)
        enc: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
        q = self.spec.quantize_8bit
        if "rgb" in self.modalities:
            enc["rgb"] = encode_rgb(rgb)
        cam = self._camera(W, H, str(rgb_path))
        if "lidar" in self.modalities:
            pts = read_lidar_bin(self.path(index, "lidar"))
            enc["lidar"] = project_lidar(pts[:, :4], self._lidar_extrinsic(str(rgb_path)), cam, self.spec.lidar, q,
                                         intensity_units="byte")
        if "event" in self.modalities:
            x, y, t, p = read_events_h5(self.path(index, "event"))
            x, y = self._event_pixels(x, y, cam)
            t_end = float(t.max()) if t.size else 0.0
            enc["event"] = accumulate_events(x, y, t, p, t_end, H, W, self.spec.event, q)
        return enc, label

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.frames[index]
        try:
            encoded, label = self.load_encoded(index)
            return make_sample(encoded, label, name, self.spec, self.transform, self.resize_to_input)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - name the frame instead of a bare worker traceback
            raise DataError(f"{self.root} frame {self.split}/{name}: {type(e).__name__}: {e}") from e
