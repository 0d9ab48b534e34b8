"""The authors' own evaluation of their released models, for ``rmmss eval --authors-protocol``.

``robustseg`` (RobustSeg/UMMSS@de81cfd:tools/val_mm_EMM.py:91-160,209-214, semseg
augmentations ``get_val_augmentation(EVAL.IMAGE_SIZE=[256, 256])``): DELIVER ``val``, every
image resized so its short side is 256 and each side rounded up to a multiple of 32 (bilinear on
the 8-bit images, the label nearest), RGB /255 then ImageNet mean/std, the others /255; no sliding
window, no flip (``sliding = False``, MSF disabled); each of the 15 subsets with the missing
sensors' normalised inputs zeroed (the model not told); mIoU from the confusion matrix over the
25 classes with 255 ignored, a class absent from prediction and truth counting 0; reported: the 15
subsets, their mean and the p-weighted expectations (p = 0.2, 0.1, 0.05). The bilinear resize is
``F.interpolate(antialias=False)``, torchvision's tensor resize before 0.17 (their environment);
with torchvision >= 0.17 their resize antialiases by default, which changes the numbers slightly.

``anyseg`` (zhengxuJosh/AnySeg@bc27220:val_mm.py:84-100,145-176, semseg/datasets/muses.py:63-110):
MUSES ``val`` as the AnySeg loader reads it: ``frame_camera/``, ``event_camera/`` and ``lidar/``
PNGs (the MUSES SDK's projections into the frame camera, saved as PNG next to the frames), each
opened with PIL, converted to RGB, resized to 1024 x 1024 with PIL's default filter and fed as raw
0..255 values; the label (channel 0 of ``gt_semantic/.../*_gt_labelTrainIds.png``) resized nearest
to 1024 x 1024 **with 255 mapped to 0 (road)**, so ignore pixels are scored as road; a subset is
evaluated by feeding only its sensors; mIoU as above over the 19 classes; the README reports the 7
subsets and their mean.

Neither could be run here: DELIVER and MUSES are not on this machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rmmss_core.modalities import MODALITIES, parse_subset, subset_name
from rmmss_core.preprocess import normalize
from rmmss_core.spec import PreprocessSpec


@dataclass(frozen=True)
class AuthorsProtocol:
    family: str
    dataset: str
    subsets: tuple[str, ...]               # the subsets the authors report, rmmss letters
    reported: dict[str, float]             # subset (or "mean") -> mIoU % the authors publish
    source: str


# README of zhengxuJosh/AnySeg@3843855 (F = frame camera = R here)
ANYSEG_REPORTED = {"R": 46.01, "E": 19.57, "L": 32.13, "RE": 46.29, "RL": 51.25, "EL": 35.21, "REL": 51.14,
                   "mean": 40.23}
PROTOCOLS: dict[str, AuthorsProtocol] = {
    "robustseg": AuthorsProtocol("robustseg", "deliver", tuple(
        subset_name(parse_subset(s)) for s in ("R", "D", "E", "L", "RD", "RE", "RL", "DE", "DL", "EL",
                                               "RDE", "RDL", "REL", "DEL", "RDEL")), {},
        "RobustSeg/UMMSS@de81cfd:tools/val_mm_EMM.py"),
    "anyseg": AuthorsProtocol("anyseg", "muses", ("R", "E", "L", "RE", "RL", "EL", "REL"), ANYSEG_REPORTED,
                              "zhengxuJosh/AnySeg@bc27220:val_mm.py; numbers: README@3843855"),
}


SHORT_SIDE = 256   # RobustSeg's EVAL.IMAGE_SIZE[0]


def short_side_size(h: int, w: int, short: int = SHORT_SIDE) -> tuple[int, int]:
    """RobustSeg's val resize: short side to ``short``, each side rounded up to a multiple of 32."""
    scale = short / min(h, w)
    return (int(math.ceil(round(h * scale) / 32)) * 32, int(math.ceil(round(w * scale) / 32)) * 32)


def _resize_u8(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``3 x H x W`` uint8 -> bilinear (align_corners=False, no antialias) -> rounded uint8."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    y = F.interpolate(img[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return y.round().clamp(0, 255).to(torch.uint8)


class RobustSegDeliver(Dataset):
    """DELIVER ``split`` through RobustSeg's val pipeline (see the module docstring)."""

    def __init__(self, root: str | Path, split: str, spec: PreprocessSpec, short: int | None = None):
        from rmmss_core.data.deliver import DeliverDataset
        self.base = DeliverDataset(root, split=split, spec=spec, resize_to_input=False)
        self.spec, self.short = spec, short or SHORT_SIDE

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        encoded, label = self.base.load_encoded(index)
        lab = torch.as_tensor(np.asarray(label)).long()
        size = short_side_size(*lab.shape[-2:], self.short)
        sample: dict[str, Any] = {"available": torch.zeros(len(MODALITIES), dtype=torch.bool)}
        for i, m in enumerate(MODALITIES):
            x = encoded.get(m)
            if x is None:
                sample[m] = torch.zeros(3, *size)
                continue
            u8 = torch.from_numpy(np.rint(np.asarray(x) * 255.0).astype(np.uint8)).permute(2, 0, 1)
            if tuple(u8.shape[-2:]) != tuple(lab.shape[-2:]):
                raise ValueError(f"{m} image {tuple(u8.shape[-2:])} and label {tuple(lab.shape)} differ in size")
            sample[m] = normalize(_resize_u8(u8, size).float() / 255.0, self.spec.normalization[m])
            sample["available"][i] = True
        sample["label"] = F.interpolate(lab[None, None].float(), size=size, mode="nearest")[0, 0].long()
        sample["name"] = str(index)
        return sample


class AnySegMusesPngs(Dataset):
    """MUSES ``split`` as AnySeg's loader reads it (see the module docstring). Needs Pillow."""

    FOLDERS = {"rgb": "frame_camera", "event": "event_camera", "lidar": "lidar"}
    SIZE = (1024, 1024)

    def __init__(self, root: str | Path, split: str, spec: PreprocessSpec):
        self.root, self.split, self.spec = Path(root), split, spec
        base = self.root / "frame_camera" / split
        self.files = sorted(p for p in base.glob("*/*/*.png")
                            if p.parent.parent.name in ("clear", "fog", "rain", "snow")
                            and p.parent.name in ("day", "night"))
        if not self.files:
            raise ValueError(f"{base}: no frame_camera/{split}/<weather>/<time>/*.png (AnySeg's MUSES layout)")

    def __len__(self) -> int:
        return len(self.files)

    def _image(self, path: Path) -> torch.Tensor:
        from PIL import Image
        if not path.is_file():
            raise ValueError(f"{path}: missing (AnySeg reads the MUSES SDK's projected PNGs from there)")
        with Image.open(path) as im:
            arr = np.array(im.convert("RGB").resize(self.SIZE))
        return torch.from_numpy(arr).permute(2, 0, 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image
        frame = self.files[index]
        sample: dict[str, Any] = {"available": torch.zeros(len(MODALITIES), dtype=torch.bool)}
        for i, m in enumerate(MODALITIES):
            if m not in self.FOLDERS:
                sample[m] = torch.zeros(3, *self.SIZE)
                continue
            path = Path(str(frame).replace("frame_camera", self.FOLDERS[m]))
            sample[m] = normalize(self._image(path).float() / 255.0, self.spec.normalization[m])
            sample["available"][i] = True
        lbl = Path(str(frame).replace("/frame_camera", "/gt_semantic").replace("frame_camera", "gt_labelTrainIds"))
        with Image.open(lbl) as im:
            raw = np.array(im)
        raw = raw[..., 0] if raw.ndim == 3 else raw
        lab = F.interpolate(torch.from_numpy(raw.astype(np.int64))[None, None].float(), size=self.SIZE,
                            mode="nearest")[0, 0].long()
        lab[lab == 255] = 0                 # the authors' loader: ignore becomes road
        sample["label"] = lab
        sample["name"] = frame.stem
        return sample


def build_authors_dataset(family: str, root: str | Path, split: str, spec: PreprocessSpec) -> Dataset:
    if family == "robustseg":
        return RobustSegDeliver(root, split, spec)
    if family == "anyseg":
        return AnySegMusesPngs(root, split, spec)
    raise ValueError(f"unknown authors' protocol {family!r}; known: {', '.join(PROTOCOLS)}")


def authors_summary(family: str, emm: dict[str, Any]) -> dict[str, Any]:
    """The authors' table from rmmss's EMM summary: their subsets, their mean (and, for RobustSeg,
    the p-weighted expectations rmmss computes the same way), beside their reported numbers."""
    proto = PROTOCOLS[family]
    rows = {s: 100 * emm["subsets"][s]["miou"] for s in proto.subsets}
    out: dict[str, Any] = {"protocol": proto.source, "subsets": rows, "mean": sum(rows.values()) / len(rows),
                           "reported": proto.reported}
    if family == "robustseg":
        out["expected"] = {k: 100 * v for k, v in (emm.get("miou_e") or {}).items()}
    return out
