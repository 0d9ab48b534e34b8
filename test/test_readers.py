"""Readers on small fixture trees with the real naming; bad input gives errors naming the file."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from rmmss_core.data import build_dataset
from rmmss_core.data.deliver import DeliverDataset
from rmmss_core.data.image_io import DataError, write_png
from rmmss_core.data.layout import FrameKey, frame_path, list_conditions, list_splits, parse_frame_path
from rmmss_core.data.muses import MusesDataset, muses_spec
from rmmss_core.encodings import CameraModel, encode_to_png_uint8, from_uint8, project_lidar
from rmmss_core.modalities import MODALITIES
from rmmss_core.spec import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec

H, W = 12, 16
SPEC = PreprocessSpec(input_size=(32, 40))


def write_deliver(root, keys, depth_folder="hha", event_size=(H, W), label_value=None, skip=()):
    rng = np.random.default_rng(0)
    for k in keys:
        for m in ("rgb", "depth", "event", "lidar"):
            if m in skip:
                continue
            shape = (*event_size, 3) if m == "event" else (H, W, 3)
            write_png(frame_path(root, k, m, depth_folder), rng.integers(0, 256, shape, dtype=np.uint8))
        raw = rng.integers(0, 26, (H, W), dtype=np.uint8)
        raw[0, :4] = [0, 1, 25, 255]
        if label_value is not None:
            raw[5, 5] = label_value
        write_png(frame_path(root, k, "semantic"), np.stack([raw, raw // 2, raw // 3], axis=2))


KEYS = [FrameKey("cloud", "train", "MAP_1_point0", "000010"), FrameKey("fog", "train", "MAP_2_point1", "000020"),
        FrameKey("cloud", "val", "MAP_3_motionblur", "000030"), FrameKey("night", "val", "MAP_4_point2", "000040")]


def test_layout_naming_round_trip(tmp_path):
    p = frame_path(tmp_path, KEYS[0], "depth")
    assert p.relative_to(tmp_path).as_posix() == "hha/cloud/train/MAP_1_point0/000010_depth_front.png"
    assert frame_path(tmp_path, KEYS[0], "rgb").name == "000010_rgb_front.png"
    assert parse_frame_path(p) == ("depth", KEYS[0])
    with pytest.raises(ValueError, match="DELIVER naming"):
        parse_frame_path(tmp_path / "x.png")
    write_deliver(tmp_path, KEYS)
    assert list_conditions(tmp_path) == ["cloud", "fog", "night"]
    assert list_splits(tmp_path) == ["train", "val"]


def test_deliver_sample_contract_label_remap_and_normalisation(tmp_path):
    write_deliver(tmp_path, KEYS)
    ds = DeliverDataset(tmp_path, "train", spec=SPEC, resize_to_input=False)
    assert len(ds) == 2 and [s.sequence for s in ds.frames] == ["MAP_1_point0", "MAP_2_point1"]
    s = ds[0]
    assert set(s) == {*MODALITIES, "label", "available", "name"}
    assert s["name"] == "cloud/train/MAP_1_point0/000010"
    assert s["available"].tolist() == [True, True, True, True]
    assert s["label"].dtype == torch.int64 and s["label"].shape == (H, W)
    assert s["label"][0, :4].tolist() == [255, 0, 24, 255]
    assert int(s["label"][s["label"] != 255].max()) <= 24
    from rmmss_core.data.image_io import read_png
    rgb = read_png(frame_path(tmp_path, KEYS[0], "rgb")).astype(np.float32) / 255
    expect = (torch.from_numpy(rgb).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN)[:, None, None]) \
        / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(s["rgb"], expect)
    hha = read_png(frame_path(tmp_path, KEYS[0], "depth")).astype(np.float32) / 255
    torch.testing.assert_close(s["depth"], torch.from_numpy(hha).permute(2, 0, 1))  # /255 only
    r = DeliverDataset(tmp_path, "train", spec=SPEC)[0]
    assert r["rgb"].shape == (3, 32, 40) and r["label"].shape == (32, 40)


def test_deliver_filters_conditions_and_failure_cases(tmp_path):
    write_deliver(tmp_path, KEYS)
    assert len(DeliverDataset(tmp_path, "val", spec=SPEC)) == 2
    assert [k.condition for k in DeliverDataset(tmp_path, "val", conditions=["night"], spec=SPEC).frames] == ["night"]
    assert [k.sequence for k in DeliverDataset(tmp_path, "val", cases=["motionblur"], spec=SPEC).frames] == \
        ["MAP_3_motionblur"]
    with pytest.raises(ValueError, match="unknown failure case"):
        DeliverDataset(tmp_path, "val", cases=["blur"], spec=SPEC)
    with pytest.raises(DataError, match="no labelled frames"):
        DeliverDataset(tmp_path, "val", cases=["lidarjitter"], spec=SPEC)


def test_event_resized_nearest_and_absent_modality_is_zero(tmp_path):
    write_deliver(tmp_path, KEYS[:1], event_size=(H // 2, W // 2), skip=("lidar",))
    with pytest.raises(DataError, match="lidar: the lidar folder is missing"):  # never silently blank (#15)
        DeliverDataset(tmp_path, "train", spec=SPEC)
    s = DeliverDataset(tmp_path, "train", spec=SPEC, resize_to_input=False, modalities=("rgb", "depth", "event"))[0]
    assert s["event"].shape == (3, H, W)
    assert torch.equal(s["event"][:, 0::2, 0::2], s["event"][:, 1::2, 1::2])  # nearest x2 = blocks
    assert s["available"].tolist() == [True, True, True, False]
    assert s["lidar"].abs().sum() == 0


def test_synthetic_depth_folder_from_dataset_json(tmp_path):
    write_deliver(tmp_path, KEYS[:1], depth_folder="depth")
    (tmp_path / "rmmss_dataset.json").write_text(json.dumps({"depth_folder": "depth",
                                                             "spec": SPEC.to_dict()}))
    ds = build_dataset("synthetic", root=tmp_path, split="train")
    assert ds.depth_folder == "depth" and ds.spec == SPEC and ds[0]["available"].all()
    with pytest.raises(KeyError, match="valid: \\['deliver', 'muses', 'synthetic'\\]"):
        build_dataset("cityscapes", root=tmp_path)


def test_synthetic_png_equals_encoder_output(tmp_path):
    """What the synth writer stores (encode_to_png_uint8) reads back bit-identical to the encoder."""
    cam = CameraModel(W, H, np.array([[10.0, 0, 8], [0, 10.0, 6], [0, 0, 1]]))
    rng = np.random.default_rng(1)
    pts = np.c_[rng.uniform(-3, 3, (400, 2)), rng.uniform(1, 30, 400), rng.uniform(0, 1, 400)]
    enc = project_lidar(pts, np.eye(4), cam)
    write_deliver(tmp_path, KEYS[:1], skip=("lidar",))
    write_png(frame_path(tmp_path, KEYS[0], "lidar"), encode_to_png_uint8(enc))
    ds = DeliverDataset(tmp_path, "train", spec=SPEC, resize_to_input=False)
    encoded, _ = ds.load_encoded(0)
    np.testing.assert_array_equal(encoded["lidar"], enc)
    np.testing.assert_array_equal(from_uint8(encode_to_png_uint8(enc)), enc)


@pytest.mark.parametrize("problem, match", [
    ("missing", "000010_lidar_front.png: file is missing"),
    ("size", "000010_depth_front.png: size 8 x 6 does not match"),
    ("label", "000010_semantic_front.png: unknown label value\\(s\\) \\[77\\]"),
    ("corrupt", "000010_rgb_front.png: corrupt or unreadable image"),
])
def test_bad_input_errors_name_the_file(tmp_path, problem, match):
    write_deliver(tmp_path, KEYS[:1], label_value=77 if problem == "label" else None)
    if problem == "missing":
        frame_path(tmp_path, KEYS[0], "lidar").unlink()
    elif problem == "size":
        write_png(frame_path(tmp_path, KEYS[0], "depth"), np.zeros((6, 8, 3), np.uint8))
    elif problem == "corrupt":
        frame_path(tmp_path, KEYS[0], "rgb").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    ds = DeliverDataset(tmp_path, "train", spec=SPEC)
    with pytest.raises(DataError, match=match):
        ds[0]
    if problem == "missing":
        s = DeliverDataset(tmp_path, "train", spec=SPEC, missing_ok=True)[0]
        assert s["available"].tolist() == [True, True, True, False]


# ---------------------------------------------------------------- MUSES
MUSES_K = [[1000.0, 0, 960], [0, 1000.0, 540], [0, 0, 1]]
T_CAM_LIDAR = [[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]


def write_muses(root, name="REC0001_frame_000100", label_value=None):
    d = ("train", "fog", "night")
    rgb = np.full((54, 96, 3), 128, np.uint8)  # 1/20 of 1920 x 1080
    write_png(root.joinpath("frame_camera", *d, f"{name}_frame_camera.png"), rgb)
    lab = np.zeros((54, 96), np.uint8)
    lab[0, 0] = 255
    lab[1, 1] = 18
    if label_value is not None:
        lab[2, 2] = label_value
    write_png(root.joinpath("gt_semantic", *d, f"{name}_gt_labelTrainIds.png"), lab)
    pts = np.array([[10.0, 0.0, 0.0, 255.0, 1, 0.1], [20.0, 0.0, 0.0, 51.0, 2, 0.1],
                    [-5.0, 0.0, 0.0, 10.0, 3, 0.1]])
    p = root.joinpath("lidar", *d, f"{name}_lidar.bin")
    p.parent.mkdir(parents=True, exist_ok=True)
    pts.astype(np.float64).tofile(p)
    p = root.joinpath("event_camera", *d, f"{name}_event_camera.h5")
    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, "w") as f:
        g = f.create_group("events")
        g["x"] = np.array([5, 5, 6], np.uint16)
        g["y"] = np.array([7, 7, 7], np.uint16)
        g["t"] = np.array([1000, 20000, 30000], np.uint32)
        g["p"] = np.array([1, 1, 0], np.uint8)
    (root / "calib.json").write_text(json.dumps({"intrinsics": {"frame_camera": {"K": MUSES_K}},
                                                 "extrinsics": {"lidar2frame_camera": T_CAM_LIDAR}}))


def test_muses_projects_lidar_and_accumulates_events(tmp_path):
    write_muses(tmp_path)
    spec = muses_spec(input_size=(54, 96))
    ds = MusesDataset(tmp_path, "train", spec=spec, resize_to_input=False)
    assert ds.frames == ["fog/night/REC0001_frame_000100"]
    enc, label = ds.load_encoded(0)
    assert enc["depth"] is None and label[0, 0] == 255 and label[1, 1] == 18
    # point straight ahead lands on the (scaled) principal point; nearest (10 m, intensity 1) wins
    cam = CameraModel(1920, 1080, np.array(MUSES_K)).scaled(96, 54)
    r, c = int(np.floor(cam.K[1, 2] + 0.5)), int(np.floor(cam.K[0, 2] + 0.5))
    assert np.count_nonzero(enc["lidar"].sum(axis=2)) == 1
    assert enc["lidar"][r, c, 0] == pytest.approx(10 / 80, abs=1 / 255)
    assert enc["lidar"][r, c, 1] == pytest.approx(1.0)
    assert enc["event"][7, 5, 0] == pytest.approx(2 / 4, abs=1 / 255)
    assert enc["event"][7, 6, 1] == pytest.approx(1 / 4, abs=1 / 255)
    s = ds[0]
    assert s["available"].tolist() == [True, False, True, True] and s["depth"].abs().sum() == 0
    assert build_dataset("muses", root=tmp_path, split="train", spec=spec)[0]["rgb"].shape == (3, 54, 96)


def test_muses_bad_inputs(tmp_path):
    write_muses(tmp_path, label_value=40)
    ds = MusesDataset(tmp_path, "train", spec=muses_spec(input_size=(54, 96)))
    with pytest.raises(DataError, match="gt_labelTrainIds.png: unknown label value\\(s\\) \\[40\\]"):
        ds[0]
    write_muses(tmp_path)
    lidar = next(tmp_path.glob("lidar/**/*.bin"))
    lidar.write_bytes(b"\x00" * 20)
    with pytest.raises(DataError, match="_lidar.bin: 2 float64 values is not a multiple of 6"):
        ds[0]
    write_muses(tmp_path)
    (tmp_path / "calib.json").write_text(json.dumps({"intrinsics": {}, "extrinsics": {}}))
    with pytest.raises(DataError, match="calib.json lacks intrinsics.rgb"):
        MusesDataset(tmp_path, "train", spec=muses_spec(input_size=(54, 96)))[0]
