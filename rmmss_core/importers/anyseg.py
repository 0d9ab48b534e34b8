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
from rmmss_core.importers import segformer_mm
from rmmss_core.importers.base import Family, Published
from rmmss_core.spec import EventEncoding, LidarEncoding, Normalization, PreprocessSpec

NUM_CLASSES = len(MUSES.classes)
MODALITIES = ("rgb", "event", "lidar")
INPUT_SIZE = (1024, 1024)
RAW = Normalization((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))   # [0, 1] image -> 0..255 values


# The MUSES SDK stores a LiDAR image as uint16 PNG ``(v + 100) * 150`` per channel
# (timbroed/MUSES@fe892ca:scripts/project_sensors_to_rgb.py:96, processing/utils.py
# ``rescale_and_shift_image``; empty pixels are v = 0) and AnySeg reads it through PIL's 8-bit RGB
# conversion, which keeps the high byte: the network sees ``floor((v + 100) * 150 / 256)``.
SDK_SLOPE = 150 / 256
SDK_OFFSET = 100 * 150 / 256 - 0.5        # - 0.5: the mean effect of the floor
LIDAR = LidarEncoding(channels=("range", "intensity", "height"), max_range=200.0, min_height=-3.0,
                      max_height=7.0, intensity_units="byte")
# the SDK's event image: per-pixel counts of positive / negative events over the last 30 ms, uint8
# (processing/event_camera_processing.py ``render``), fed as raw counts: count / 255 quantised to
# 8 bits and scaled back by RAW gives the count exactly (up to 255)
EVENT = EventEncoding(window_s=0.03, channels=("pos", "neg", "zero"), count_scale=255.0)


def _affine(slope: float, offset: float) -> tuple[float, float]:
    """(mean, std) so that ``(e - mean) / std = slope * e + offset``."""
    return -offset / slope, 1.0 / slope


def lidar_normalization(enc: LidarEncoding = LIDAR) -> Normalization:
    """rmmss's encoded LiDAR channels in [0, 1] -> the SDK-PNG-through-PIL values AnySeg trained on.

    range e = r / max_range -> 150/256 (r + 100); intensity e = i / 255 -> 150/256 (i + 100);
    height e = (z - min_h) / span -> 150/256 (z + 100). Exact up to the floor (within one level),
    except at pixels without a return, where the SDK's height channel is z = 0 (value 58) and
    rmmss's is ``min_height`` (value 56.8).
    """
    span = enc.max_height - enc.min_height
    ch = [_affine(SDK_SLOPE * enc.max_range, SDK_OFFSET), _affine(SDK_SLOPE * 255.0, SDK_OFFSET),
          _affine(SDK_SLOPE * span, SDK_OFFSET + SDK_SLOPE * enc.min_height)]
    return Normalization(tuple(c[0] for c in ch), tuple(c[1] for c in ch))


def spec() -> PreprocessSpec:
    """MUSES as AnySeg feeds it: 1024 x 1024 stretched; frame camera and event counts as raw 0..255
    values; LiDAR as the SDK's PNG bytes (see ``lidar_normalization``)."""
    norms = {"rgb": RAW, "depth": Normalization(), "event": RAW, "lidar": lidar_normalization()}
    return PreprocessSpec.for_class_set(MUSES.name, input_size=INPUT_SIZE, normalization=norms,
                                        lidar=LIDAR, event=EVENT, quantize_8bit=True, resize_policy="stretch")


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
        "the event and LiDAR images it was trained on are the MUSES SDK's projections at 1920 x 1080 "
        "(LiDAR as 16-bit PNG (v + 100) * 150 read by AnySeg as the high byte), resized to 1024 x 1024 with "
        "PIL's bicubic filter; the spec maps rmmss's encodings onto those values (event counts exact, "
        "LiDAR within one level, except the height channel of pixels without a return: 56.8 instead of "
        "58), but rmmss reduces sparse LiDAR and event images with nearest-return / nearest sampling, "
        "not bicubic smearing, so these two inputs are close to, not equal to, what it was trained on",
        "the authors' MUSES loader maps the ignore label 255 to class 0 (road) before scoring, which "
        "changes their reported mIoU (the `authors-anyseg` eval protocol reproduces it, the default "
        "rmmss metric does not)",
    ),
)
