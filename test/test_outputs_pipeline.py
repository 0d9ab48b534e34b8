"""The node's pipeline with the issue #23 outputs: confidence at the camera resolution beside the
mask (same geometry), ``min_confidence`` marking, and a healthy LiDAR before any CameraInfo being
"unusable, waiting for camera_info" rather than an error."""
from __future__ import annotations

import numpy as np
import pytest
from test_pipeline import H, W, frame, info

from rmmss_core.deploy.confidence import min_confidence_level
from rmmss_core.geometry import InputGeometry
from rmmss_ros.outputs.usability import WAITING_FOR_CAMERA_INFO, split_unusable
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    import torch

    from rmmss_core.deploy import create_backend
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec

    torch.manual_seed(0)
    model = create_model("anymodal", size="tiny", num_classes=25)
    with torch.no_grad():
        model.decoder.linear_pred.weight.mul_(40.0)  # a real spread of confidences
    path = tmp_path_factory.mktemp("m") / "tiny.pt"
    save_model_checkpoint(path, model, PreprocessSpec(input_size=(32, 48)))
    return create_backend("torch", path)


def test_confidence_has_the_mask_geometry_and_min_confidence_marks_below_it(backend):
    fs = frame(np.random.default_rng(0))
    plain = Pipeline(backend, PipelineParams()).process(fs, info())
    assert plain.confidence is None
    with_conf = Pipeline(backend, PipelineParams(confidence=True)).process(fs, info())
    assert np.array_equal(with_conf.mask, plain.mask)
    conf = with_conf.confidence
    assert conf.dtype == np.uint8 and conf.shape == (H, W) == with_conf.mask.shape
    # the very confidence the backend computed, brought to the camera size with the mask's geometry
    p = Pipeline(backend).prepare(fs, info())
    _, small = backend.infer_with_confidence(p.inputs, p.available)
    geometry = InputGeometry.of((H, W), small.shape[1:], backend.spec.resize_policy)
    assert np.array_equal(conf, geometry.mask_to_source(small[0], fill=0))
    m = float(np.median(conf)) / 255
    marked = Pipeline(backend, PipelineParams(confidence=True, min_confidence=m)).process(fs, info())
    below = conf < min_confidence_level(m)
    assert 0.1 < below.mean() < 0.9
    assert np.all(marked.mask[below] == 255) and np.array_equal(marked.mask[~below], plain.mask[~below])
    # min_confidence alone (no ~/confidence published) still marks
    only = Pipeline(backend, PipelineParams(min_confidence=m)).process(fs, info())
    assert only.confidence is None and np.array_equal(only.mask, marked.mask)


def test_lidar_before_camera_info_is_unusable_not_an_error(backend):
    fs = frame(np.random.default_rng(1), with_=("rgb", "lidar"))
    res = Pipeline(backend, PipelineParams(enabled=("rgb", "lidar"))).process(fs, None)
    assert res.used_modalities == ("rgb",) and "lidar" in res.errors
    unusable, errors = split_unusable(res.errors)
    assert unusable == {"lidar": WAITING_FOR_CAMERA_INFO} and errors == {}
    # a malformed cloud stays an error
    bad = frame(np.random.default_rng(2), with_=("rgb", "lidar"))
    bad.messages["lidar"].row_step = 7
    res = Pipeline(backend, PipelineParams(enabled=("rgb", "lidar"))).process(bad, info())
    unusable, errors = split_unusable(res.errors)
    assert unusable == {} and "lidar" in errors
