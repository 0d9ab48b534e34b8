"""What real drivers send reaches the model as in training (issue #12): camera encodings, LiDAR
intensity units and invalid returns, LiDAR density and aspect ratio, calibration models.

Messages are built byte by byte in the drivers' layouts (usb_cam YUYV, Velodyne / Ouster clouds,
KITTI calibration), never downloaded.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rmmss_core.encodings import CameraModel, normalize_intensity, project_lidar
from rmmss_core.geometry import InputGeometry
from rmmss_core.preprocess import denormalize, fit, reduce_nearest_return, to_chw
from rmmss_core.spec import LidarEncoding, PreprocessSpec
from rmmss_ros.conversions import ConversionError, camera_from_info, camera_info_warnings, to_rgb8
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams

T_OPTICAL = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)  # REP 103 -> optical


def img(data: bytes | np.ndarray, encoding: str, w: int, h: int, step: int, big: bool = False) -> SimpleNamespace:
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=step,
                           data=bytes(data) if not isinstance(data, np.ndarray) else data.tobytes())


def bt601(y: float, u: float, v: float) -> np.ndarray:
    """Limited-range BT.601 YUV -> RGB (ITU-R BT.601, the coefficients of OpenCV's YUV codes)."""
    c, d, e = y - 16, u - 128, v - 128
    rgb = [1.164 * c + 1.596 * e, 1.164 * c - 0.391 * d - 0.813 * e, 1.164 * c + 2.018 * d]
    return np.clip(np.round(rgb), 0, 255)


# ------------------------------------------------------------------ 1. camera encodings
def test_flat_grey_yuyv_uyvy_and_bayer_decode_to_grey():
    """Failure 1: 4 x 2 flat-grey yuv422_yuy2 (step 8, usb_cam's default), yuv422 (UYVY) and
    bayer_rggb8 were refused ("unknown encoding")."""
    grey = bt601(128, 128, 128)
    for enc in ("yuv422_yuy2", "yuv422", "yuyv", "uyvy"):
        rgb = to_rgb8(img(bytes([128] * 16), enc, 4, 2, 8))
        assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
        np.testing.assert_allclose(rgb, np.broadcast_to(grey, (2, 4, 3)), atol=1)
    bayer = to_rgb8(img(np.full((2, 4), 128, np.uint8), "bayer_rggb8", 4, 2, 4))
    np.testing.assert_array_equal(bayer, np.full((2, 4, 3), 128, np.uint8))


def test_yuv422_byte_orders_are_distinguished():
    """YUYV (Y0 U Y1 V) and UYVY (U Y0 V Y1): the same bytes give different pixels."""
    data = bytes([60, 90, 200, 240] * 4)  # as YUYV: Y0=60, U=90, Y1=200, V=240
    yuyv = to_rgb8(img(data, "yuv422_yuy2", 4, 2, 8))
    np.testing.assert_allclose(yuyv[0, 0], bt601(60, 90, 240), atol=2)
    np.testing.assert_allclose(yuyv[0, 1], bt601(200, 90, 240), atol=2)
    uyvy = to_rgb8(img(data, "yuv422", 4, 2, 8))  # as UYVY: U=60, Y0=90, V=200, Y1=240
    np.testing.assert_allclose(uyvy[0, 0], bt601(90, 60, 200), atol=2)
    np.testing.assert_allclose(uyvy[0, 1], bt601(240, 60, 200), atol=2)


@pytest.mark.parametrize("enc", ["nv21", "nv12", "nv24"])
def test_semi_planar_yuv(enc):
    # limited-range red: Y 81, U 90, V 240 (BT.601)
    w, h = 4, 2
    y = np.full((h, w), 81, np.uint8)
    rows = h // 2 if enc != "nv24" else h
    pairs = w // 2 if enc != "nv24" else w
    uv = np.tile(np.array([240, 90] if enc == "nv21" else [90, 240], np.uint8), (rows, pairs))
    rgb = to_rgb8(img(np.concatenate([y.ravel(), uv.ravel()]), enc, w, h, w))
    np.testing.assert_allclose(rgb, np.broadcast_to(bt601(81, 90, 240), (h, w, 3)), atol=2)
    assert rgb[0, 0, 0] > 240 and rgb[0, 0, 1] < 10  # red, not blue (U/V order)


@pytest.mark.parametrize("pattern,red_at", [("rggb", (0, 0)), ("bggr", (1, 1)), ("gbrg", (1, 0)), ("grbg", (0, 1))])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_patterns_put_red_where_the_pattern_says(pattern, red_at, bits):
    """A red-only scene: only the mosaic's R sites are lit; demosaiced it must be red."""
    dtype = np.uint8 if bits == 8 else np.uint16
    level = 200 if bits == 8 else 200 * 256
    m = np.zeros((6, 8), dtype)
    m[red_at[0]::2, red_at[1]::2] = level
    rgb = to_rgb8(img(m.astype(dtype).astype(m.dtype.newbyteorder("<")), f"bayer_{pattern}{bits}", 8, 6, 8 * m.itemsize))
    np.testing.assert_array_equal(rgb[2:4, 2:6], np.broadcast_to(np.array([200, 0, 0], np.uint8), (2, 4, 3)))


def test_16bit_colour_and_mono16_keep_the_high_byte_with_big_endian_and_padding():
    a = np.array([[[65535, 32768, 256]]], np.uint16).repeat(2, axis=1)
    for enc, order in (("rgb16", [0, 1, 2]), ("bgr16", [2, 1, 0])):
        src = a[:, :, order]
        for big in (False, True):
            raw = src.astype(">u2" if big else "<u2").tobytes()
            row = len(raw)  # one row of 2 pixels
            msg = img(raw[:row] + b"\0\0", enc, 2, 1, row + 2, big)
            np.testing.assert_array_equal(to_rgb8(msg), [[[255, 128, 1], [255, 128, 1]]])
    mono = to_rgb8(img(np.array([[1000, 60000]], "<u2"), "mono16", 2, 1, 4))
    np.testing.assert_array_equal(mono[0, :, 0], [1000 >> 8, 60000 >> 8])


def test_odd_sizes_and_short_data_are_named():
    with pytest.raises(ConversionError, match="width 3 must be even"):
        to_rgb8(img(bytes(12), "yuv422_yuy2", 3, 2, 6))
    with pytest.raises(ConversionError, match="nv21.*even width and height"):
        to_rgb8(img(bytes(9), "nv21", 2, 3, 2))
    with pytest.raises(ConversionError, match="data has 10 bytes"):
        to_rgb8(img(bytes(10), "nv21", 4, 2, 4))


# ------------------------------------------------------------- 2. LiDAR intensity, no return
K64 = np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]])


def camera_info(w=64, h=48, k=K64, d=(0.0,) * 5, p=None, model="plumb_bob"):
    k = np.asarray(k, float)
    p = np.hstack([k, np.zeros((3, 1))]) if p is None else np.asarray(p, float)
    return SimpleNamespace(width=w, height=h, k=k.ravel().tolist(), d=list(d), p=p.ravel().tolist(),
                           distortion_model=model)


def cloud(layout: str, xyz: np.ndarray, intensity: np.ndarray) -> SimpleNamespace:
    """PointCloud2 in a driver's layout. velodyne: velodyne_pointcloud's PointXYZIRT (x y z
    intensity float32, ring uint16, time float32; point_step 22). ouster: x y z float32, 4 bytes
    pad, intensity uint16 photon counts at 16 (float32 in ``ouster_float``), t uint32 at 20,
    reflectivity uint16, ring uint16, ambient uint16, range uint32 at 32; point_step 48. nuscenes: x y z intensity float32, ring
    float32 (point_step 20)."""
    F = SimpleNamespace
    if layout == "velodyne":
        dt = np.dtype({"names": ["x", "y", "z", "intensity", "ring", "time"],
                       "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"], "offsets": [0, 4, 8, 12, 16, 18],
                       "itemsize": 22})
        types = {"x": 7, "y": 7, "z": 7, "intensity": 7, "ring": 4, "time": 7}
    elif layout in ("ouster", "ouster_float"):
        fl = layout == "ouster_float"  # ouster-ros' float32 intensity (photon counts as float)
        dt = np.dtype({"names": ["x", "y", "z", "intensity", "t", "reflectivity", "ring", "ambient", "range"],
                       "formats": ["<f4", "<f4", "<f4", "<f4" if fl else "<u2", "<u4", "<u2", "<u2", "<u2", "<u4"],
                       "offsets": [0, 4, 8, 16, 20, 24, 26, 28, 32], "itemsize": 48})
        types = {"x": 7, "y": 7, "z": 7, "intensity": 7 if fl else 4, "t": 6, "reflectivity": 4, "ring": 4,
                 "ambient": 4, "range": 6}
    else:
        dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")])
        types = {n: 7 for n in dt.names}
    pts = np.zeros(len(xyz), dt)
    pts["x"], pts["y"], pts["z"] = xyz.T
    pts["intensity"] = intensity
    fields = [F(name=n, offset=dt.fields[n][1], datatype=types[n], count=1) for n in dt.names]
    return F(header=F(stamp=F(sec=1, nanosec=0)), height=1, width=len(pts), fields=fields, is_bigendian=False,
             point_step=dt.itemsize, row_step=dt.itemsize * len(pts), data=pts.tobytes(), is_dense=True)


def four_points_ahead() -> np.ndarray:
    """4 points 10 m ahead (LiDAR x forward), 1 m apart sideways: 4 distinct pixels."""
    return np.array([[10.0, y, 0.0] for y in (1.5, 0.5, -0.5, -1.5)])


def _pipeline(spec=None, **params):
    spec = spec or PreprocessSpec(input_size=(48, 64))
    backend = SimpleNamespace(spec=spec, infer=None)
    return Pipeline(backend, PipelineParams(**params))


def _intensity_at_points(pipe, msg, xyz):
    cam = camera_from_info(camera_info())
    enc = pipe.encode_lidar(msg, cam)
    uv, _ = cam.project(xyz @ T_OPTICAL[:3, :3].T)
    cols, rows = np.floor(uv[:, 0] + 0.5).astype(int), np.floor(uv[:, 1] + 0.5).astype(int)
    return enc[rows, cols, 1]


@pytest.mark.parametrize("layout,values,units", [("velodyne", [5, 50, 120, 250], "byte"),
                                                 ("nuscenes", [5, 50, 120, 250], "byte"),
                                                 ("ouster", [100, 1000, 3000, 60000], "counts16")])
def test_intensity_units_give_distinct_ordered_values(layout, values, units):
    """Failure 2: all four encoded as 1.0 (clipped). Now 4 distinct, increasing values equal to
    the shared normalisation for the sensor type (what training feeds: MUSES reads v / 255)."""
    xyz = four_points_ahead()
    pipe = _pipeline(T_cam_lidar=tuple(T_OPTICAL.ravel()))
    got = _intensity_at_points(pipe, cloud(layout, xyz, np.array(values)), xyz)
    assert len(set(got.tolist())) == 4 and np.all(np.diff(got) > 0) and got.max() < 1.0
    assert pipe.lidar_units(cloud(layout, xyz, np.array(values))) == units
    want = np.round(normalize_intensity(np.array(values, np.float32), units) * 255) / 255
    np.testing.assert_allclose(got, want, atol=1e-6)
    if units == "byte":  # the MUSES reader's rule for the same 0..255 sensors
        np.testing.assert_allclose(got, np.round(np.array(values) / 255 * 255) / 255, atol=1e-6)


def test_ouster_layout_with_float_intensity_is_counts_by_driver():
    """ouster-ros publishes photon counts in a float32 ``intensity`` next to reflectivity / ambient."""
    xyz = four_points_ahead()
    msg = cloud("ouster_float", xyz, np.array([100, 1000, 3000, 60000]))
    pipe = _pipeline(T_cam_lidar=tuple(T_OPTICAL.ravel()))
    assert pipe.lidar_units(msg) == "counts16"
    got = _intensity_at_points(pipe, msg, xyz)
    assert len(set(got.tolist())) == 4 and np.all(np.diff(got) > 0)


def test_intensity_units_parameter_overrides_the_datatype():
    xyz = four_points_ahead()
    msg = cloud("velodyne", xyz, np.array([100.0, 1000, 3000, 60000]))  # float counts (ouster float driver)
    pipe = _pipeline(T_cam_lidar=tuple(T_OPTICAL.ravel()), lidar_intensity_units="counts16")
    got = _intensity_at_points(pipe, msg, xyz)
    assert len(set(got.tolist())) == 4 and np.all(np.diff(got) > 0)
    auto = _pipeline(T_cam_lidar=tuple(T_OPTICAL.ravel()))
    auto.encode_lidar(msg, camera_from_info(camera_info()))
    assert any("counts16" in w for w in auto._pending_warnings)  # float > 255 on the byte scale


def test_no_return_points_at_the_origin_are_not_projected():
    """Failure 2: Ouster's (0, 0, 0) no-return points were projected (with a mounting offset they
    land on the principal point)."""
    T = T_OPTICAL.copy()
    T[:3, 3] = [0.0, 0.08, 0.3]  # camera 30 cm behind, 8 cm above the LiDAR: the origin is in view
    xyz = np.vstack([np.zeros((5, 3)), [[np.nan, 1.0, 1.0]], [[20.0, 0.0, 0.0]]])
    img_ = project_lidar(np.c_[xyz, np.full(7, 0.5)], T, CameraModel(64, 48, K64), LidarEncoding())
    hit = np.argwhere(img_.any(axis=2))
    assert len(hit) == 1  # only the real return at 20 m
    r, c = hit[0]
    assert img_[r, c, 0] == pytest.approx(20 / 80, abs=1 / 255)


def test_range_channel_is_measured_in_the_lidar_frame_with_a_mounting_offset():
    """#15 (a): range must be the LiDAR's own distance, not the camera-frame one. With a real
    mounting offset (camera 1.5 m behind and 0.4 m above the LiDAR) the two differ by 1.5 m."""
    T = T_OPTICAL.copy()
    T[:3, 3] = [0.0, 0.4, 1.5]
    p = np.array([[30.0, 0.0, 0.0, 0.0]])  # 30 m ahead of the LiDAR
    enc = LidarEncoding(channels=("range", "depth", "height"), max_range=80.0)
    im = project_lidar(p, T, CameraModel(64, 48, K64), enc, quantize=False)
    px = im[im.any(axis=2)]
    assert px.shape == (1, 3)
    assert px[0, 0] == pytest.approx(30.0 / 80, abs=1e-6)  # LiDAR range
    assert px[0, 1] == pytest.approx(31.5 / 80, abs=1e-6)  # camera depth z = 30 + 1.5
    cam_range = np.sqrt(31.5 ** 2 + 0.4 ** 2) / 80
    assert abs(px[0, 0] - cam_range) > 1.0 / 80


# ----------------------------------------------------------------- 3. density, aspect ratio
# the same KITTI-like camera and HDL-64E-like scan as the density benchmark (docs/bench/encodings.md),
# at a coarser azimuth step to keep the test fast
from rmmss_core.bench.encodings import KITTI_K  # noqa: E402
from rmmss_core.bench.encodings import hdl64_scan as _bench_scan  # noqa: E402


def hdl64_scan(az_step_deg: float = 0.17) -> np.ndarray:
    return _bench_scan(az_step_deg)


def _fill(x: torch.Tensor) -> int:
    return int((x != 0).any(dim=0).sum())


@pytest.mark.parametrize("policy", ["stretch", "letterbox", "crop"])
def test_lidar_density_reaches_the_network_input(policy):
    """Failure 3: a KITTI-like frame kept 3.6% of the input pixels with a return (nearest resize
    of the camera-resolution projection) against 31% for a projection at the input resolution.
    Now the input keeps >= 90% of the pixels that the input-resolution projection fills."""
    cam = CameraModel(1242, 375, KITTI_K)
    spec = PreprocessSpec(input_size=(128, 160), resize_policy=policy)
    pts = hdl64_scan()
    full = project_lidar(pts, T_OPTICAL, cam, spec.lidar, intensity_units="byte")
    net = fit(to_chw(full), spec.input_size, "lidar", spec)
    direct = project_lidar(pts, T_OPTICAL, InputGeometry.of((375, 1242), spec.input_size, policy).camera(cam),
                           spec.lidar, intensity_units="byte")
    px, py, bw, bh = InputGeometry.of((375, 1242), spec.input_size, policy).box
    direct[:py], direct[py + bh:], direct[:, :px], direct[:, px + bw:] = 0, 0, 0, 0  # outside the image's view
    ref = _fill(to_chw(direct))
    assert ref > 0.1 * 128 * 160 if policy != "letterbox" else ref > 0.03 * 128 * 160
    assert _fill(net) >= 0.9 * ref
    old = torch.nn.functional.interpolate(to_chw(full)[None], size=spec.input_size, mode="nearest")[0]
    if policy == "stretch":
        assert _fill(old) < 0.3 * ref  # what nearest resampling kept


def test_nearest_return_keeps_the_nearest_point_of_each_cell():
    x = torch.zeros(3, 4, 4)
    x[:, 0, 0] = torch.tensor([0.5, 0.1, 0.2])   # far
    x[:, 1, 1] = torch.tensor([0.25, 0.9, 0.3])  # near: wins the top-left 2 x 2 cell
    x[:, 3, 3] = torch.tensor([0.7, 0.2, 0.1])
    out = reduce_nearest_return(x, (2, 2), key=0)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.25, 0.9, 0.3]))
    torch.testing.assert_close(out[:, 1, 1], torch.tensor([0.7, 0.2, 0.1]))
    assert out[:, 0, 1].abs().sum() == 0 and out[:, 1, 0].abs().sum() == 0
    # a spec saved before the field existed keeps the nearest rule it was trained with
    old = PreprocessSpec.from_dict({k: v for k, v in PreprocessSpec().to_dict().items()
                                    if k not in ("resize_policy",)} | {"lidar": {"channels": ["range"] * 3}})
    assert old.lidar.resample == "nearest" and old.resize_policy == "stretch"


def test_aspect_ratio_policies_keep_the_shape_and_map_the_mask_back():
    """Failure 3: a 1242 x 375 image was squashed into 160 x 128."""
    crop = InputGeometry.of((375, 1242), (128, 160), "crop")
    x0, y0, ws, hs = crop.window
    assert abs(ws / hs - 160 / 128) < 0.01 and hs == 375 and x0 == (1242 - ws) // 2
    lb = InputGeometry.of((375, 1242), (128, 160), "letterbox")
    px, py, bw, bh = lb.box
    assert bw == 160 and abs(bw / bh - 1242 / 375) < 0.05 and py == (128 - bh) // 2
    mask = np.arange(128 * 160).reshape(128, 160) % 7
    back = lb.mask_to_source(mask.astype(np.uint8))
    assert back.shape == (375, 1242) and (back != 255).all()  # every camera pixel predicted
    back = crop.mask_to_source(mask.astype(np.uint8))
    assert back.shape == (375, 1242) and (back[:, :x0] == 255).all() and (back[:, x0:x0 + ws] != 255).all()
    # the camera as the input sees it puts the principal ray where the image does
    cam = CameraModel(1242, 375, KITTI_K)
    for geo in (crop, lb, InputGeometry.of((375, 1242), (128, 160))):
        img_ = np.zeros((375, 1242, 3), np.float32)
        img_[173, 610] = 1.0
        net = fit(to_chw(img_), (128, 160), "lidar", PreprocessSpec(input_size=(128, 160), resize_policy=geo.policy))
        r, c = np.argwhere(net[0].numpy() > 0)[0]
        uv, ok = geo.camera(cam).project(np.array([[610 - KITTI_K[0, 2], 173 - KITTI_K[1, 2], KITTI_K[0, 0]]]))
        assert ok.all() and (abs(uv[0, 0] - c) <= 1 and abs(uv[0, 1] - r) <= 1)


def test_letterbox_rgb_is_padded_with_zero_and_normalised():
    spec = PreprocessSpec(input_size=(64, 64), resize_policy="letterbox")
    x = torch.ones(3, 32, 128)
    out = fit(x, (64, 64), "rgb", spec)
    assert out.shape == (3, 64, 64) and out[:, :24].abs().sum() == 0 and torch.allclose(out[:, 24:40], torch.ones(1))
    assert denormalize(out, spec.normalization["rgb"]).shape == (3, 64, 64)


# ---------------------------------------------------------------------- 5. calibration
def test_rational_polynomial_and_equidistant_project_like_their_formulas():
    """Failure 5: rational_polynomial (8 coefficients, nonzero k4..k6) and equidistant CameraInfos
    were refused even with rectified=true, so LiDAR was never used."""
    d8 = [0.1, -0.05, 0.001, -0.002, 0.01, 0.02, -0.01, 0.005]
    info = camera_info(d=d8, model="rational_polynomial")
    assert camera_from_info(info, rectified=True).use_p
    cam = camera_from_info(info)
    X = np.array([[1.0, -0.5, 5.0]])
    x, y = 0.2, -0.1
    r2 = x * x + y * y
    k1, k2, p1, p2, k3, k4, k5, k6 = d8
    rad = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
    xd = x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    uv, ok = cam.project(X)
    np.testing.assert_allclose(uv[0], [40 * xd + 31.5, 40 * yd + 23.5], atol=1e-6)
    d4 = [0.05, -0.01, 0.002, -0.0005]
    fe = camera_from_info(camera_info(d=d4, model="equidistant"))
    r = np.hypot(x, y)
    th = np.arctan(r)
    thd = th * (1 + d4[0] * th ** 2 + d4[1] * th ** 4 + d4[2] * th ** 6 + d4[3] * th ** 8)
    uv, ok = fe.project(X)
    np.testing.assert_allclose(uv[0], [40 * x * thd / r + 31.5, 40 * y * thd / r + 23.5], atol=1e-6)
    with pytest.raises(ConversionError, match="unsupported distortion model 'kannala'"):
        camera_from_info(camera_info(d=d4, model="kannala"))


KITTI_P2 = np.array([[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791],
                     [0.0, 0.0, 1.0, 0.002745884]])
KITTI_RAW_K = np.array([[959.791, 0.0, 696.0217], [0.0, 956.9251, 224.1806], [0.0, 0.0, 1.0]])
KITTI_RAW_D = [-0.3691481, 0.1968681, 0.001353473, 0.0005677587, -0.06770705]


def test_kitti_style_calibration_warns_when_rectified_is_off_and_uses_P_with_Tx_when_on():
    """Failure 5: P with a nonzero baseline and the default rectified=false projected 5-17 px off
    with no warning. Now a clear warning, and rectified=true projects with P including Tx, Ty."""
    info = camera_info(1242, 375, KITTI_RAW_K, KITTI_RAW_D, KITTI_P2)
    warn = camera_info_warnings(info, rectified=False)
    assert len(warn) == 1 and "stereo baseline" in warn[0] and "rectified" in warn[0]
    assert camera_info_warnings(info, rectified=True) == []
    pipe = _pipeline(camera_rectified=False)
    pipe.camera(info)
    assert pipe._pending_warnings == warn  # reaches Result.warnings (the node logs them)
    X = np.array([[2.0, 1.0, 15.0], [-5.0, 1.5, 30.0]])
    uv, ok = camera_from_info(info, rectified=True).project(X)
    h = X @ KITTI_P2[:, :3].T + KITTI_P2[:, 3]
    np.testing.assert_allclose(uv, h[:, :2] / h[:, 2:], atol=1e-9)
    raw, _ = camera_from_info(info, rectified=False).project(X)
    assert np.abs(raw - uv).max() > 4.0  # what the wrong setting costs
    # raw calibration marked rectified: also said
    rawinfo = camera_info(1242, 375, KITTI_RAW_K, KITTI_RAW_D)
    assert "unrectified" in camera_info_warnings(rawinfo, rectified=True)[0]


def test_models_from_before_intensity_units_and_synthetic_data_serve_unit_intensity():
    """Found at integration: the sample student (spec saved before intensity units existed) and every
    model trained on the synthetic world (intensity already in [0, 1]) were served with `auto`, which
    reads float32 as 0..255 and divided the synthetic intensities by 255 (demo mIoU 23.0% -> 21.2%)."""
    from rmmss_core.data.synth.config import SynthConfig
    from rmmss_core.models import load_model
    from rmmss_core.spec import PreprocessSpec

    old = PreprocessSpec().to_dict()
    del old["lidar"]["intensity_units"]
    assert PreprocessSpec.from_dict(old).lidar.intensity_units == "unit"
    assert PreprocessSpec.from_dict(PreprocessSpec().to_dict()).lidar.intensity_units == "auto"
    assert SynthConfig().spec.lidar.intensity_units == "unit"
    _, spec = load_model(Path(__file__).resolve().parents[1] / "rosbags" / "student.pt")
    assert spec.lidar.intensity_units == "unit"


def _bilinear_demosaic(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Independent reference: textbook bilinear demosaicing of an ``H x W`` mosaic -> ``H x W x 3``
    float RGB, the missing samples averaged from the same-colour neighbours (cross for green and for
    red/blue in their own row or column, diagonals for red at blue and blue at red), with the border
    mirrored without repeating the edge (so every neighbour keeps its colour)."""
    h, w = mosaic.shape
    colour = np.empty((h, w), "<U1")
    for dy in (0, 1):
        for dx in (0, 1):
            colour[dy::2, dx::2] = pattern[2 * dy + dx]
    pad = np.pad(mosaic.astype(np.float64), 1, mode="reflect")
    cpad = np.pad(colour, 1, mode="reflect")
    out = np.zeros((h, w, 3))
    for y in range(h):
        for x in range(w):
            for k, c in enumerate("rgb"):
                if colour[y, x] == c:
                    out[y, x, k] = mosaic[y, x]
                    continue
                for ring in (((0, 1), (0, -1), (1, 0), (-1, 0)), ((1, 1), (1, -1), (-1, 1), (-1, -1))):
                    vals = [pad[y + 1 + dy, x + 1 + dx] for dy, dx in ring if cpad[y + 1 + dy, x + 1 + dx] == c]
                    if vals:
                        out[y, x, k] = np.mean(vals)
                        break
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_border_pixels_demosaic_like_the_interior(pattern):
    """Every pixel, the 1-pixel frame included, equals bilinear demosaicing with a parity-keeping
    mirror (the pattern test above checks the interior only). A mirror one pixel off swaps colours
    along the border: the mutation audit's surviving mutant."""
    rng = np.random.default_rng(3)
    mosaic = rng.integers(0, 256, (6, 10), dtype=np.uint8)
    got = to_rgb8(img(mosaic, f"bayer_{pattern}8", 10, 6, 10)).astype(np.float64)
    want = _bilinear_demosaic(mosaic, pattern)
    assert np.abs(got - want).max() <= 1.0  # OpenCV rounds its averages
