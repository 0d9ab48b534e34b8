"""The pipeline (node and replay) on robot inputs as robots send them (issue #22): compressed and
compressedDepth images, extrinsics from /tf_static, unregistered depth, undecodable event packets,
and the configuration warnings that name the parameter to set."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from rmmss_ros.conversions import fill_cloud, fill_image
from rmmss_ros.conversions.compressed import encode_compressed, encode_compressed_depth
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
from rmmss_ros.tf.buffer import TransformBuffer

H, W = 48, 64


@pytest.fixture(scope="module")
def backend(tiny_model):
    from rmmss_core.deploy import create_backend

    return create_backend("torch", tiny_model)  # conftest: untrained tiny model, 32 x 48 input


def header(msg, frame="camera_optical_frame", stamp_ns=5 * 10**9):
    msg.header.frame_id = frame
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_ns // 10**9, stamp_ns % 10**9
    return msg


def compressed(fmt, data, frame="camera_optical_frame"):
    m = CompressedImage(format=fmt, data=data)
    return header(m, frame)


def scene(rng):
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 2) % 256], axis=2).astype(np.uint8)
    depth_mm = (1000 + 40 * xx + 10 * yy).astype(np.uint16)
    pts = np.zeros(500, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    pts["x"], pts["y"], pts["z"] = rng.uniform(2, 20, 500), rng.uniform(-5, 5, 500), rng.uniform(-1, 1, 500)
    pts["intensity"] = rng.uniform(0, 1, 500)
    return rgb, depth_mm, pts


def info(w=W, h=H, f=40.0, frame="camera_optical_frame"):
    ci = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
    ci.k = [f, 0, (w - 1) / 2, 0, f, (h - 1) / 2, 0, 0, 1]
    ci.p = [f, 0, (w - 1) / 2, 0, 0, f, (h - 1) / 2, 0, 0, 0, 1, 0]
    ci.d = [0.0] * 5
    return header(ci, frame)


def frame_set(**msgs):
    return SimpleNamespace(stamp_ns=5 * 10**9, messages=msgs, missing=())


def test_compressed_camera_and_compressed_depth_give_the_raw_inputs(backend):
    rgb, depth_mm, _ = scene(np.random.default_rng(0))
    raw = frame_set(rgb=header(fill_image(Image(), rgb, "rgb8")), depth=header(fill_image(Image(), depth_mm, "16UC1")))
    comp = frame_set(rgb=compressed(*encode_compressed(rgb, "rgb8", "png")),
                     depth=compressed(*encode_compressed_depth(depth_mm, "16UC1")))
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "depth")))
    a, b = pipe.prepare(raw, info()), pipe.prepare(comp, info())
    assert a.used == b.used == ("rgb", "depth") and not b.errors
    for m in ("rgb", "depth"):  # lossless png / compressedDepth png: the very same network inputs
        assert np.array_equal(a.inputs[m].numpy(), b.inputs[m].numpy())
    jpeg = frame_set(rgb=compressed(*encode_compressed(rgb, "rgb8", "jpeg", jpeg_quality=95)))
    c = pipe.prepare(jpeg, info())
    assert c.used == ("rgb",) and np.abs(c.inputs["rgb"].numpy() - a.inputs["rgb"].numpy()).mean() < 0.05


def test_an_undecodable_compressed_packet_is_malformed_never_a_blank_image(backend):
    rgb, depth_mm, _ = scene(np.random.default_rng(0))
    fmt, data = encode_compressed(rgb, "rgb8", "jpeg")
    fs = frame_set(rgb=compressed(fmt, data[: len(data) // 3]),
                   depth=compressed("16UC1; compressedDepth png", b"\x00" * 12 + b"junk"))
    p = Pipeline(backend, PipelineParams(enabled=("rgb", "depth"))).prepare(fs, info())
    assert p.used == () and "could not be decoded" in p.errors["depth"]
    assert "rgb" in p.errors


def test_unregistered_depth_is_refused_without_its_camera_info_and_reprojected_with_it(backend):
    rng = np.random.default_rng(1)
    rgb, _, _ = scene(rng)
    big_rgb = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)[:96, :128]  # a 128 x 96 camera
    depth = np.full((48, 80), 2000, np.uint16)  # an 80 x 48 depth camera: another size and aspect
    fs = frame_set(rgb=header(fill_image(Image(), big_rgb, "rgb8")),
                   depth=header(fill_image(Image(), depth, "16UC1"), frame="depth_optical_frame"))
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "depth")))
    p = pipe.prepare(fs, info(128, 96, 80.0))
    assert "depth" not in p.used
    assert "80 x 48 depth image is not registered to the 128 x 96 camera" in p.errors["depth"]
    assert "depth.camera_info_topic" in p.errors["depth"]
    pipe.inputs.depth_camera_info = info(80, 48, 40.0, frame="depth_optical_frame")
    p = pipe.prepare(fs, info(128, 96, 80.0))
    assert p.used == ("rgb", "depth") and not p.errors
    # the registered depth has the camera's size: the encoder saw 2 m everywhere the depth reaches
    reg = pipe.inputs.registrar.register(fs.messages["depth"], pipe.inputs.depth_camera_info, pipe.camera(info(128, 96, 80.0)),
                                         np.eye(4))
    assert (reg.height, reg.width) == (96, 128) and set(np.unique(reg.data)) <= {0, 2000}


def test_unregistered_depth_waiting_for_its_camera_info_is_unusable_not_an_error(backend):
    """With depth.camera_info_topic set, the frames before its first CameraInfo said "set
    depth.camera_info_topic ..." (already set) under ~/used_modalities' errors; they wait for it
    (unusable, with the reason), as LiDAR waits for the camera's CameraInfo."""
    from rmmss_ros.outputs.usability import (
        WAITING_FOR_CAMERA_INFO,
        WAITING_FOR_DEPTH_CAMERA_INFO,
        split_unusable,
    )
    rgb, _, _ = scene(np.random.default_rng(1))
    big_rgb = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)[:96, :128]
    fs = frame_set(rgb=header(fill_image(Image(), big_rgb, "rgb8")),
                   depth=header(fill_image(Image(), np.full((48, 80), 2000, np.uint16), "16UC1"),
                                frame="depth_optical_frame"))
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "depth")))
    pipe.inputs.depth_camera_info_expected = True  # what the node / replay set when it is subscribed
    p = pipe.prepare(fs, info(128, 96, 80.0))
    unusable, errors = split_unusable(p.errors)
    assert p.used == ("rgb",) and not errors and unusable == {"depth": WAITING_FOR_DEPTH_CAMERA_INFO}, p.errors
    pipe.inputs.depth_camera_info = info(80, 48, 40.0, frame="depth_optical_frame")
    p = pipe.prepare(fs, None)  # the depth calibration is there, the camera's not yet
    unusable, errors = split_unusable(p.errors)
    assert not errors and unusable.get("depth") == WAITING_FOR_CAMERA_INFO, p.errors
    assert pipe.prepare(fs, info(128, 96, 80.0)).used == ("rgb", "depth")


@pytest.mark.parametrize("transport", ["compressed", "raw"])
def test_a_camera_info_of_another_size_is_not_projected_with(backend, transport):
    """A 128 x 96 calibration beside a 64 x 48 camera: the node checked raw images only, so a
    compressed camera (and every replay) projected the LiDAR with the wrong intrinsics, silently.
    The pipeline (node and replay) now refuses that CameraInfo for the frame and says it once."""
    rgb, _, pts = scene(np.random.default_rng(7))
    cam = compressed(*encode_compressed(rgb, "rgb8", "png")) if transport == "compressed" \
        else header(fill_image(Image(), rgb, "rgb8"))
    cloud = header(fill_cloud(PointCloud2(), pts, PointField))
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "lidar")))
    p = pipe.prepare(frame_set(rgb=cam, lidar=cloud), info(128, 96, 80.0))
    assert p.used == ("rgb",)
    assert "CameraInfo size 128x96 does not match the camera image 64x48" in p.errors["camera_info"]
    assert any("camera_info.topic" in w for w in p.warnings), p.warnings
    assert pipe.prepare(frame_set(rgb=cam, lidar=cloud), info()).used == ("rgb", "lidar")


def test_lidar_extrinsic_from_tf_static_gives_the_inputs_of_the_equivalent_parameter(backend):
    rgb, _, pts = scene(np.random.default_rng(2))
    cloud = header(fill_cloud(PointCloud2(), pts, PointField), frame="os_lidar")
    fs = frame_set(rgb=header(fill_image(Image(), rgb, "rgb8")), lidar=cloud)
    buf = TransformBuffer()
    # base_link -> os_sensor -> os_lidar and base_link -> camera_optical_frame (optical rotation)
    q_opt = np.array([-0.5, 0.5, -0.5, 0.5])
    buf.set_transform("base_link", "os_sensor", 0, (0.1, 0.0, 0.4), (0, 0, 0, 1), True)
    buf.set_transform("os_sensor", "os_lidar", 0, (0.0, 0.0, 0.03), (0, 0, 0, 1), True)
    buf.set_transform("base_link", "camera_optical_frame", 0, (0.2, 0.0, 0.3), q_opt, True)
    T = buf.lookup("camera_optical_frame", "os_lidar")
    by_param = Pipeline(backend, PipelineParams(enabled=("rgb", "lidar"), T_cam_lidar=tuple(T.reshape(-1)),
                                                extrinsics_source="parameters", lidar_intensity_units="unit"))
    by_tf = Pipeline(backend, PipelineParams(enabled=("rgb", "lidar"), extrinsics_source="tf",
                                             lidar_intensity_units="unit"))
    by_tf.inputs.attach_tf(buf)
    a, b = by_param.prepare(fs, info()), by_tf.prepare(fs, info())
    assert a.used == b.used == ("rgb", "lidar")
    assert np.array_equal(a.inputs["lidar"].numpy(), b.inputs["lidar"].numpy())  # bit-identical
    assert by_tf.inputs.extrinsics.status()["lidar"].source == "tf"
    # a cloud from a frame TF does not know: missing for this frame, the error names both frames
    other = header(fill_cloud(PointCloud2(), pts, PointField), frame="velodyne")
    c = by_tf.prepare(frame_set(rgb=fs.messages["rgb"], lidar=other), info())
    assert c.used == ("rgb",)
    assert "no transform from velodyne to camera_optical_frame" in c.errors["lidar"]


def test_an_undecodable_event_packet_stays_malformed_when_seen_again(backend):
    pkt = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=5, nanosec=0), frame_id="camera"),
                          height=H, width=W, seq=3, time_base=0, encoding="libcaer_cmp", is_bigendian=False,
                          events=bytes([0x05, 0x60] * 4))  # VECT_12 words: never written by the driver
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "event"), event_format="packet"))
    first = pipe.add_event_message(pkt)  # the node's per-packet callback
    assert first is not None and "code 6" in first
    p = pipe.prepare(frame_set(event=pkt), info())  # the frame that matched the same packet
    assert "event" not in p.used and "code 6" in p.errors["event"]


@pytest.mark.parametrize("spec_units,setting,scale,needle", [
    ("unit", "", 255.0, "set lidar.intensity_units to byte"),
    ("unit", "", 60000.0, "set lidar.intensity_units to counts16"),
    ("unit", "byte", 1.0, "set lidar.intensity_units to unit"),
])
def test_lidar_intensity_units_that_clip_or_zero_are_said(tmp_path, spec_units, setting, scale, needle):
    from rmmss_core.deploy import create_backend
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import LidarEncoding, PreprocessSpec

    path = tmp_path / "m.pt"
    save_model_checkpoint(path, create_model("anymodal", size="tiny", num_classes=25),
                          PreprocessSpec(input_size=(32, 48), lidar=LidarEncoding(intensity_units=spec_units)))
    rgb, _, pts = scene(np.random.default_rng(3))
    pts["intensity"] = np.random.default_rng(4).uniform(0.1, 1.0, pts.size) * scale
    cloud = header(fill_cloud(PointCloud2(), pts, PointField), frame="camera_optical_frame")
    pipe = Pipeline(create_backend("torch", path), PipelineParams(enabled=("lidar",), lidar_intensity_units=setting))
    p = pipe.prepare(frame_set(lidar=cloud), info())
    assert any(needle in w for w in p.warnings), p.warnings


def test_the_device_path_takes_compressed_inputs_too(backend):
    from rmmss_ros.pipeline.gpu import DevicePreparer

    rgb, depth_mm, _ = scene(np.random.default_rng(5))
    raw = frame_set(rgb=header(fill_image(Image(), rgb, "rgb8")), depth=header(fill_image(Image(), depth_mm, "16UC1")))
    comp = frame_set(rgb=compressed(*encode_compressed(rgb, "rgb8", "png")),
                     depth=compressed(*encode_compressed_depth(depth_mm, "16UC1")))
    dev = DevicePreparer(Pipeline(backend, PipelineParams(enabled=("rgb", "depth"))), "cpu")
    a, b = dev.prepare(raw, info()), dev.prepare(comp, info())
    assert a.used == b.used == ("rgb", "depth")
    for m in ("rgb", "depth"):
        assert np.array_equal(np.asarray(a.inputs[m]), np.asarray(b.inputs[m]))


def test_a_realsense_848x480_depth_beside_a_1280x720_camera_is_refused_naming_both_sizes(backend):
    rgb = np.zeros((720, 1280, 3), np.uint8)
    depth = np.full((480, 848), 1500, np.uint16)
    fs = frame_set(rgb=header(fill_image(Image(), rgb, "rgb8")),
                   depth=header(fill_image(Image(), depth, "16UC1"), frame="camera_depth_optical_frame"))
    p = Pipeline(backend, PipelineParams(enabled=("rgb", "depth"))).prepare(fs, info(1280, 720, 910.0))
    assert p.used == ("rgb",)
    assert "the 848 x 480 depth image is not registered to the 1280 x 720 camera" in p.errors["depth"]


def test_event_clouds_from_another_camera_without_its_camera_info_are_said(backend):
    pts = np.zeros(200, [("x", "<u2"), ("y", "<u2"), ("t", "<f8"), ("polarity", "u1")])
    rng = np.random.default_rng(6)
    pts["x"], pts["y"] = rng.integers(0, 640, 200), rng.integers(0, 480, 200)  # a 640 x 480 event sensor
    pts["t"] = -rng.uniform(0, 0.02, 200)
    cloud = header(fill_cloud(PointCloud2(), pts, PointField), frame="dvxplorer_optical_frame")
    rgb, _, _ = scene(rng)
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "event"), event_format="cloud"))
    p = pipe.prepare(frame_set(rgb=header(fill_image(Image(), rgb, "rgb8")), event=cloud), info())
    assert any("set event.camera_info_topic" in w and "dvxplorer_optical_frame" in w for w in p.warnings), p.warnings


def test_a_binned_camera_info_projects_the_lidar_as_its_reduced_calibration(backend):
    """A driver binning 2x2 (or image_proc's crop_decimate) publishes the full sensor's K with
    binning_x/y = 2 beside the half-size image (REP 104). It describes the image: LiDAR inputs
    bit-identical to those of the equivalent half-size CameraInfo, no size-mismatch error."""
    from sensor_msgs.msg import RegionOfInterest
    rgb, _, pts = scene(np.random.default_rng(3))
    fs = frame_set(rgb=header(fill_image(Image(), rgb, "rgb8")), lidar=header(fill_cloud(PointCloud2(), pts, PointField)))
    full = CameraInfo(width=2 * W, height=2 * H, distortion_model="plumb_bob", d=[0.0] * 5, binning_x=2, binning_y=2)
    full.k = [80.0, 0, 2 * W / 2, 0, 80.0, 2 * H / 2, 0, 0, 1]
    full.p = [80.0, 0, 2 * W / 2, 0, 0, 80.0, 2 * H / 2, 0, 0, 0, 1, 0]
    half = CameraInfo(width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5)
    half.k = [40.0, 0, W / 2, 0, 40.0, H / 2, 0, 0, 1]
    half.p = [40.0, 0, W / 2, 0, 0, 40.0, H / 2, 0, 0, 0, 1, 0]
    pipe = Pipeline(backend, PipelineParams(enabled=("rgb", "lidar"), lidar_intensity_units="unit"))
    a, b = pipe.prepare(fs, header(full)), pipe.prepare(fs, header(half))
    assert a.used == b.used == ("rgb", "lidar") and "camera_info" not in a.errors, a.errors
    assert np.array_equal(a.inputs["lidar"].numpy(), b.inputs["lidar"].numpy())
    # the same sensor cropped to its left half and binned: a 64 x 48 image too, principal point moved
    crop = CameraInfo(width=4 * W, height=2 * H, distortion_model="plumb_bob", d=[0.0] * 5, k=full.k, p=full.p,
                      binning_x=2, binning_y=2, roi=RegionOfInterest(x_offset=0, y_offset=0, width=2 * W, height=2 * H))
    assert pipe.prepare(fs, header(crop)).used == ("rgb", "lidar")
