"""Pipeline (ROS-free) with the real tiny model and torch backend; parameter table vs the YAML
and launch file; the drop-oldest queue."""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from rmmss_core.encodings import CameraModel, encode_depth, encode_rgb, project_lidar
from rmmss_core.preprocess import preprocess
from rmmss_ros.conversions import fill_cloud, fill_image
from rmmss_ros.node.params import PARAMS, defaults, nested, validate
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams, resize_nearest
from rmmss_ros.pipeline.worker import LatestQueue

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 64


@pytest.fixture(scope="module")
def backend(tiny_model):
    from rmmss_core.deploy import create_backend

    return create_backend("torch", tiny_model)  # conftest: untrained tiny model, 32 x 48 input


def frame(rng, with_=("rgb", "depth", "event", "lidar")):
    msgs = {"rgb": fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "bgr8"),
            "depth": fill_image(Image(), rng.uniform(1, 20, (H, W)).astype(np.float32), "32FC1"),
            "event": fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8")}
    pts = np.zeros(500, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    pts["x"], pts["y"], pts["z"] = rng.uniform(2, 20, 500), rng.uniform(-5, 5, 500), rng.uniform(-1, 1, 500)
    msgs["lidar"] = fill_cloud(PointCloud2(), pts, PointField)
    return SimpleNamespace(stamp_ns=5 * 10**9, messages={m: msgs[m] for m in with_}, missing=())


def info():
    ci = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    ci.k = [40.0, 0, W / 2, 0, 40.0, H / 2, 0, 0, 1]
    ci.d = [0.0] * 5
    return ci


def test_pipeline_inputs_match_the_shared_encoders_and_masks_have_camera_size(backend):
    rng = np.random.default_rng(0)
    fs = frame(rng)
    pipe = Pipeline(backend)
    p = pipe.prepare(fs, info())
    assert p.used == ("rgb", "depth", "event", "lidar") and not p.errors
    spec = backend.spec
    cam = CameraModel(W, H, np.array(info().k).reshape(3, 3))
    bgr = np.frombuffer(fs.messages["rgb"].data, np.uint8).reshape(H, W, 3)
    pts = np.frombuffer(fs.messages["lidar"].data, np.float32).reshape(-1, 4)
    depth = np.frombuffer(fs.messages["depth"].data, np.float32).reshape(H, W)
    want, avail = preprocess({"rgb": encode_rgb(bgr[:, :, ::-1].copy()),
                              "depth": encode_depth(depth, spec.depth, True),
                              "event": np.frombuffer(fs.messages["event"].data, np.uint8).reshape(H, W, 3) / np.float32(255),
                              "lidar": project_lidar(pts, pipe.T_cam_lidar, cam, spec.lidar, True,
                                                     intensity_units="byte")}, spec)
    for m in want:  # bit-identical to encoding the raw data directly
        assert torch.equal(p.inputs[m][0], want[m]), m
    r = pipe.process(fs, info())
    assert r.mask.shape == (H, W) and r.mask.dtype == np.uint8 and r.mask.max() < 25
    assert r.color.shape == (H, W, 3)
    np.testing.assert_array_equal(r.color, np.asarray(spec.palette, np.uint8)[r.mask])
    assert set(r.timings) >= {"encode_ms", "preprocess_ms", "infer_ms"}


def test_malformed_and_missing_inputs_count_as_missing(backend):
    rng = np.random.default_rng(1)
    fs = frame(rng)
    fs.messages["depth"].data = bytes(10)
    fs.messages["event"].encoding = "bayer_weird"
    r = Pipeline(backend).process(fs, None)  # no CameraInfo: lidar cannot be projected
    assert r.used_modalities == ("rgb",)
    assert set(r.errors) == {"depth", "event", "lidar"} and "data has 10 bytes" in r.errors["depth"]
    assert "CameraInfo" in r.errors["lidar"] and r.mask.shape == (H, W)
    empty = Pipeline(backend).process(frame(rng, with_=("lidar",)), None)
    assert empty.mask is None and empty.used_modalities == ()
    only = Pipeline(backend, PipelineParams(enabled=("depth",))).process(frame(rng), info())
    assert only.used_modalities == ("depth",)


def test_overlay_blends_over_the_camera(backend):
    fs = frame(np.random.default_rng(2))
    plain = Pipeline(backend).process(fs, info())
    over = Pipeline(backend, PipelineParams(overlay=True, overlay_alpha=1.0)).process(fs, info())
    np.testing.assert_array_equal(over.color, plain.color)  # alpha 1 = the colour mask
    half = Pipeline(backend, PipelineParams(overlay=True, overlay_alpha=0.0)).process(fs, info())
    np.testing.assert_array_equal(half.color, np.frombuffer(fs.messages["rgb"].data, np.uint8).reshape(H, W, 3)[..., ::-1])


def test_resize_nearest_matches_torch():
    m = np.random.default_rng(3).integers(0, 25, (32, 48)).astype(np.uint8)
    want = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None].float(), size=(48, 64),
                                           mode="nearest")[0, 0].byte().numpy()
    np.testing.assert_array_equal(resize_nearest(m, (48, 64)), want)


def test_latest_queue_drops_oldest():
    q = LatestQueue()
    assert not q.put(1) and q.put(2) and q.put(3)
    assert q.get(0.01) == 3 and q.dropped == 2 and q.get(0.01) is None
    q.close()
    assert q.get(None) is None


def test_yaml_documents_every_parameter_with_its_default():
    doc = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    assert doc["/**"]["ros__parameters"] == nested(defaults())
    text = (ROOT / "config" / "perception.yaml").read_text()
    for p in PARAMS:  # each one carries its description as a comment
        assert p.description.split()[0] in text


def test_validation_reasons_are_clear():
    v = defaults()
    assert validate({**v, "model_path": "m.pt"}) == []
    reasons = validate({**v, "model_path": "", "rgb.enabled": False, "rate_hz": 0.0,
                        "lidar.extrinsic": [1.0] * 16, "backend": "tflite"})
    text = "\n".join(reasons)
    for part in ("model_path is empty", "reference 'rgb' is not an enabled sensor", "rate_hz must be in",
                 "lidar.extrinsic last row", "backend must be one of"):
        assert part in text


def test_launch_file_is_valid_python_in_step_with_the_parameters():
    src = (ROOT / "launch" / "perception.launch.py").read_text()
    tree = ast.parse(src)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    assert '"params_file"' in src  # overrides and remaps: rmmss_ros.node.launch_args (test_launch_logic.py)
    # the executable: perception_node, or perception_lifecycle_node with lifecycle:=true (test_lifecycle_launch.py)
    assert "executable=executable(is_managed)" in src and 'name="perception_node"' in src


@pytest.mark.parametrize("modality", ["depth", "lidar"])
def test_non_finite_encoder_output_costs_only_its_modality(backend, monkeypatch, modality):
    """#15 (b): the guard on encoder outputs. An encoder returning NaN / Inf (a bug, or a value the
    conversions let through) must mark that modality missing with an error, never reach the model.
    (The camera's input is its RGB8 bytes as 8-bit codes since issue #14: it cannot be NaN.)"""
    rng = np.random.default_rng(3)
    pipe = Pipeline(backend)
    bad = np.full((H, W, 3), 0.5, np.float32)
    bad[3, 4, 1] = np.nan if modality != "rgb" else np.inf
    monkeypatch.setattr(pipe, f"encode_{modality}", lambda *a, **k: bad)
    p = pipe.prepare(frame(rng), info())
    assert "NaN or Inf" in p.errors[modality] and modality not in p.used
    assert all(torch.isfinite(x).all() for x in p.inputs.values())
    assert set(p.used) | {modality} == {"rgb", "depth", "event", "lidar"}


def test_the_pipeline_compiles_the_robot_input_kernels_before_the_first_frame(backend, monkeypatch):
    """compressedDepth's RVL decoder and the depth-registration z-buffer (both encodings) are
    compiled (or loaded from numba's cache) when the CPU pipeline starts, as the LiDAR and plane
    kernels are, so that the first such frame does not pay seconds of compilation."""
    from rmmss_core import kernels
    from rmmss_ros.conversions import rvl
    from rmmss_ros.registration import register
    monkeypatch.setattr(rvl, "_RVL_KERNEL", None)
    monkeypatch.setattr(register, "_KERNEL", None)
    Pipeline(backend)
    if kernels.enabled():
        assert rvl._RVL_KERNEL is not None
        assert len(register._KERNEL.signatures) == 2  # uint16 mm and float32 m depth
    else:  # the numpy references serve: nothing to compile
        assert rvl._RVL_KERNEL is None and register._KERNEL is None
