"""RobustSeg (RMMSS) on DELIVER: ``Teacher.pth``, ``RobustSeg.pth``, ``RobustSeg_zero_padding.pth``.

Published in the RobustSeg/RobustSeg repository itself (``weights/``; its README: "the pre-trained
models in the weights folder represent the highest mIoU in the paper"). The network is
``Seg('mit_b0', num_classes=25, modals=['img', 'depth', 'event', 'lidar'])``
(RobustSeg/RobustSeg@5898146:configs/deliver_seg_s.yaml, tools/val_mm_mmkd.py:22,242;
RobustSeg/UMMSS@de81cfd:semseg/models/segformer/seg_block_select_UMD.py), mapped in
``segformer_mm``. Their evaluation (RobustSeg/UMMSS@de81cfd:tools/val_mm_EMM.py:91-160,209-214):
DELIVER val, RGB /255 then ImageNet mean/std, HHA depth, event and LiDAR images /255 only,
resized so the short side is 256 (each side rounded up to a multiple of 32: 256 x 256 for
DELIVER's square frames), a missing sensor's *normalised* input zeroed and still encoded and
fused (``missing="zero"``, the model is not told), argmax of ``model(x)[0]``, mIoU over the 25
classes with 255 ignored, and the 15 subsets' mean and p-weighted expectations.
"""
from __future__ import annotations

from rmmss_core.classes import DELIVER
from rmmss_core.importers import segformer_mm
from rmmss_core.importers.base import Family, Published
from rmmss_core.spec import IMAGENET_MEAN, IMAGENET_STD, DepthEncoding, Normalization, PreprocessSpec

NUM_CLASSES = len(DELIVER.classes)
MODALITIES = ("rgb", "depth", "event", "lidar")
INPUT_SIZE = (256, 256)
REPO = "https://github.com/RobustSeg/RobustSeg/tree/main/weights"


def spec() -> PreprocessSpec:
    """DELIVER as the authors feed it: RGB ImageNet-normalised, the others ``png / 255``, depth =
    DELIVER's HHA image, 256 x 256 (their short-side-256 rule on square frames: a stretch)."""
    norms = {"rgb": Normalization(IMAGENET_MEAN, IMAGENET_STD), "depth": Normalization(),
             "event": Normalization(), "lidar": Normalization()}
    return PreprocessSpec.for_class_set(DELIVER.name, input_size=INPUT_SIZE, normalization=norms,
                                        depth=DepthEncoding(kind="hha"), quantize_8bit=True,
                                        resize_policy="stretch")


FAMILY = Family(
    name="robustseg",
    title="RobustSeg / RMMSS (DELIVER, RGB + depth + event + LiDAR, MiT-B0)",
    code="RobustSeg/UMMSS@de81cfda4af1df3c87179433110a4105930cc024:semseg/models/segformer/seg_block_select_UMD.py",
    dataset="DELIVER",
    num_classes=NUM_CLASSES,
    modalities=MODALITIES,
    authors_modalities=("img", "depth", "event", "lidar"),
    default_missing="zero",
    missing_note="a missing sensor's normalised input is zeroed and still encoded and fused (divisor 4), "
                 "as tools/val_mm_EMM.py does; the model is not told",
    manifest=lambda: segformer_mm.manifest(NUM_CLASSES),
    to_rmmss=segformer_mm.to_rmmss,
    options=lambda missing: segformer_mm.model_options(NUM_CLASSES, MODALITIES, missing),
    spec=spec,
    variants={"teacher": "teacher", "robustseg": "rmmss-hpdm", "robustseg_zero_padding": "rmmss-hpdm"},
    published=(
        Published("Teacher.pth", REPO, "teacher",
                  "the multi-modal teacher (the RobustSeg paper's EMM table, DELIVER val)"),
        Published("RobustSeg.pth", REPO, "robustseg",
                  "RobustSeg stage 1 (README: the highest mIoU in the paper, DELIVER val EMM)"),
        Published("RobustSeg_zero_padding.pth", REPO, "robustseg_zero_padding",
                  "RobustSeg stage 1 trained with zero padding of missing sensors"),
    ),
    caveats=(
        "the input is 256 x 256 stretched: the authors' rule (short side 256, sides rounded up to multiples "
        "of 32) for DELIVER's square frames; for a camera of another aspect ratio re-import with "
        "--camera-size WxH to apply their rule to it",
        "DELIVER is rendered by the CARLA simulator: expect a domain gap on real cameras, depth, "
        "event cameras and LiDARs",
        "depth is DELIVER's HHA image: the node computes HHA from the depth camera and its intrinsics "
        "(rmmss_core.encodings.depth.depth_to_hha), which follows the HHA recipe but is not "
        "guaranteed to be bit-identical to the tool that made DELIVER's files",
        "DELIVER's event and LiDAR images are CARLA's own renderings; rmmss's event and LiDAR "
        "encoders approximate them (as for every DELIVER-trained rmmss model)",
    ),
)
