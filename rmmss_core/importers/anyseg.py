"""AnySeg on MUSES: the frame camera + event camera + LiDAR checkpoint linked from AnySeg's README.

The README's MUSES table reports the mean over the 7 sensor subsets (40.23 mIoU). The network its
only evaluation script builds is ``seg_block.py`` ``Seg(backbone='mit_b0')`` over ``MixT_block.py``
(zhengxuJosh/AnySeg@bc27220d7302b0c9847b04bf3353332529348618:val_mm.py:23,160;
semseg/models/segformer/seg_block.py): the same network as RobustSeg's (``segformer_mm``), 19
Cityscapes classes, modalities ``['frame_camera', 'event_camera', 'lidar']``
(configs/muses.yaml:15). Their data pipeline (semseg/datasets/muses.py:63-110; the transform is
commented out there): every modality image opened with PIL, converted to RGB, resized to
1024 x 1024 with PIL's default filter (aspect ratio not kept: a stretch), fed as raw 0..255 values
(no normalisation: in rmmss terms mean 0, std 1/255 on the [0, 1] encoded image); the event and
LiDAR images are the MUSES SDK's projections into the frame camera (timbroed/MUSES@fe892ca:
scripts/project_sensors_to_rgb.py, processing/utils.py ``create_image_from_point_cloud``: LiDAR
channels range [m], intensity, height z [m]); a subset is evaluated by feeding only its
sensors (the mean is over the sensors fed: ``missing="drop"``).
"""
from __future__ import annotations

from rmmss_core.classes import MUSES
from rmmss_core.data.muses import muses_spec
from rmmss_core.importers import segformer_mm
from rmmss_core.importers.base import Family, Published
from rmmss_core.spec import Normalization, PreprocessSpec

NUM_CLASSES = len(MUSES.classes)
MODALITIES = ("rgb", "event", "lidar")
INPUT_SIZE = (1024, 1024)
RAW = Normalization((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))   # [0, 1] image -> 0..255 values


def spec() -> PreprocessSpec:
    """MUSES as AnySeg feeds it: 1024 x 1024 stretched, raw 0..255 values for every sensor."""
    base = muses_spec(input_size=INPUT_SIZE)
    norms = {"rgb": RAW, "depth": Normalization(), "event": RAW, "lidar": RAW}
    return PreprocessSpec.for_class_set(MUSES.name, input_size=INPUT_SIZE, normalization=norms,
                                        lidar=base.lidar, event=base.event, quantize_8bit=True,
                                        resize_policy="stretch")


FAMILY = Family(
    name="anyseg",
    title="AnySeg (MUSES, frame camera + event camera + LiDAR, MiT-B0)",
    code="zhengxuJosh/AnySeg@bc27220d7302b0c9847b04bf3353332529348618:semseg/models/segformer/seg_block.py",
    dataset="MUSES",
    num_classes=NUM_CLASSES,
    modalities=MODALITIES,
    authors_modalities=("frame_camera", "event_camera", "lidar"),
    default_missing="drop",
    missing_note="a missing sensor is left out of the per-stage mean (val_mm.py feeds only the sensors of "
                 "the subset); --missing zero gives RobustSeg's zero-filled convention instead",
    manifest=lambda: segformer_mm.manifest(NUM_CLASSES),
    to_rmmss=segformer_mm.to_rmmss,
    options=lambda missing: segformer_mm.model_options(NUM_CLASSES, MODALITIES, missing),
    spec=spec,
    variants={"anyseg": "anyseg"},
    published=(Published(
        "(Google Drive file 17pmkR_xdCKdn0LPwaf27S7URjjI1HeMS)",
        "https://drive.google.com/file/d/17pmkR_xdCKdn0LPwaf27S7URjjI1HeMS/view (linked from "
        "zhengxuJosh/AnySeg@3843855:README.md)", "anyseg",
        "MUSES val mIoU F 46.01, E 19.57, L 32.13, FE 46.29, FL 51.25, EL 35.21, FEL 51.14, mean 40.23"),),
    caveats=(
        "MUSES is real driving (Zurich region, clear/fog/rain/snow, day/night): the closest to a robot's "
        "sensors of the two families, but a car-mounted rig",
        "the event and LiDAR images it was trained on are the MUSES SDK's projections, stored as 16-bit "
        "PNGs ((v + 100) * 150 for LiDAR) and read by AnySeg through PIL's 8-bit RGB conversion; rmmss's "
        "encoders (LiDAR range/intensity/height scaled to [0, 1], event counts over 30 ms) follow the "
        "same channels but not that exact byte mapping, which cannot be expressed in rmmss's LiDAR and "
        "event encodings: the frame-camera path is exact, event and LiDAR inputs from the node differ "
        "from training",
        "the authors' MUSES loader maps the ignore label 255 to class 0 (road) before scoring, which "
        "changes their reported mIoU (the `authors-anyseg` eval protocol reproduces it, the default "
        "rmmss metric does not)",
    ),
)
