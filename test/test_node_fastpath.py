"""Issue #14 (CPU path): the optimised ``Pipeline.prepare`` gives the model exactly the input the
old path gave (bit-identical tensors), for a realistic 640 x 480 frame set: rgb8 / bgr8 /
yuv422_yuy2 cameras, 32FC1 and 16UC1 depth with invalid pixels, 64k-point Velodyne-like and
Ouster-like clouds, event frames and event packets, at the camera resolution and at smaller
network inputs under every resize policy. The reference is the frozen old path in
``test/_frozen_prepare.py``."""
from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _frozen_prepare import reference_prepare
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from rmmss_core.spec import DepthEncoding, LidarEncoding, PreprocessSpec
from rmmss_ros.conversions import fill_cloud, fill_image
from rmmss_ros.conversions.event_packet import encode_mono
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams

H, W, N = 480, 640, 65536
STAMP = 50 * 10**9


def camera_msg(rng, encoding):
    # smooth content + noise, like a real image (and every byte value occurs)
    yy, xx = np.mgrid[0:H, 0:W]
    base = (np.stack([xx * 255 / W, yy * 255 / H, (xx + yy) * 255 / (W + H)], axis=2)
            + rng.normal(0, 20, (H, W, 3))).clip(0, 255).astype(np.uint8)
    if encoding == "yuv422_yuy2":
        return fill_image(Image(), rng.integers(0, 256, (H, W, 2), dtype=np.uint8), encoding)
    return fill_image(Image(), base if encoding == "rgb8" else base[:, :, ::-1], encoding)


def depth_msg(rng, encoding):
    d = rng.uniform(0.2, 120.0, (H, W)).astype(np.float32)  # beyond max_depth too (clipped)
    bad = rng.random((H, W))
    if encoding == "32FC1":
        d[bad < 0.05] = np.nan
        d[(bad >= 0.05) & (bad < 0.07)] = 0.0
        d[(bad >= 0.07) & (bad < 0.08)] = np.inf
        d[(bad >= 0.08) & (bad < 0.09)] = -1.0
        # exact quantisation boundaries of the metric encoding: (k + 0.5) / 255 * max_depth
        k = rng.integers(0, 255, 2000)
        d.reshape(-1)[rng.integers(0, H * W, 2000)] = ((k + 0.5) / 255.0 * 20.0).astype(np.float32)
        return fill_image(Image(), d, "32FC1")
    mm = (d * 1000).clip(0, 65535).astype(np.uint16)
    mm[bad < 0.05] = 0
    mm.reshape(-1)[:65536] = np.arange(65536, dtype=np.uint16)  # every millimetre value
    return fill_image(Image(), mm, "16UC1")


def velodyne_cloud(rng):
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"),
                   ("time", "<f4")])
    a = np.zeros(N, dt)
    az = rng.uniform(-np.pi, np.pi, N)
    r = rng.uniform(0.5, 100.0, N)
    a["x"], a["y"], a["z"] = r * np.cos(az), r * np.sin(az), rng.uniform(-3, 6, N)
    a["intensity"] = rng.integers(0, 256, N).astype(np.float32)
    a["ring"], a["time"] = rng.integers(0, 32, N), rng.uniform(0, 0.1, N)
    a["x"][:500] = np.nan  # invalid returns
    a[500:510] = a[600:610]  # duplicate points: equal depth ties
    return fill_cloud(PointCloud2(), a, PointField)


def ouster_cloud(rng):
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("_pad", "<f4"), ("intensity", "<f4"),
                   ("t", "<u4"), ("reflectivity", "<u2"), ("ring", "<u2"), ("ambient", "<u2"),
                   ("range", "<u4")])
    a = np.zeros(N, dt)
    az = np.tile(np.linspace(-np.pi, np.pi, 1024, endpoint=False), 64)
    r = rng.uniform(0.3, 120.0, N)
    a["x"], a["y"], a["z"] = r * np.cos(az), r * np.sin(az), np.repeat(np.linspace(-4, 4, 64), 1024)
    a["intensity"] = rng.integers(0, 40000, N).astype(np.float32)  # photon counts as float
    a["reflectivity"], a["ambient"] = rng.integers(0, 65535, N), rng.integers(0, 65535, N)
    none = rng.random(N) < 0.1
    a["x"][none] = a["y"][none] = a["z"][none] = 0.0  # no return: (0, 0, 0)
    return fill_cloud(PointCloud2(), a, PointField, organized_shape=(64, 1024))


def event_packets(rng):
    msgs = []
    for k in range(40):
        x, y = rng.integers(0, W, 300), rng.integers(0, H, 300)
        t = np.sort(rng.integers(0, 10**6, 300))
        stamp = STAMP - 39 * 10**6 + k * 10**6
        msgs.append(SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp // 10**9,
                                                                                 nanosec=stamp % 10**9)),
                                    height=H, width=W, seq=k, time_base=0, encoding="mono",
                                    is_bigendian=False, events=encode_mono(x, y, t, rng.integers(0, 2, 300))))
    return msgs


def camera_info(distorted):
    ci = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    ci.k = [520.0, 0, 318.5, 0, 515.0, 241.25, 0, 0, 1]
    ci.d = [-0.28, 0.07, 0.001, -0.0005, 0.0] if distorted else [0.0] * 5
    return ci


CASES = [  # (camera, depth, cloud, events, input_size, policy, lidar resample, distorted)
    ("bgr8", "16UC1", "velodyne", "image", (480, 640), "stretch", "nearest_return", False),
    ("rgb8", "32FC1", "ouster", "packet", (480, 640), "letterbox", "nearest_return", True),
    ("yuv422_yuy2", "32FC1", "velodyne", "image", (240, 320), "stretch", "nearest_return", False),
    ("bgr8", "16UC1", "ouster", "packet", (256, 320), "letterbox", "nearest", True),
    ("rgb8", "16UC1", "velodyne", "image", (256, 256), "crop", "nearest_return", False),
    ("rgb8", "32FC1", "ouster", "image", (256, 320), "letterbox", "nearest_return", False),
    ("bgr8", "16UC1", "velodyne", "image", (96, 160), "letterbox", "nearest_return", True),
]
LIDAR_CHANNELS = {(96, 160): ("depth", "intensity", "height")}  # key channel "depth", not "range"


@pytest.fixture(params=["kernels-2-threads", "numpy-1-thread"])
def path(request):
    """The compiled kernels with the LiDAR on the side thread (the default), and the numpy
    references all on the calling thread: both must give the old input exactly."""
    from rmmss_core import kernels
    if request.param.startswith("numpy"):
        with kernels.disabled():
            yield 1
    else:
        if not kernels.enabled():
            pytest.skip(f"compiled kernels unavailable: {kernels.why_disabled()}")
        yield 2


@pytest.mark.parametrize("cam,dep,cloud,events,size,policy,resample,distorted", CASES)
def test_prepare_gives_the_model_exactly_the_old_input(cam, dep, cloud, events, size, policy, resample, distorted,
                                                       path):
    rng = np.random.default_rng(zlib.crc32(repr((cam, dep, cloud, size)).encode()))
    spec = PreprocessSpec(input_size=size, resize_policy=policy,
                          lidar=LidarEncoding(resample=resample, intensity_units="auto",
                                              channels=LIDAR_CHANNELS.get(size, ("range", "intensity", "height"))),
                          depth=DepthEncoding(max_depth=20.0))
    params = PipelineParams(event_format="image" if events == "image" else "packet", preprocess_threads=path)
    pipe = Pipeline(SimpleNamespace(spec=spec), params)
    msgs = {"rgb": camera_msg(rng, cam), "depth": depth_msg(rng, dep),
            "lidar": velodyne_cloud(rng) if cloud == "velodyne" else ouster_cloud(rng)}
    ev_image = None
    if events == "image":
        msgs["event"] = fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8")
    else:
        packets = event_packets(rng)
        ref_pipe = Pipeline(SimpleNamespace(spec=spec), params)
        for p in packets[:-1]:
            assert pipe.add_event_message(p) is None and ref_pipe.add_event_message(p) is None
        msgs["event"] = packets[-1]
        ev_image = ref_pipe.encode_events(packets[-1], STAMP, (H, W), ref_pipe.camera(camera_info(distorted)))
    fs = SimpleNamespace(stamp_ns=STAMP, messages=msgs, missing=())
    info = camera_info(distorted)
    got = pipe.prepare(fs, info)
    assert not got.errors and got.used == ("rgb", "depth", "event", "lidar")
    want = reference_prepare(pipe, fs, info, ev_image)
    for m in ("rgb", "depth", "event", "lidar"):
        g, w = got.inputs[m], want[m]
        assert g.dtype == torch.float32 and g.shape == (1, 3, *size) and g.is_contiguous(), m
        diff = (g != w).sum().item()
        assert diff == 0, f"{m}: {diff} values differ from the old path (max {float((g - w).abs().max())})"
    assert (got.inputs["lidar"] != got.inputs["lidar"][0, :, :1, :1]).any()  # returns landed
    assert got.rgb.shape == (H, W, 3)


def test_missing_modalities_are_zeros_and_unavailable():
    spec = PreprocessSpec(input_size=(480, 640))
    pipe = Pipeline(SimpleNamespace(spec=spec))
    rng = np.random.default_rng(1)
    fs = SimpleNamespace(stamp_ns=STAMP, messages={"depth": depth_msg(rng, "16UC1")}, missing=())
    got = pipe.prepare(fs, camera_info(False))
    want = reference_prepare(pipe, fs, camera_info(False))
    assert got.used == ("depth",)
    for m in ("rgb", "depth", "event", "lidar"):
        assert torch.equal(got.inputs[m], want[m]), m


def test_unquantised_spec_keeps_the_float_path():
    """quantize_8bit = False: depth and LiDAR stay float (no codes); camera and event bytes are
    exact either way."""
    rng = np.random.default_rng(7)
    spec = PreprocessSpec(input_size=(240, 320), quantize_8bit=False, depth=DepthEncoding(max_depth=20.0))
    pipe = Pipeline(SimpleNamespace(spec=spec))
    msgs = {"rgb": camera_msg(rng, "bgr8"), "depth": depth_msg(rng, "32FC1"), "lidar": velodyne_cloud(rng),
            "event": fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8")}
    fs = SimpleNamespace(stamp_ns=STAMP, messages=msgs, missing=())
    got = pipe.prepare(fs, camera_info(False))
    want = reference_prepare(pipe, fs, camera_info(False))
    for m in ("rgb", "depth", "event", "lidar"):
        assert torch.equal(got.inputs[m], want[m]), m
    off_grid = want["depth"] * spec.normalization["depth"].std[0] + spec.normalization["depth"].mean[0]
    assert not torch.equal((off_grid * 255).round() / 255, off_grid)  # really unquantised values
