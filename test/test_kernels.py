"""Issue #14: the compiled kernels (rmmss_core.kernels, numba) give exactly what their numpy
references give: the same LiDAR returns (pixels, rows, camera z, in the same order) and codes, the
same normalised planes, the same depth codes, for adversarial inputs: points on pixel borders and
around z = MIN_DEPTH_M, a rotated and offset LiDAR, a skewed K, distorted and rectified (P)
cameras, NaN / Inf / no-return rows, duplicate points (depth ties), float32 and float64 clouds,
strided views of a message buffer, and every LiDAR channel and intensity unit."""
from __future__ import annotations

import numpy as np
import pytest
from test_lidar_cull import _T, K, _border_points, _scan360

from rmmss_core import kernels
from rmmss_core.encodings import CameraModel
from rmmss_core.encodings import lidar as L
from rmmss_core.encodings.camera import MIN_DEPTH_M
from rmmss_core.spec import LidarEncoding

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason=f"compiled kernels unavailable: {kernels.why_disabled()}")
W, H = 640, 480
CAMERAS = {
    "pinhole_skewed": CameraModel(W, H, K),
    "plumb_bob": CameraModel(W, H, K, D=np.array([-0.3, 0.1, 0.001, -0.002, 0.0])),
    "rational_polynomial": CameraModel(W, H, K, D=np.array([0.4, -0.1, 0.001, -0.002, 0.01, 0.8, -0.05, 0.02]),
                                       model="rational_polynomial"),
    "equidistant": CameraModel(W, H, K, D=np.array([0.05, -0.01, 0.002, -0.0005]), model="equidistant"),
    "rectified_P": CameraModel(W, H, K, P=np.array([[510.0, 0, 322.0, -51.0], [0, 510.0, 240.0, 0], [0, 0, 1, 0]]),
                               use_p=True),
}


def _cloud(seed: int, T, cam, dtype=np.float32) -> np.ndarray:
    """Border points + a 360-degree scan + the hard rows, shuffled (random order, as the bench's)."""
    rng = np.random.default_rng(seed)
    pts = np.concatenate([_border_points(rng, T, CAMERAS["pinhole_skewed"], 8000), _scan360(rng, 20000)])
    pts[:40, 0] = np.nan
    pts[40:50, 2] = np.inf
    pts[50:60, :3] = 0.0  # no return
    pts[60:70, 3] = np.nan  # intensity only: the point stays, intensity 0
    pts[70:80, 3] = np.inf
    pts[100:140] = pts[300:340]  # duplicates: equal-depth ties (lowest index wins)
    pts = pts[rng.permutation(len(pts))]
    return pts.astype(dtype)


def _geometry_numpy(pts, T, cam):
    with kernels.disabled():
        return L._nearest_returns_numpy(pts, T, cam, precull=False)


@pytest.mark.parametrize("camera", sorted(CAMERAS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_returns_equal_the_numpy_reference(camera, dtype):
    from rmmss_core.kernels.lidar import nearest_returns
    cam = CAMERAS[camera]
    for seed, T in enumerate((_T(), np.eye(4)[[1, 2, 0, 3]] * [[-1], [-1], [1], [1]], _T(0.0, 0.0, (0, 0, 0)))):
        pts = _cloud(seed, T, cam, dtype)
        got = nearest_returns(pts, T, cam, L.NO_RETURN_R2, MIN_DEPTH_M)
        want = _geometry_numpy(pts, T, cam)
        assert want[0].size > 500, "the case must hit many pixels"
        for g, w, what in zip(got, want, ("pixel", "row", "z"), strict=True):
            assert g.dtype == w.dtype, what
            np.testing.assert_array_equal(g, w, err_msg=what)


def test_ties_go_to_the_lowest_point_index_and_nan_rows_are_dropped():
    from rmmss_core.kernels.lidar import nearest_returns
    cam = CameraModel(8, 8, np.array([[4.0, 0, 3.5], [0, 4.0, 3.5], [0, 0, 1]]))
    pts = np.array([[0.0, 0.0, 5.0, 1], [0.0, 0.0, 4.0, 2], [0.0, 0.0, 4.0, 3], [np.nan, 0, 1, 4],
                    [0.0, 0.0, 0.0, 5], [0.0, 0.0, -1.0, 6], [0.1, 0.1, 9.0, 7]], np.float32)
    pix, rows, z = nearest_returns(pts, np.eye(4), cam, L.NO_RETURN_R2, MIN_DEPTH_M)
    # points 0, 1, 2 and 6 share pixel (4, 4); 1 and 2 are nearest (z 4), 1 has the lower index
    assert pix.tolist() == [4 * 8 + 4] and rows.tolist() == [1] and z.tolist() == [4.0]


@pytest.mark.parametrize("channels", [("range", "intensity", "height"), ("depth", "intensity", "height"),
                                      ("intensity", "range", "depth")])
@pytest.mark.parametrize("units", ["unit", "byte", "counts16"])
def test_project_lidar_codes_equal_the_numpy_path(channels, units):
    T, cam = _T(), CAMERAS["pinhole_skewed"]
    pts = _cloud(7, T, cam)
    scale = {"unit": 1 / 255, "byte": 1.0, "counts16": 200.0}[units]  # raw 0..255 -> each unit's range
    pts[:, 3] = np.where(np.isfinite(pts[:, 3]), pts[:, 3] * scale, pts[:, 3])
    enc = LidarEncoding(channels=channels, max_range=60.0, min_height=-2.0, max_height=4.0)
    got = L.project_lidar_codes(pts, T, cam, enc, units)
    with kernels.disabled():
        want = L.project_lidar_codes(pts, T, cam, enc, units)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[1].dtype == np.uint8 and len(np.unique(got[1][:, channels.index("intensity")])) > 50


def test_codes_kernel_declines_counts16_and_other_dtypes():
    from rmmss_core.kernels.lidar import nearest_returns, return_codes
    pts = _cloud(8, _T(), CAMERAS["pinhole_skewed"])
    pix, rows, z = nearest_returns(pts, _T(), CAMERAS["pinhole_skewed"], L.NO_RETURN_R2, MIN_DEPTH_M)
    assert return_codes(pts, rows, z, LidarEncoding(), "counts16") is None
    assert nearest_returns(pts.astype(np.float16), _T(), CAMERAS["pinhole_skewed"], 1e-6, 1e-3) is None


def test_strided_view_of_a_message_buffer_gives_the_copy_s_returns():
    """xyzi_view (no copy, NaN rows kept) and cloud_to_xyzi (copy, NaN rows dropped) -> the same image."""
    from sensor_msgs.msg import PointCloud2, PointField

    from rmmss_ros.conversions import cloud_to_xyzi, fill_cloud, xyzi_view
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("t", "<u4"), ("ring", "<u2"),
                   ("pad", "<u2")])  # Hesai / Livox-like: x, y, z, intensity then more, point_step 24
    src = _cloud(10, _T(), CAMERAS["pinhole_skewed"])
    a = np.zeros(len(src), dt)
    for k, n in enumerate(("x", "y", "z", "intensity")):
        a[n] = src[:, k]
    msg = fill_cloud(PointCloud2(), a, PointField)
    view = xyzi_view(msg)
    assert view is not None and not view.flags.owndata and view.shape == (len(src), 4)
    enc = LidarEncoding()
    got = L.project_lidar_codes(view, _T(), CAMERAS["plumb_bob"], enc, "byte")
    want = L.project_lidar_codes(cloud_to_xyzi(msg), _T(), CAMERAS["plumb_bob"], enc, "byte")
    img = lambda r: np.bincount(r[0], minlength=W * H)  # noqa: E731 - same pixels
    np.testing.assert_array_equal(img(got), img(want))
    order_g, order_w = np.argsort(got[0]), np.argsort(want[0])
    np.testing.assert_array_equal(got[1][order_g], want[1][order_w])


def test_xyzi_view_declines_layouts_it_cannot_view():
    from sensor_msgs.msg import PointCloud2, PointField

    from rmmss_ros.conversions import fill_cloud, xyzi_view
    velodyne = np.zeros(10, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"),
                             ("time", "<f4")])  # point_step 22: rows not 4-byte aligned
    ouster = np.zeros(10, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("_pad", "<f4"), ("intensity", "<f4")])
    u8_intensity = np.zeros(10, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "u1"), ("p", "u1", (3,))])
    for a in (velodyne, ouster, u8_intensity):
        assert xyzi_view(fill_cloud(PointCloud2(), a, PointField)) is None


def test_planes_kernels_equal_numpy():
    from rmmss_core.kernels.planes import fill_scatter, take_u16
    rng = np.random.default_rng(11)
    table = rng.normal(size=(3, 256)).astype(np.float32)
    idx = rng.choice(H * W, 5000, replace=False)
    codes = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    out = np.empty((3, H * W), np.float32)
    fill_scatter(out, table, idx, codes)
    want = np.repeat(table[:, :1], H * W, axis=1)
    for c in range(3):
        want[c, idx] = table[c, codes[:, c]]
    np.testing.assert_array_equal(out, want)
    t16 = rng.integers(0, 256, 65536, dtype=np.uint8)
    a = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    np.testing.assert_array_equal(take_u16(t16, a), t16.take(a))
    np.testing.assert_array_equal(take_u16(t16, a[:, ::-2]), t16.take(a[:, ::-2]))  # strided


def test_disabled_by_environment_variable(tmp_path):
    import subprocess
    import sys
    code = "from rmmss_core import kernels; print(kernels.enabled(), kernels.why_disabled())"
    out = subprocess.run([sys.executable, "-c", code], env={"RMMSS_KERNELS": "0", "PATH": "/usr/bin"},
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("False disabled by RMMSS_KERNELS=0")


@pytest.mark.parametrize("camera", sorted(CAMERAS))
@pytest.mark.parametrize("units", ["unit", "byte", "counts16"])
def test_fused_lidar_planes_equal_the_composed_path(camera, units):
    """kernels.lidar.lidar_planes (projection, nearest return, codes and normalised planes in one
    pass) == fit_normalize_codes of project_lidar_codes' sparse codes; None where it does not apply."""
    import torch

    from rmmss_core.kernels.lidar import lidar_planes
    from rmmss_core.preprocess import Codes, fit_normalize_codes, normalize_table
    from rmmss_core.spec import PreprocessSpec
    cam, T = CAMERAS[camera], _T()
    pts = _cloud(12, T, cam)
    spec = PreprocessSpec(input_size=(H, W), lidar=LidarEncoding(channels=("depth", "intensity", "height")))
    norm = spec.normalization["lidar"]
    got = np.empty((3, H, W), np.float32)
    n = lidar_planes(pts, T, cam, spec.lidar, units, normalize_table(tuple(norm.mean), tuple(norm.std)), got,
                     L.NO_RETURN_R2, MIN_DEPTH_M)
    if camera in ("rectified_P", "equidistant") or units == "counts16":
        assert n is None
        return
    with kernels.disabled():
        pix, codes = L.project_lidar_codes(pts, T, cam, spec.lidar, units)
        want = fit_normalize_codes(Codes.of_sparse((H, W), pix, codes), (H, W), "lidar", spec, torch.empty(3, H, W))
    assert n == pix.size > 1000
    np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize("size,policy", [((240, 320), "stretch"), ((256, 320), "letterbox"), ((256, 256), "crop"),
                                         ((96, 160), "letterbox"), ((480, 640), "crop")])
@pytest.mark.parametrize("key", [0, 2, None])
def test_nearest_return_reduction_of_codes_equals_numpy(size, policy, key):
    from rmmss_core.geometry import InputGeometry
    from rmmss_core.preprocess import Codes, _reduce_codes_nearest_return
    rng = np.random.default_rng(13)
    idx = np.sort(rng.choice(H * W, 40000, replace=False))
    vals = rng.integers(0, 256, (idx.size, 3), dtype=np.uint8)
    vals[:300] = 0  # no return coded as all-zero: ignored
    vals[300:2300, 0] = vals[300, 0]  # equal keys: ties -> first in row-major order
    codes = Codes.of_sparse((H, W), idx, vals)
    geo = InputGeometry.of((H, W), size, policy)
    got = _reduce_codes_nearest_return(codes, geo, key)
    with kernels.disabled():
        want = _reduce_codes_nearest_return(codes, geo, key)
    assert got.shape == want.shape == size
    np.testing.assert_array_equal(got.sparse[0], want.sparse[0])
    np.testing.assert_array_equal(got.sparse[1], want.sparse[1])
    assert want.sparse[0].size > 1000


@pytest.mark.parametrize("size,policy", [((240, 320), "stretch"), ((256, 320), "letterbox"), ((256, 256), "crop"),
                                         ((96, 160), "letterbox"), ((600, 800), "letterbox"), ((333, 500), "stretch")])
@pytest.mark.parametrize("layout", ["rgb", "bgr_view", "single_plane"])
def test_nearest_resampled_codes_normalise_as_numpy(size, policy, layout):
    """remap_lut (crop, nearest resize, letterbox padding and lookup in one pass) == the torch
    nearest + pad + cv2.LUT path, for event-like 3-plane codes (also a reversed bgr view) and
    depth's single plane; upscaling too."""
    import torch

    from rmmss_core.preprocess import Codes, fit_normalize_codes
    from rmmss_core.spec import PreprocessSpec
    rng = np.random.default_rng(14)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    planes = {"rgb": img, "bgr_view": img[:, :, ::-1], "single_plane": img[:, :, 1]}[layout]
    spec = PreprocessSpec(input_size=size, resize_policy=policy)
    m = "depth" if layout == "single_plane" else "event"
    got = fit_normalize_codes(Codes.dense(planes), size, m, spec, torch.empty(3, *size))
    with kernels.disabled():
        want = fit_normalize_codes(Codes.dense(planes), size, m, spec, torch.empty(3, *size))
    assert torch.equal(got, want)


@pytest.mark.parametrize("src", [(480, 640), (375, 1242), (481, 643)])
@pytest.mark.parametrize("size", [(384, 512), (256, 320), (96, 160), (1024, 1024), (333, 500)])
def test_channels_last_bilinear_equals_the_contiguous_kernel(src, size):
    """preprocess.resize runs bilinear RGB on a channels-last copy (torch's vectorised kernel, ~4x
    faster on CPU); its values must equal the NCHW kernel's, which trained every model so far."""
    import torch
    import torch.nn.functional as F

    from rmmss_core.preprocess import resize
    x = torch.randint(0, 256, (2, 3, *src)).float() / 255
    want = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    got = resize(x, size, "rgb")
    assert got.is_contiguous() and torch.equal(got, want)
    assert torch.equal(resize(x[0], size, "rgb"), want[0])


def test_empty_inputs_on_a_fresh_thread():
    """A thread's first call with no returns at all (scratch buffers not yet grown) works.
    Found by a new-user run (an AttributeError on a cloud whose points all miss the image)."""
    import threading

    from rmmss_core.geometry import InputGeometry
    from rmmss_core.kernels.lidar import nearest_returns, reduce_nearest_return_codes
    out: list = []

    def work():
        cam = CAMERAS["pinhole_skewed"]
        out.append(nearest_returns(np.zeros((0, 4), np.float32), np.eye(4), cam, 1e-6, 1e-3))
        out.append(reduce_nearest_return_codes(np.zeros(0, np.int64), np.zeros((0, 3), np.uint8), (H, W),
                                               InputGeometry.of((H, W), (48, 64), "letterbox"), 0))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert [a.size for a in out[0]] == [0, 0, 0] and [a.size for a in out[1]] == [0, 0]
