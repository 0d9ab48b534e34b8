"""Sensor-to-image encoders: known points land on known pixels, nearest wins, exact 8-bit round trip."""
from __future__ import annotations

import numpy as np
import pytest

from rmmss_core.encodings import (
    CameraModel,
    accumulate_events,
    encode_depth,
    encode_rgb,
    encode_to_png_uint8,
    from_uint8,
    project_lidar,
)
from rmmss_core.spec import DepthEncoding, EventEncoding, LidarEncoding

K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])


def cam(**kw) -> CameraModel:
    return CameraModel(64, 48, K, **kw)


# LiDAR frame: x forward, y left, z up -> camera optical frame: x right, y down, z forward
T_CAM_LIDAR = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def test_known_points_land_on_known_pixels():
    # camera frame (X, Y, Z) = (1, -0.5, 10) -> u = 32 + 100 * 0.1 = 42, v = 24 - 5 = 19
    # in the LiDAR frame that is (x, y, z) = (10, -1, 0.5)
    pts = np.array([[10.0, -1.0, 0.5, 0.4]])
    enc = LidarEncoding(channels=("range", "intensity", "depth"), max_range=20.0)
    img = project_lidar(pts, T_CAM_LIDAR, cam(), enc, quantize=False)
    assert img.shape == (48, 64, 3) and img.dtype == np.float32
    hit = np.argwhere(img.sum(axis=2) > 0)
    assert hit.tolist() == [[19, 42]]
    np.testing.assert_allclose(img[19, 42], [np.sqrt(100 + 1 + 0.25) / 20, 0.4, 10 / 20], rtol=1e-6)


def test_principal_point_and_rounding_to_pixel_centres():
    # u = 32 + 100 * 0.0049 = 32.49 -> column 32; 32.51 -> column 33
    pts = np.array([[0.0049, 0, 1, 1], [0.0051, 0.1, 1, 1]])
    img = project_lidar(pts, np.eye(4), cam(), LidarEncoding(channels=("intensity",) * 3))
    assert np.argwhere(img[:, :, 0] > 0).tolist() == [[24, 32], [34, 33]]


def test_nearest_return_wins_and_behind_out_of_view_dropped():
    pts = np.array([
        [0.0, 0.0, 10.0, 0.2],   # far, same pixel as the next
        [0.0, 0.0, 5.0, 0.8],    # near: wins
        [0.0, 0.0, 20.0, 0.1],   # farther again (order must not matter)
        [0.0, 0.0, -5.0, 1.0],   # behind the camera
        [100.0, 0.0, 1.0, 1.0],  # out of view
        [np.nan, 0.0, 1.0, 1.0],  # not finite
    ])
    enc = LidarEncoding(channels=("intensity", "depth", "range"), max_range=40.0)
    img = project_lidar(pts, np.eye(4), cam(), enc, quantize=False)
    assert np.count_nonzero(img.sum(axis=2)) == 1
    np.testing.assert_allclose(img[24, 32], [0.8, 5 / 40, 5 / 40], rtol=1e-6)
    shuffled = project_lidar(pts[::-1].copy(), np.eye(4), cam(), enc, quantize=False)
    np.testing.assert_array_equal(img, shuffled)


def test_height_channel_and_clipping():
    enc = LidarEncoding(channels=("height", "height", "range"), min_height=-2.0, max_height=2.0,
                        max_range=5.0)
    pts = np.array([[10.0, 0.0, 1.0, 0.0]])  # z_lidar = 1 -> (1 + 2) / 4; range 10.05 > 5 -> 1
    img = project_lidar(pts, T_CAM_LIDAR, cam(), enc, quantize=False)
    np.testing.assert_allclose(img[24 - 10, 32], [0.75, 0.75, 1.0], rtol=1e-6)


def test_projection_with_P_and_with_distortion():
    P = np.array([[50.0, 0, 10, 0], [0, 50.0, 20, 0], [0, 0, 1, 0]])
    c = CameraModel.from_camera_info_fields(64, 48, K.ravel(), [0.3, 0, 0, 0, 0], P.ravel(), rectified=True)
    uv, valid = c.project(np.array([[1.0, 1.0, 10.0]]))
    np.testing.assert_allclose(uv, [[15.0, 25.0]])
    assert valid.all()
    # plumb_bob radial k1: x' = 0.2, r2 = 0.04, x'' = 0.2 * (1 + 0.1 * 0.04) = 0.2008
    d = CameraModel.from_camera_info_fields(64, 48, K.ravel(), [0.1, 0, 0, 0, 0])
    uv, valid = d.project(np.array([[2.0, 0.0, 10.0]]))
    np.testing.assert_allclose(uv, [[32 + 100 * 0.2008, 24.0]])
    # far outside the field of view must not fold back into the image
    strong = CameraModel.from_camera_info_fields(64, 48, K.ravel(), [-0.5, 0, 0, 0, 0])
    _, valid = strong.project(np.array([[30.0, 0.0, 1.0]]))
    assert not valid.any()


def test_scaled_camera_matches_resized_pixel_grid():
    c = cam().scaled(32, 24)
    uv, valid = c.project(np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(uv, [[15.75, 11.75]])  # (32 + 0.5) / 2 - 0.5
    assert valid.all()


def test_bad_camera_and_points_are_named():
    with pytest.raises(ValueError, match="K must have 9"):
        CameraModel(64, 48, np.eye(2))
    with pytest.raises(ValueError, match="P is missing"):
        CameraModel(64, 48, K, use_p=True)
    with pytest.raises(ValueError, match="N x 4"):
        project_lidar(np.zeros((3,)), np.eye(4), cam())
    with pytest.raises(ValueError, match="4 x 4"):
        project_lidar(np.zeros((3, 4)), np.eye(3), cam())


def test_event_counts_window_and_polarity():
    x = np.array([1, 1, 1, 2, 3, 70, 1])
    y = np.array([0, 0, 0, 0, 0, 0, 0])
    t = np.array([0.99, 0.995, 1.0, 0.98, 0.5, 1.0, 1.001])  # 0.5 outside window, 1.001 after t_end
    p = np.array([1, 1, 0, -1, 1, 1, 1])
    enc = EventEncoding(window_s=0.03, channels=("pos", "neg", "time_surface"), count_scale=4, tau_s=0.01)
    img = accumulate_events(x, y, t, p, 1.0, 4, 5, enc, quantize=False)
    assert img.shape == (4, 5, 3)
    np.testing.assert_allclose(img[0, 1], [2 / 4, 1 / 4, 1.0], rtol=1e-6)
    np.testing.assert_allclose(img[0, 2], [0, 1 / 4, np.exp(-2.0)], rtol=1e-5)
    assert img[0, 3].sum() == 0 and img[1:].sum() == 0
    with pytest.raises(ValueError, match="differ in length"):
        accumulate_events(x, y[:2], t, p, 1.0, 4, 5)


def test_event_counts_saturate_at_one():
    n = 50
    img = accumulate_events(np.zeros(n), np.zeros(n), np.ones(n), np.ones(n), 1.0, 2, 2)
    assert img[0, 0, 0] == 1.0 and img[0, 0, 1] == 0.0


def test_depth_metric_invalid_values_are_zero():
    d = np.array([[10.0, np.nan, 0.0], [np.inf, -np.inf, 200.0]], dtype=np.float32)
    img = encode_depth(d, DepthEncoding(max_depth=80.0), quantize=False)
    assert img.shape == (2, 3, 3)
    np.testing.assert_allclose(img[..., 0], [[0.125, 0, 0], [0, 0, 1.0]])
    assert (img[..., 0] == img[..., 2]).all()
    mm = encode_depth(np.array([[10000, 0]], dtype=np.uint16), DepthEncoding(max_depth=80.0), quantize=False)
    np.testing.assert_allclose(mm[0, :, 0], [0.125, 0.0])


def test_depth_hha_of_a_flat_floor():
    # a level camera 1.5 m above a floor: floor normals point up -> angle 0, heights 0
    H, W = 24, 32
    c = CameraModel(W, H, np.array([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]))
    v = np.arange(H, dtype=np.float64)[:, None] - 12
    depth = np.where(v > 0, 1.5 * 30.0 / np.maximum(v, 1e-9), np.nan) * np.ones((1, W))
    img = encode_depth(depth, DepthEncoding(kind="hha"), quantize=False, camera=c)
    floor = img[14:-1, 1:-1]
    assert np.abs(floor[..., 2]).max() < 1e-3
    assert np.abs(floor[..., 1]).max() < 1e-3
    assert (img[:13] == 0).all()
    with pytest.raises(ValueError, match="camera model"):
        encode_depth(depth, DepthEncoding(kind="hha"))


def test_quantized_encoders_round_trip_exactly_through_uint8():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-20, 20, (500, 3)), rng.uniform(0, 1, 500)]
    pts[:, 2] = np.abs(pts[:, 2]) + 1
    outs = [
        project_lidar(pts, np.eye(4), cam()),
        accumulate_events(rng.integers(0, 64, 300), rng.integers(0, 48, 300), rng.uniform(0.97, 1, 300),
                          rng.integers(0, 2, 300), 1.0, 48, 64,
                          EventEncoding(channels=("pos", "neg", "time_surface"))),
        encode_depth(rng.uniform(0, 100, (48, 64)).astype(np.float32)),
        encode_rgb(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)),
    ]
    for out in outs:
        assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        np.testing.assert_array_equal(from_uint8(encode_to_png_uint8(out)), out)
    assert (outs[0] > 0).any() and (outs[1] > 0).any()


def test_encode_rgb_shapes():
    assert encode_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert encode_rgb(np.full((4, 5, 4), 255, np.uint8)).max() == 1.0
    with pytest.raises(ValueError, match="uint8"):
        encode_rgb(np.zeros((4, 5, 3), np.float32))


def test_nearest_per_pixel_ties_go_to_the_lowest_index():
    from rmmss_core.encodings import nearest_per_pixel
    pix = np.array([5, 3, 5, 5, 3, 0])
    z = np.array([2.0, 1.0, 1.0, 1.0, 0.5, 9.0])
    assert sorted(nearest_per_pixel(pix, z, 8).tolist()) == [2, 4, 5]


def test_normalize_matches_the_broadcast_formula_for_any_memory_layout():
    import torch

    from rmmss_core.preprocess import normalize, to_chw
    from rmmss_core.spec import IMAGENET_MEAN, IMAGENET_STD, Normalization

    norm = Normalization(IMAGENET_MEAN, IMAGENET_STD)
    hwc = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    chw_view = to_chw(hwc, "rgb")  # channel-last memory viewed as 3 x H x W
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    ref = (chw_view.contiguous() - mean) / std
    out = normalize(chw_view, norm)
    assert torch.equal(out, ref) and out.is_contiguous()
    batch = torch.rand(2, 3, 5, 7)
    assert torch.equal(normalize(batch, norm), (batch - mean[None]) / std[None])
    with pytest.raises(ValueError, match="3 x H x W"):
        normalize(torch.zeros(4, 5, 5), norm)
