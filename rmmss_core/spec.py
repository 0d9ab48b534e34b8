"""The preprocessing spec: everything serving must know to feed a model exactly as in training.

It is saved inside every checkpoint and exported model (ONNX metadata) and read back by inference
(CLI, replay, the ROS node), so serving can never drift from training.

Convention for every modality: a sensor's raw data is first *encoded* into a float image
``3 x H x W`` in [0, 1] (RGB / 255; depth normalised or HHA; LiDAR projected into channels;
events accumulated into channels), optionally quantised to 8 bits exactly as the dataset PNGs store
it, then *normalised* per channel with ``(x - mean) / std`` from this spec.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from rmmss_core.classes import DELIVER, IGNORE_INDEX, get_class_set
from rmmss_core.modalities import MODALITIES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` applied after encoding to [0, 1]."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"normalization needs 3 means and 3 stds, got {self.mean}, {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"normalization std must be > 0, got {self.std}")


@dataclass(frozen=True)
class DepthEncoding:
    """``metric``: depth / max_depth clipped to [0, 1], invalid = 0 (default).
    ``hha``: the 3-channel HHA image of DELIVER-trained models (read from files)."""

    kind: str = "metric"
    max_depth: float = 80.0

    def __post_init__(self):
        if self.kind not in ("metric", "hha"):
            raise ValueError(f"depth encoding kind must be 'metric' or 'hha', got {self.kind!r}")


# How raw LiDAR intensity becomes the [0, 1] intensity channel (rmmss_core.encodings.lidar
# .normalize_intensity): "unit" values already in [0, 1] (clipped); "byte" the 0..255 scale of
# Velodyne / Hesai / Livox / RoboSense drivers and nuScenes / KITTI-style dumps (v / 255);
# "counts16" 16-bit photon counts (Ouster signal / reflectivity as uint16):
# log1p(v) / log1p(65535); "auto" picks by driver and PointField datatype (an Ouster layout with
# reflectivity + ambient fields -> counts16; uint8 and float -> byte; 16/32-bit integers -> counts16).
INTENSITY_UNITS = ("auto", "unit", "byte", "counts16")
# How a sparse LiDAR image is reduced to the network input: "nearest_return" keeps, per input
# pixel, the nearest return among the source pixels it covers (density-preserving, what a
# projection at the input resolution gives); "nearest" is plain nearest-neighbour resampling
# (the rule of models saved before this field existed: it drops most returns when downscaling).
LIDAR_RESAMPLE = ("nearest_return", "nearest")
# How an image whose aspect ratio differs from input_size reaches it: "stretch" (resize each axis
# on its own), "crop" (centre crop to the input aspect ratio, then resize; the mask is 255 =
# ignore outside the crop), "letterbox" (resize to fit, pad with encoded 0; nothing is lost).
RESIZE_POLICIES = ("stretch", "crop", "letterbox")
# New specs keep the aspect ratio; a spec saved without the field (a checkpoint from before
# resize policies existed) was trained on stretched images and is served the same.
DEFAULT_RESIZE_POLICY = "letterbox"
LEGACY_RESIZE_POLICY = "stretch"


@dataclass(frozen=True)
class LidarEncoding:
    """LiDAR points projected into the camera; one image channel per name, each scaled to [0, 1].

    Channel names: ``range`` (LiDAR-frame distance / max_range), ``intensity`` (raw intensity in
    ``intensity_units`` mapped to [0, 1], see INTENSITY_UNITS), ``height`` (z in the LiDAR frame
    mapped from [min_height, max_height]), ``depth`` (camera z / max_range). Pixels with no return
    are 0; points at the LiDAR origin (drivers' "no return" marker, e.g. Ouster's (0, 0, 0)) and
    non-finite points are dropped. ``intensity_units`` is the default for serving (``auto``: from
    the PointField datatype); the node's ``lidar.intensity_units`` parameter overrides it.
    ``resample``: see LIDAR_RESAMPLE.
    """

    channels: tuple[str, str, str] = ("range", "intensity", "height")
    max_range: float = 80.0
    min_height: float = -3.0
    max_height: float = 7.0
    intensity_units: str = "auto"
    resample: str = "nearest_return"

    def __post_init__(self):
        known = {"range", "intensity", "height", "depth"}
        bad = [c for c in self.channels if c not in known]
        if len(self.channels) != 3 or bad:
            raise ValueError(f"lidar channels must be 3 of {sorted(known)}, got {self.channels}")
        if self.intensity_units not in INTENSITY_UNITS:
            raise ValueError(f"lidar intensity_units must be one of {INTENSITY_UNITS}, got {self.intensity_units!r}")
        if self.resample not in LIDAR_RESAMPLE:
            raise ValueError(f"lidar resample must be one of {LIDAR_RESAMPLE}, got {self.resample!r}")


@dataclass(frozen=True)
class EventEncoding:
    """Events accumulated over the ``window_s`` seconds before the frame stamp.

    Channels: ``pos`` / ``neg`` counts (divided by ``count_scale``, clipped to 1), ``time_surface``
    (exp(-(t_frame - t_last) / tau) of the latest event per pixel), or ``zero``.
    """

    window_s: float = 0.03
    channels: tuple[str, str, str] = ("pos", "neg", "zero")
    count_scale: float = 4.0
    tau_s: float = 0.01

    def __post_init__(self):
        known = {"pos", "neg", "time_surface", "zero"}
        bad = [c for c in self.channels if c not in known]
        if len(self.channels) != 3 or bad:
            raise ValueError(f"event channels must be 3 of {sorted(known)}, got {self.channels}")
        if self.window_s <= 0:
            raise ValueError(f"event window must be > 0 s, got {self.window_s}")


def _default_norms() -> dict[str, Normalization]:
    return {"rgb": Normalization(IMAGENET_MEAN, IMAGENET_STD), "depth": Normalization(),
            "event": Normalization(), "lidar": Normalization()}


@dataclass(frozen=True)
class PreprocessSpec:
    """What a model expects as input and what its outputs mean.

    input_size is (height, width) of the network input. class_names / palette index the logits.
    resize_policy: how images of another aspect ratio reach input_size (RESIZE_POLICIES); new
    specs default to ``letterbox`` (aspect ratio kept, nothing lost, the mask mapped back to the
    full image), specs loaded without the field to ``stretch`` (what they were trained with).
    quantize_8bit: encoders round to 1/255 steps, the way the dataset PNGs store encoded images,
    so a node fed raw sensor data produces bit-identical inputs to training on the files.
    """

    modalities: tuple[str, ...] = MODALITIES
    input_size: tuple[int, int] = (256, 320)
    class_set: str = DELIVER.name
    class_names: tuple[str, ...] = DELIVER.classes
    palette: tuple[tuple[int, int, int], ...] = DELIVER.palette
    ignore_index: int = IGNORE_INDEX
    normalization: Mapping[str, Normalization] = field(default_factory=_default_norms)
    depth: DepthEncoding = field(default_factory=DepthEncoding)
    lidar: LidarEncoding = field(default_factory=LidarEncoding)
    event: EventEncoding = field(default_factory=EventEncoding)
    quantize_8bit: bool = True
    resize_policy: str = DEFAULT_RESIZE_POLICY

    def __post_init__(self):
        if tuple(self.modalities) != MODALITIES:
            raise ValueError(f"modalities must be {MODALITIES} in that order, got {self.modalities}")
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ValueError(f"input_size must be (height, width) >= 32, got {self.input_size}")
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"{len(self.class_names)} classes but {len(self.palette)} palette colours")
        if self.resize_policy not in RESIZE_POLICIES:
            raise ValueError(f"resize_policy must be one of {RESIZE_POLICIES}, got {self.resize_policy!r}")
        missing = [m for m in MODALITIES if m not in self.normalization]
        if missing:
            raise ValueError(f"normalization missing for modalities {missing}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def for_class_set(cls, name: str, **kwargs: Any) -> PreprocessSpec:
        cs = get_class_set(name)
        return cls(class_set=cs.name, class_names=cs.classes, palette=cs.palette, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["normalization"] = {k: asdict(v) for k, v in self.normalization.items()}
        return _lists(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessSpec:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown preprocessing spec keys {sorted(unknown)}")
        kw = dict(d)
        if "normalization" in kw:
            kw["normalization"] = {k: Normalization(tuple(v["mean"]), tuple(v["std"]))
                                   for k, v in kw["normalization"].items()}
        kw.setdefault("resize_policy", LEGACY_RESIZE_POLICY)  # saved before policies existed: stretched
        if isinstance(kw.get("lidar"), Mapping) and "intensity_units" not in kw["lidar"]:
            # saved before intensity units existed: the encoder clipped the raw value to [0, 1], which
            # is the "unit" rule (what such a model was trained and served with, e.g. the synthetic LiDAR)
            kw["lidar"] = {**kw["lidar"], "intensity_units": "unit"}
        if isinstance(kw.get("lidar"), Mapping) and "resample" not in kw["lidar"]:
            # saved before density-preserving reduction existed: the model was trained on
            # nearest-resampled LiDAR images, so serve it the same
            kw["lidar"] = {**kw["lidar"], "resample": "nearest"}
        for name, sub in (("depth", DepthEncoding), ("lidar", LidarEncoding), ("event", EventEncoding)):
            if name in kw and isinstance(kw[name], Mapping):
                kw[name] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw[name].items()})
        for name in ("modalities", "input_size", "class_names"):
            if name in kw:
                kw[name] = tuple(kw[name])
        if "palette" in kw:
            kw["palette"] = tuple(tuple(int(c) for c in p) for p in kw["palette"])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        return cls.from_dict(json.loads(text))


def _lists(x: Any) -> Any:
    """Tuples to lists recursively, so JSON/YAML dumps are plain."""
    if is_dataclass(x):
        x = asdict(x)
    if isinstance(x, dict):
        return {k: _lists(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_lists(v) for v in x]
    return x
