"""Image / PointCloud2 / CameraInfo / event conversions against independent per-byte decoding
(struct), with real sensor_msgs messages and plain duck-typed objects."""
from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from rmmss_core.encodings import accumulate_events
from rmmss_core.spec import EventEncoding
from rmmss_ros.conversions import (
    ConversionError,
    camera_from_info,
    cloud_to_xyzi,
    encode_event_cloud,
    encode_event_image,
    events_from_cloud,
    fill_cloud,
    fill_image,
    image_to_numpy,
    read_points,
    to_depth_m,
    to_rgb8,
)

RNG = np.random.default_rng(0)


def raw_image(arr: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> SimpleNamespace:
    """Image-like object with ``pad`` bytes of row padding, built byte by byte."""
    h, w = arr.shape[:2]
    a = arr.astype(arr.dtype.newbyteorder(">" if big else "<"))
    rows = [a[r].tobytes() + b"\xee" * pad for r in range(h)]
    row = len(rows[0])
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=row,
                           data=b"".join(rows))


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1)])
def test_colour_encodings_to_rgb(encoding, channels):
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if encoding == "mono8":
        src, want = rgb[:, :, 0], np.repeat(rgb[:, :, :1], 3, axis=2)
    else:
        order = [2, 1, 0] if encoding.startswith("bgr") else [0, 1, 2]
        src = rgb[:, :, order]
        if channels == 4:
            src = np.concatenate([src, np.full((5, 7, 1), 77, np.uint8)], axis=2)
        want = rgb
    for pad in (0, 3):
        np.testing.assert_array_equal(to_rgb8(raw_image(src, encoding, pad)), want)


def test_zero_copy_view_of_a_real_message():
    a = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = fill_image(Image(), a, "rgb8")
    assert msg.step == 64 * 3 and msg.encoding == "rgb8"
    view = image_to_numpy(msg)
    np.testing.assert_array_equal(view, a)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))  # no copy
    padded = raw_image(a, "bgr8", pad=4)  # padded rows still a view (strides)
    assert np.shares_memory(to_rgb8(padded), np.frombuffer(padded.data, np.uint8))


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_16bit_and_float_depth_with_padding_and_endianness(big, pad):
    mm = RNG.integers(1, 20000, (4, 6)).astype(np.uint16)
    mm[0, 0] = 0
    msg = raw_image(mm, "16UC1", pad=pad, big=big)
    raw = image_to_numpy(msg)
    for r in range(4):  # independent decoding with struct
        row = msg.data[r * msg.step:r * msg.step + 12]
        assert list(raw[r]) == list(struct.unpack((">" if big else "<") + "6H", row))
    d = to_depth_m(msg)
    assert np.isnan(d[0, 0]) and d.dtype == np.float32
    np.testing.assert_allclose(d[1:], mm[1:] / 1000.0, rtol=1e-6)
    m = RNG.uniform(0.5, 50, (4, 6)).astype(np.float32)
    m[1, 2] = np.nan
    got = to_depth_m(raw_image(m, "32FC1", pad=pad, big=big))
    np.testing.assert_array_equal(got, m)


@pytest.mark.parametrize("mutate,match", [
    (dict(encoding="yuv420_10bit"), "unknown encoding"),
    (dict(step=10), "step 10 is smaller"),
    (dict(data=b"\0" * 17), "data has 17 bytes"),
    (dict(height=0), "empty image"),
])
def test_malformed_images_raise_clear_errors(mutate, match):
    msg = raw_image(np.zeros((4, 6, 3), np.uint8), "rgb8")
    for k, v in mutate.items():
        setattr(msg, k, v)
    with pytest.raises(ConversionError, match=match):
        to_rgb8(msg)


def test_depth_without_any_valid_pixel_is_an_error():
    with pytest.raises(ConversionError, match="no valid depth"):
        to_depth_m(raw_image(np.full((3, 3), np.nan, np.float32), "32FC1"))
    with pytest.raises(ConversionError, match="depth must be"):
        to_depth_m(raw_image(np.zeros((3, 3, 3), np.uint8), "rgb8"))


# ------------------------------------------------------------------------------------ clouds
def field(name, offset, datatype, count=1):
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def raw_cloud(points: list[tuple], fmt: str, fields, point_step: int, h=1, row_pad=0, big=False):
    """A PointCloud2-like object packed with struct (``fmt`` packs one point, padded to point_step)."""
    e = ">" if big else "<"
    w = len(points) // h
    rows = []
    for r in range(h):
        row = b""
        for p in points[r * w:(r + 1) * w]:
            b = struct.pack(e + fmt, *p)
            row += b + b"\xab" * (point_step - len(b))
        rows.append(row + b"\xcd" * row_pad)
    return SimpleNamespace(height=h, width=w, fields=fields, is_bigendian=big, point_step=point_step,
                           row_step=w * point_step + row_pad, data=b"".join(rows), is_dense=False,
                           header=SimpleNamespace(stamp=SimpleNamespace(sec=10, nanosec=0)))


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("row_pad", [0, 5])
def test_read_points_fields_offsets_types_padding(big, row_pad):
    # x, y, z float32 at 0/4/8, 4 pad bytes, intensity float64 at 16, ring uint16 at 24; step 32
    fields = [field("x", 0, 7), field("y", 4, 7), field("z", 8, 7), field("intensity", 16, 8),
              field("ring", 24, 4)]
    pts = [(float(i), -float(i), 0.5 * i, 0.25 * i, i % 7) for i in range(12)]
    msg = raw_cloud(pts, "fff4xdH", fields, 32, h=3, row_pad=row_pad, big=big)
    out = read_points(msg)
    assert out.shape == (12,)
    for name, col in zip(("x", "y", "z", "intensity", "ring"), range(5), strict=True):
        np.testing.assert_allclose(out[name], [p[col] for p in pts])
    assert read_points(msg, organized=True).shape == (3, 4)
    assert read_points(msg, ["ring", "x"]).dtype.names == ("ring", "x")
    xyzi = cloud_to_xyzi(msg)
    assert xyzi.dtype == np.float32 and xyzi.shape == (12, 4)
    np.testing.assert_allclose(xyzi[:, 3], [p[3] for p in pts])


def test_organised_cloud_nans_are_dropped_and_roundtrip_with_real_messages():
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    arr = np.zeros(8, dt)
    arr["x"], arr["z"], arr["intensity"] = np.arange(8), 5.0, 0.5
    arr["x"][[1, 6]] = np.nan
    msg = fill_cloud(PointCloud2(), arr, PointField, organized_shape=(2, 4))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (2, 4, 16, 64) and not msg.is_dense
    assert [f.datatype for f in msg.fields] == [PointField.FLOAT32] * 4
    back = read_points(msg, organized=True)
    assert back.shape == (2, 4) and np.isnan(back["x"][0, 1])
    assert len(read_points(msg, skip_nans=True)) == 6
    xyzi = cloud_to_xyzi(msg)
    np.testing.assert_array_equal(xyzi[:, 0], [0, 2, 3, 4, 5, 7])
    assert np.shares_memory(read_points(msg), np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("mutate,match", [
    (dict(width=0), "empty cloud"),
    (dict(point_step=8), "beyond point_step"),
    (dict(data=b"\0" * 7), "data has 7 bytes"),
    (dict(row_step=4), "row_step 4"),
    (dict(fields=[field("x", 0, 9)]), "unknown datatype"),
    (dict(fields=[field("x", 0, 7), field("x", 4, 7)]), "duplicate field"),
    (dict(fields=[field("x", 0, 7), field("intensity", 4, 7)]), r"lacks fields \['y', 'z'\]"),
])
def test_malformed_clouds_raise_clear_errors(mutate, match):
    fields = [field("x", 0, 7), field("y", 4, 7), field("z", 8, 7)]
    msg = raw_cloud([(1.0, 2.0, 3.0)] * 4, "fff", fields, 12)
    for k, v in mutate.items():
        setattr(msg, k, v)
    with pytest.raises(ConversionError, match=match):
        cloud_to_xyzi(msg)


def test_all_nan_cloud_is_an_error():
    fields = [field("x", 0, 7), field("y", 4, 7), field("z", 8, 7)]
    msg = raw_cloud([(np.nan, 1.0, np.inf)] * 3, "fff", fields, 12)
    with pytest.raises(ConversionError, match="finite"):
        cloud_to_xyzi(msg)


# ------------------------------------------------------------------------- camera info, events
def test_camera_info_to_camera_model():
    info = CameraInfo(width=64, height=48, distortion_model="plumb_bob")
    info.k = [50.0, 0, 32, 0, 50.0, 24, 0, 0, 1]
    info.d = [0.1, -0.05, 0, 0, 0]
    info.p = [45.0, 0, 31, 0, 0, 45.0, 23, 0, 0, 0, 1, 0]
    cam = camera_from_info(info)
    assert (cam.width, cam.height, cam.K[0, 0], cam.D[0]) == (64, 48, 50.0, 0.1) and not cam.use_p
    assert camera_from_info(info, rectified=True).use_p
    info.k = [0.0] * 9
    with pytest.raises(ConversionError, match="camera_info: camera focal lengths"):
        camera_from_info(info)


@pytest.mark.parametrize("rectified", [False, True])
@pytest.mark.parametrize("binning,roi", [((2, 2), (0, 0, 0, 0)), ((1, 1), (160, 120, 640, 480)),
                                         ((2, 4), (64, 32, 1024, 768)), ((0, 0), (0, 0, 0, 0))])
def test_binned_and_cropped_camera_info_describes_the_published_image(binning, roi, rectified):
    """REP 104: K, D, P are the full sensor's; the published image is the ROI binned. The camera
    rmmss builds must put a point where the full-resolution camera puts it, moved and scaled as
    image_geometry's toReducedResolution says: ((u - x_offset) / binning_x, (v - y_offset) / binning_y)."""
    from sensor_msgs.msg import RegionOfInterest
    info = CameraInfo(width=1280, height=960, distortion_model="plumb_bob", binning_x=binning[0], binning_y=binning[1])
    info.k = [900.0, 0, 641.5, 0, 905.0, 478.25, 0, 0, 1]
    info.d = [-0.12, 0.05, 0.001, -0.002, 0.0]
    info.p = [880.0, 0, 640.0, 0, 0, 880.0, 480.0, 0, 0, 0, 1, 0]
    info.roi = RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3])
    full_info = CameraInfo(width=1280, height=960, distortion_model="plumb_bob", k=info.k, d=info.d, p=info.p)
    full, reduced = camera_from_info(full_info, rectified), camera_from_info(info, rectified)
    bx, by = (b or 1 for b in binning)
    w, h = (roi[2] or 1280) // bx, (roi[3] or 960) // by
    assert (reduced.width, reduced.height) == (w, h)
    pts = np.stack([RNG.uniform(-3, 3, 400), RNG.uniform(-2, 2, 400), RNG.uniform(2, 20, 400)], axis=1)
    uv_full, _ = full.project(pts)
    uv, valid = reduced.project(pts)
    expect = np.stack([(uv_full[:, 0] - roi[0]) / bx, (uv_full[:, 1] - roi[1]) / by], axis=1)
    np.testing.assert_allclose(uv[valid], expect[valid], atol=1e-9)  # off-image uv is meaningless (may be NaN)
    inside = (expect[:, 0] > -0.5) & (expect[:, 0] < w - 0.5) & (expect[:, 1] > -0.5) & (expect[:, 1] < h - 0.5)
    assert valid.sum() > 50 and np.array_equal(valid, inside)


def test_a_camera_info_roi_outside_the_sensor_is_refused():
    from sensor_msgs.msg import RegionOfInterest
    info = CameraInfo(width=64, height=48, distortion_model="plumb_bob", k=[50.0, 0, 32, 0, 50.0, 24, 0, 0, 1],
                      d=[0.0] * 5, roi=RegionOfInterest(x_offset=40, y_offset=0, width=32, height=48))
    with pytest.raises(ConversionError, match=r"camera_info: roi 32x48 at \(40, 0\) .* 64x48 sensor"):
        camera_from_info(info)


def test_event_cloud_accumulates_like_the_shared_encoder():
    enc = EventEncoding(window_s=0.03, channels=("pos", "neg", "time_surface"))
    n = 500
    x, y = RNG.integers(0, 16, n), RNG.integers(0, 12, n)
    t_rel = RNG.uniform(-0.05, 0.0, n)  # seconds relative to the cloud stamp
    p = RNG.integers(0, 2, n)
    dt = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<f8"), ("polarity", "u1")])
    arr = np.zeros(n, dt)
    arr["x"], arr["y"], arr["t"], arr["polarity"] = x, y, t_rel, p
    msg = fill_cloud(PointCloud2(), arr, PointField)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 10, 0
    frame_ns = 10 * 10**9 - 5 * 10**6  # frame 5 ms before the packet stamp
    got = encode_event_cloud(msg, frame_ns, 12, 16, enc)
    want = accumulate_events(x, y, t_rel + 0.005, p, 0.0, 12, 16, enc, True)
    np.testing.assert_array_equal(got, want)
    assert got[..., 0].sum() > 0
    arr_ns = np.zeros(n, [("x", "<i4"), ("y", "<i4"), ("t", "<i4"), ("p", "i1")])
    arr_ns["x"], arr_ns["y"], arr_ns["t"], arr_ns["p"] = x, y, np.round(t_rel * 1e9), 2 * p - 1
    x2, y2, t2, p2 = events_from_cloud(fill_cloud(PointCloud2(), arr_ns, PointField))
    np.testing.assert_allclose(t2, t_rel, atol=1e-9)
    np.testing.assert_array_equal(p2, p > 0)
    empty = fill_cloud(PointCloud2(), np.zeros(0, dt), PointField)
    assert encode_event_cloud(empty, 0, 12, 16, enc).sum() == 0  # no events is valid
    arr["t"][3] = np.nan
    with pytest.raises(ConversionError, match="NaN or Inf"):
        encode_event_cloud(fill_cloud(PointCloud2(), arr, PointField), frame_ns, 12, 16, enc)


def test_event_frame_image():
    frame = RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    got = encode_event_image(fill_image(Image(), frame, "rgb8"))
    np.testing.assert_array_equal(got, frame.astype(np.float32) / np.float32(255))
    with pytest.raises(ConversionError, match="8-bit"):
        encode_event_image(fill_image(Image(), np.zeros((2, 2), np.float32), "32FC1"))


@pytest.mark.parametrize("layout", ["velodyne", "xyz_only", "ouster_pad", "float64", "intensity_u16",
                                    "padded_step", "xyz_not_first", "unaligned"])
def test_cloud_to_xyzi_block_copy_equals_field_by_field(layout):
    """Issue #14: the one-block copy of four consecutive float32 fields gives exactly the per-field
    values (and every other layout still decodes): x, y, z, intensity, NaN rows dropped."""
    from sensor_msgs.msg import PointCloud2, PointField

    from rmmss_ros.conversions import fill_cloud

    f = {"velodyne": [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2")],
         "xyz_only": [("x", "<f4"), ("y", "<f4"), ("z", "<f4")],
         "ouster_pad": [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("_pad", "<f4"), ("intensity", "<f4")],
         "float64": [("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("intensity", "<f8")],
         "intensity_u16": [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<u2")],
         "padded_step": [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("_p", "V16")],
         "xyz_not_first": [("t", "<u4"), ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")],
         "unaligned": [("ring", "<u2"), ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")]}[layout]
    rng = np.random.default_rng(7)
    a = np.zeros(1000, [d for d in f if d[1] != "V16"])
    for n in ("x", "y", "z"):
        a[n] = rng.uniform(-50, 50, 1000)
    if "intensity" in a.dtype.names:
        a["intensity"] = rng.integers(0, 255, 1000)
    a["y"][::97] = np.nan
    if layout == "padded_step":  # point_step 32 with trailing padding, as PCL's PointXYZI aligned layout
        padded = np.zeros(1000, np.dtype({"names": list(a.dtype.names), "offsets": [0, 4, 8, 12],
                                          "formats": ["<f4"] * 4, "itemsize": 32}))
        for n in a.dtype.names:
            padded[n] = a[n]
        msg = fill_cloud(PointCloud2(), a, PointField)
        msg.point_step, msg.row_step, msg.data = 32, 32 * 1000, padded.tobytes()
    else:
        msg = fill_cloud(PointCloud2(), a, PointField)
    keep = ~np.isnan(a["y"])
    want = np.zeros((keep.sum(), 4), np.float32)
    for c, n in enumerate(("x", "y", "z")):
        want[:, c] = a[n][keep]
    if "intensity" in a.dtype.names:
        want[:, 3] = a["intensity"][keep]
    np.testing.assert_array_equal(cloud_to_xyzi(msg), want)
