"""#12 follow-up: a new model keeps the camera's aspect ratio (resize_policy defaults to letterbox:
nothing lost, the mask mapped back to the full image), while a spec saved without the field (the
committed sample student, every checkpoint from before resize policies) keeps the stretch it was
trained with; training builds its samples with the same policy."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from sensor_msgs.msg import CameraInfo, Image

from rmmss_core.data.sample import make_sample
from rmmss_core.preprocess import normalize
from rmmss_core.spec import PreprocessSpec
from rmmss_ros.conversions import fill_image
from rmmss_ros.pipeline.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
KITTI_H, KITTI_W = 375, 1242  # a KITTI camera frame
NET = (128, 160)


def test_new_specs_letterbox_and_specs_without_the_field_stretch():
    assert PreprocessSpec().resize_policy == "letterbox"
    assert PreprocessSpec.for_class_set("deliver").resize_policy == "letterbox"
    d = PreprocessSpec().to_dict()
    assert PreprocessSpec.from_dict(d).resize_policy == "letterbox"  # saved with the field: kept
    del d["resize_policy"]
    assert PreprocessSpec.from_dict(d).resize_policy == "stretch"    # saved before it: as trained


def test_committed_sample_student_keeps_stretch():
    from rmmss_core.deploy import create_backend

    backend = create_backend("torch", ROOT / "rosbags" / "student.pt")
    assert backend.spec.resize_policy == "stretch"


def _kitti_frame():
    rng = np.random.default_rng(0)
    rgb = rng.integers(1, 256, (KITTI_H, KITTI_W, 3), dtype=np.uint8)
    label = rng.integers(0, 20, (KITTI_H, KITTI_W))
    return rgb, label


def test_a_1242x375_frame_keeps_its_aspect_ratio_in_training_samples():
    rgb, label = _kitti_frame()
    spec = PreprocessSpec(input_size=NET)
    s = make_sample({"rgb": rgb / np.float32(255.0)}, label, "kitti", spec)
    rows = (s["label"] != 255).any(dim=1).nonzero()[:, 0]
    assert (s["label"] != 255).any(dim=0).all()  # full width used
    h = int(rows.max() - rows.min() + 1)
    assert abs(NET[1] / h - KITTI_W / KITTI_H) < 0.1  # 160 / 48 = 3.33 vs 3.31: aspect kept
    pad = torch.zeros(3, 1, 1)
    pad_value = normalize(pad, spec.normalization["rgb"])[:, 0, 0]
    top = s["rgb"][:, : int(rows.min())]
    assert top.numel() and torch.allclose(top, pad_value[:, None, None].expand_as(top))
    # the stretch a spec from an old checkpoint keeps: every row is image
    old = make_sample({"rgb": rgb / np.float32(255.0)}, label, "kitti",
                      PreprocessSpec(input_size=NET, resize_policy="stretch"))
    assert (old["label"] != 255).all()


def test_a_1242x375_camera_keeps_its_aspect_ratio_in_the_node_and_the_mask_covers_it():
    rgb, _ = _kitti_frame()
    spec = PreprocessSpec(input_size=NET)
    seen = {}

    def infer(inputs, available):
        seen["rgb"] = inputs["rgb"]
        return np.full((1, *NET), 7, dtype=np.uint8)

    pipe = Pipeline(SimpleNamespace(spec=spec, infer=infer))
    info = CameraInfo(width=KITTI_W, height=KITTI_H, distortion_model="plumb_bob")
    info.k = [721.5, 0, 609.6, 0, 721.5, 172.9, 0, 0, 1]
    info.d = [0.0] * 5
    fs = SimpleNamespace(stamp_ns=10**9, messages={"rgb": fill_image(Image(), rgb, "rgb8")}, missing=())
    r = pipe.process(fs, info)
    assert r.mask.shape == (KITTI_H, KITTI_W) and (r.mask == 7).all()  # letterbox: nothing lost
    x = seen["rgb"][0]
    image_rows = (x != x[:, :1, :1]).any(dim=0).any(dim=1).nonzero()[:, 0]
    h = int(image_rows.max() - image_rows.min() + 1)
    assert abs(NET[1] / h - KITTI_W / KITTI_H) < 0.1


def test_training_spec_is_new_even_from_a_dataset_that_recorded_stretch(tmp_path):
    from rmmss_core.train.run import dataset_spec

    d = PreprocessSpec(resize_policy="stretch").to_dict()
    (tmp_path / "rmmss_dataset.json").write_text(json.dumps({"spec": d}))
    cfg = SimpleNamespace(data=SimpleNamespace(root=str(tmp_path), class_set="deliver", input_size=[128, 160]))
    spec = dataset_spec(cfg)
    assert spec.resize_policy == "letterbox" and spec.input_size == (128, 160)
