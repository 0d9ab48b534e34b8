"""The torch preprocessing (rmmss_core.preprocess_torch, rmmss_ros.pipeline.gpu) against the numpy
path it mirrors, on CPU tensors: every encoding within one 8-bit level per pixel, the same errors
for malformed messages, and the node's Pipeline with ``preprocess.device`` set. The same checks run
on CUDA under the ``gpu`` marker (and inside ``rmmss gpu-check``)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rmmss_core.encodings import CameraModel, accumulate_events, encode_depth, project_lidar
from rmmss_core.preprocess_torch import (
    accumulate_events_t,
    encode_depth_t,
    project_lidar_t,
    quantize_t,
)
from rmmss_core.spec import DepthEncoding, EventEncoding, LidarEncoding, PreprocessSpec
from rmmss_ros.conversions import fill_cloud, fill_image
from rmmss_ros.pipeline.extrinsics import DEFAULT_T_CAM_LIDAR
from rmmss_ros.pipeline.gpu import DevicePreparer
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams

H, W = 48, 64
LEVEL = 1 / 255 + 1e-6
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


class _Field:
    def __init__(self, name="", offset=0, datatype=0, count=1):
        self.name, self.offset, self.datatype, self.count = name, offset, datatype, count


def _msg(**kw):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=5, nanosec=0)), **kw)


def image(array, encoding, pad=0, big=False):
    """An Image-like message; ``pad`` extra bytes per row, ``big`` big-endian data."""
    m = fill_image(_msg(), array, encoding)
    if big:
        a = np.asarray(array)
        m.data, m.is_bigendian = a.astype(a.dtype.newbyteorder(">")).tobytes(), 1
    if pad:
        rows = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)
        m.data = np.concatenate([rows, np.full((m.height, pad), 7, np.uint8)], axis=1).tobytes()
        m.step += pad
    return m


def cloud(points):
    return fill_cloud(_msg(), points, _Field)


def camera_info(d=(0.0,) * 5):
    return SimpleNamespace(width=W, height=H, k=[40.0, 0, W / 2 - 0.5, 0, 42.0, H / 2 + 0.3, 0, 0, 1], d=list(d),
                           p=[0.0] * 12, distortion_model="plumb_bob")


def lidar_points(rng, n=3000, dtype="<f4"):
    pts = np.zeros(n, [("x", dtype), ("y", dtype), ("z", dtype), ("pad", "<u2"), ("intensity", dtype)])
    pts["x"], pts["y"] = rng.uniform(-5, 25, n), rng.uniform(-8, 8, n)
    pts["z"], pts["intensity"] = rng.uniform(-2, 3, n), rng.uniform(-0.2, 1.3, n)
    pts["x"][:5] = np.nan  # dropped
    pts["intensity"][5:9] = np.nan  # intensity 0
    pts[10:40] = pts[40:70]  # exact duplicates: ties go to the lowest index
    return pts


def frame(rng, event_cloud=False, depth_enc="32FC1"):
    depth = rng.uniform(0.3, 90, (H, W)).astype(np.float32)
    depth[3:6, 4:9] = np.nan
    depth[10, 10:20] = 0
    msgs = {"rgb": image(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "bgr8", pad=5),
            "depth": image(depth, "32FC1") if depth_enc == "32FC1" else
            image(np.nan_to_num(depth * 1000).clip(0, 65535).astype(np.uint16), "16UC1", pad=2, big=True),
            "lidar": cloud(lidar_points(rng))}
    if event_cloud:
        n = 4000
        ev = np.zeros(n, [("x", "<u2"), ("y", "<u2"), ("t", "<f8"), ("polarity", "u1")])
        ev["x"], ev["y"] = rng.integers(0, W + 3, n), rng.integers(0, H + 2, n)
        ev["t"], ev["polarity"] = rng.uniform(-0.05, 0.01, n), rng.integers(0, 2, n)
        msgs["event"] = cloud(ev)
    else:
        msgs["event"] = image(rng.integers(0, 256, (H, W), dtype=np.uint8), "mono8")
    return SimpleNamespace(stamp_ns=5 * 10**9 + 2_000_000, messages=msgs, missing=())


class _Backend:
    name = "torch"

    def __init__(self, spec):
        self.spec = spec


def _levels(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.cpu().double() - b.cpu().double()).abs().max()) * 255


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("event_cloud,depth_enc,dist", [(False, "32FC1", (0.0,) * 5),
                                                        (True, "16UC1", (-0.2, 0.05, 0.001, -0.002, 0.01))])
def test_device_prepare_matches_the_cpu_pipeline(device, event_cloud, depth_enc, dist):
    """Whole frame sets (padded bgr8, big-endian padded 16UC1, raw events, a cloud with NaNs and
    duplicates, a distorted camera): network inputs within one intensity level of the CPU path."""
    rng = np.random.default_rng(0)
    spec = PreprocessSpec(input_size=(40, 56))
    params = PipelineParams(event_format="cloud" if event_cloud else "image")
    cpu = Pipeline(_Backend(spec), params)
    dev = DevicePreparer(Pipeline(_Backend(spec), params), device)
    fs, ci = frame(rng, event_cloud, depth_enc), camera_info(dist)
    want, got = cpu.prepare(fs, ci), dev.prepare(fs, ci)
    assert not want.errors and not got.errors
    assert np.array_equal(want.available, got.available) and want.available.all()
    assert want.out_size == got.out_size == (H, W)
    for m, x in want.inputs.items():
        y = got.inputs[m]
        assert y.device.type == device and tuple(y.shape) == tuple(x.shape)
        std = torch.tensor(spec.normalization[m].std).view(1, 3, 1, 1)
        assert _levels(x * std, y.cpu() * std) <= 1 + 1e-3, m  # denormalised: [0, 1] intensity levels
        if m != "rgb":  # nearest resize of quantised images: almost every pixel is identical
            assert (x == y.cpu()).float().mean() > 0.995, m


@pytest.mark.parametrize("device", DEVICES)
def test_lidar_projection_lands_on_the_same_pixels(device):
    rng = np.random.default_rng(1)
    pts = lidar_points(rng, 20000, "<f8")
    xyzi = np.stack([pts[n] for n in ("x", "y", "z", "intensity")], axis=1).astype(np.float32)
    T = np.asarray(DEFAULT_T_CAM_LIDAR, dtype=np.float64).reshape(4, 4)
    for cam in (CameraModel(W, H, np.array([[40.0, 0, 31.5], [0, 42, 24.3], [0, 0, 1]]),
                            D=np.array([-0.25, 0.07, 0.001, -0.001, 0.0])),
                CameraModel(W, H, np.eye(3) * 40 + np.diag([0, 0, -39]),
                            P=np.array([[38.0, 0, 30, 1.5], [0, 38, 22, 0], [0, 0, 1, 0]]), use_p=True)):
        for chans in (("range", "intensity", "height"), ("depth", "intensity", "range")):
            enc = LidarEncoding(channels=chans)
            want = project_lidar(xyzi, T, cam, enc, True)
            got = project_lidar_t(torch.from_numpy(xyzi).to(device), T, cam, enc, True).cpu()
            np.testing.assert_array_equal((want > 0).any(2), (got > 0).any(0).numpy())  # same pixels hit
            assert _levels(torch.from_numpy(want).permute(2, 0, 1), got) <= 1 + 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_depth_and_event_encodings(device):
    rng = np.random.default_rng(2)
    d = rng.uniform(0.2, 100, (H, W)).astype(np.float32)
    d[0, :5], d[1, :5], d[2, :5] = np.nan, np.inf, -1
    cam = CameraModel(W, H, np.array([[40.0, 0, 31.5], [0, 42, 24.3], [0, 0, 1]]))
    for enc in (DepthEncoding(), DepthEncoding("metric", 20.0), DepthEncoding("hha")):
        want = torch.from_numpy(encode_depth(d, enc, True, camera=cam)).permute(2, 0, 1)
        got = encode_depth_t(torch.from_numpy(d).to(device), enc, True, camera=cam)
        assert _levels(want, got) <= 1 + 1e-3, enc.kind
        assert (want == got.cpu()).float().mean() > 0.99, enc.kind
    n = 5000
    x, y = rng.integers(-2, W + 2, n), rng.integers(-2, H + 2, n)
    t, p = rng.uniform(-0.04, 0.005, n), rng.integers(-1, 2, n)
    for enc in (EventEncoding(), EventEncoding(channels=("pos", "time_surface", "neg"), window_s=0.02)):
        want = torch.from_numpy(accumulate_events(x, y, t, p, 0.0, H, W, enc, True)).permute(2, 0, 1)
        tt = [torch.from_numpy(a).to(device) for a in (x, y, t, p)]
        got = accumulate_events_t(*tt, 0.0, H, W, enc, True)
        assert _levels(want, got) <= 1 + 1e-3 and (want == got.cpu()).float().mean() > 0.999


def test_quantisation_rounds_half_to_even_like_numpy():
    x = np.array([0.5 / 255, 1.5 / 255, 2.5 / 255, -0.1, 1.7, 0.123456], dtype=np.float32)
    from rmmss_core.encodings import quantize
    assert torch.equal(quantize_t(torch.from_numpy(x)), torch.from_numpy(quantize(x)))


def test_malformed_messages_cost_only_their_modality_with_the_cpu_errors():
    rng = np.random.default_rng(3)
    spec = PreprocessSpec(input_size=(40, 56))
    fs = frame(rng)
    fs.messages["depth"].data = bytes(10)
    fs.messages["event"].encoding = "32FC1"
    bad = lidar_points(rng)[["y", "z"]]
    fs.messages["lidar"] = cloud(np.ascontiguousarray(bad))
    cpu = Pipeline(_Backend(spec)).prepare(fs, camera_info())
    dev = DevicePreparer(Pipeline(_Backend(spec)), "cpu").prepare(fs, camera_info())
    assert set(dev.errors) == set(cpu.errors) == {"depth", "event", "lidar"}
    assert dev.errors["depth"] == cpu.errors["depth"] and "data has 10 bytes" in dev.errors["depth"]
    assert dev.errors["lidar"] == cpu.errors["lidar"] and "lacks fields ['x']" in dev.errors["lidar"]
    assert dev.errors["event"] == cpu.errors["event"] and "step 64" in dev.errors["event"]
    assert dev.used == cpu.used == ("rgb",)
    no_depth = frame(rng, depth_enc="16UC1")
    no_depth.messages["depth"] = image(np.zeros((H, W), np.uint16), "16UC1")
    out = DevicePreparer(Pipeline(_Backend(spec)), "cpu").prepare(no_depth, None)
    assert "no valid depth pixel" in out.errors["depth"] and "CameraInfo" in out.errors["lidar"]


def test_pipeline_parameter_routes_prepare_to_the_device_path(monkeypatch):
    from rmmss_ros.node.params import defaults
    assert PipelineParams.from_values({**defaults(), "preprocess.device": "cuda:1"}).preprocess_device == "cuda:1"
    calls = []
    monkeypatch.setattr(DevicePreparer, "prepare", lambda self, fs, ci=None: calls.append(self.device) or "ok")
    pipe = Pipeline(_Backend(PreprocessSpec()), PipelineParams(preprocess_device="cpu"))
    assert pipe._device_prep is None  # "cpu" keeps the numpy path
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Pipeline(_Backend(PreprocessSpec()), PipelineParams(preprocess_device="cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    routed = Pipeline(_Backend(PreprocessSpec()), PipelineParams(preprocess_device="cuda"))
    assert routed.prepare(frame(np.random.default_rng(4)), camera_info()) == "ok" and calls[0].type == "cuda"


_EXTENDED = hasattr(CameraModel, "_distorted_pixels") and "intensity_units" in project_lidar.__code__.co_varnames
_NEEDS_EXTENDED = pytest.mark.skipif(not _EXTENDED, reason="the CPU definitions here predate OpenCV distortion "
                                     "models and intensity units (issue #12); the torch twin follows them once merged")


@_NEEDS_EXTENDED
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model,D", [("plumb_bob", [-0.25, 0.07, 0.001, -0.001, 0.01]),
                                     ("rational_polynomial", [-0.2, 0.05, 0.001, 0.002, 0.0, 0.1, -0.02, 0.01]),
                                     ("equidistant", [0.1, -0.05, 0.01, -0.002])])
def test_lidar_projection_follows_the_opencv_distortion_models(device, model, D):
    rng = np.random.default_rng(5)
    pts = lidar_points(rng, 20000)
    xyzi = np.stack([pts[n] for n in ("x", "y", "z", "intensity")], axis=1).astype(np.float32)
    xyzi[70:80, :3] = 0.0  # no-return markers: in view through the translation, yet never points
    T = np.asarray(DEFAULT_T_CAM_LIDAR, dtype=np.float64).reshape(4, 4)
    T[:3, 3] = [0.05, -0.1, 2.0]
    cam = CameraModel(W, H, np.array([[40.0, 0.5, 31.5], [0, 42, 24.3], [0, 0, 1]]), D=np.array(D), model=model)
    for units in ("unit", "byte", "counts16"):
        raw = xyzi.copy()
        raw[:, 3] *= {"unit": 1.0, "byte": 255.0, "counts16": 3000.0}[units]
        want = project_lidar(raw, T, cam, LidarEncoding(), True, intensity_units=units)
        got = project_lidar_t(torch.from_numpy(raw).to(device), T, cam, LidarEncoding(), True,
                              intensity_units=units).cpu()
        np.testing.assert_array_equal((want > 0).any(2), (got > 0).any(0).numpy())
        assert _levels(torch.from_numpy(want).permute(2, 0, 1), got) <= 1 + 1e-3, (model, units)
