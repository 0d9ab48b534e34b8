"""Issue #14: the float32 view pre-cull in front of ``lidar_returns``' exact float64 stage changes no
return: with and without it the same pixels and the same values, for points on the image border
(u + 0.5 or v + 0.5 a hair either side of 0 and of the width / height), camera z around
MIN_DEPTH_M and 0, a skewed K, a rotated and offset LiDAR, distorted cameras and non-finite input.
The reference is the exact stage on every point (``view_candidates`` returning None)."""
from __future__ import annotations

import numpy as np
import pytest

from rmmss_core.encodings import CameraModel
from rmmss_core.encodings import lidar as L
from rmmss_core.encodings.camera import MIN_DEPTH_M
from rmmss_core.spec import LidarEncoding

W, H = 640, 480


@pytest.fixture(autouse=True)
def _numpy_path():
    """These tests are about the numpy reference's pre-cull; the compiled kernels (which do not
    cull) are compared with that reference in test_kernels.py."""
    from rmmss_core import kernels
    with kernels.disabled():
        yield
K = np.array([[500.0, 0.7, 319.3], [0.0, 480.0, 241.1], [0.0, 0.0, 1.0]])  # skewed, off-centre


def _T(yaw=0.3, pitch=-0.05, t=(0.12, -0.4, 0.25)):
    """A LiDAR (REP 103: x forward) mounted with a yaw / pitch and offset -> camera optical frame."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    optical = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = optical @ Ry @ Rz, t
    return T


def _border_points(rng, T, cam, n=20000):
    """Points whose camera-frame projection lies within a hair of the image border or whose camera
    z is around MIN_DEPTH_M / 0, given in the LiDAR frame as float32 (what cloud_to_xyzi gives)."""
    z = np.concatenate([10 ** rng.uniform(-3.2, 2, n - 2000), MIN_DEPTH_M + rng.uniform(-1e-6, 1e-6, 1000),
                        rng.uniform(-1e-4, 1e-4, 1000)])
    eps = rng.choice([-1e-3, -1e-5, -1e-7, 0.0, 1e-7, 1e-5, 1e-3], n) * rng.choice([1, 10, 100], n)
    u = rng.uniform(-1, W + 1, n)
    v = rng.uniform(-1, H + 1, n)
    side = rng.integers(0, 4, n)  # pin u or v to one of the four borders (+ eps)
    u = np.where(side == 0, -0.5 + eps, np.where(side == 1, W - 0.5 + eps, u))
    v = np.where(side == 2, -0.5 + eps, np.where(side == 3, H - 0.5 + eps, v))
    yc = (v - cam.K[1, 2]) / cam.K[1, 1] * z
    xc = ((u - cam.K[0, 2]) - cam.K[0, 1] * yc / z) / cam.K[0, 0] * z
    cam_pts = np.c_[xc, yc, z]
    Tinv = np.linalg.inv(T)
    lidar = cam_pts @ Tinv[:3, :3].T + Tinv[:3, 3]
    return np.c_[lidar, rng.uniform(0, 255, n)].astype(np.float32)


def _scan360(rng, n=65536):
    az, r = rng.uniform(-np.pi, np.pi, n), rng.uniform(0.3, 100, n)
    return np.c_[r * np.cos(az), r * np.sin(az), rng.uniform(-3, 6, n), rng.uniform(0, 255, n)].astype(np.float32)


def _both(monkeypatch, pts, T, cam, enc=LidarEncoding()):
    new = L.lidar_returns(pts, T, cam, enc, "byte")
    ref = L.lidar_returns(pts, T, cam, enc, "byte", precull=False)
    with monkeypatch.context() as m:  # precull=False is the exact stage on every point
        m.setattr(L, "view_candidates", lambda *a: None)
        _assert_same(L.lidar_returns(pts, T, cam, enc, "byte"), ref)
    return new, ref


def _assert_same(new, ref):
    assert new[0].dtype == ref[0].dtype and new[1].dtype == ref[1].dtype
    np.testing.assert_array_equal(new[0], ref[0])
    np.testing.assert_array_equal(new[1], ref[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_points_on_the_image_border_and_near_z0_project_as_without_the_cull(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    T, cam = _T(), CameraModel(W, H, K)
    pts = _border_points(rng, T, cam)
    new, ref = _both(monkeypatch, pts, T, cam, LidarEncoding(channels=("range", "intensity", "depth")))
    _assert_same(new, ref)
    # a real border case: the cull drops points, many pixels are hit, border pixels among them
    cand = L.view_candidates(pts, T, cam)
    assert cand.size < len(pts) and ref[0].size > 1000
    row, col = ref[0] // W, ref[0] % W
    assert {0, W - 1} <= set(col.tolist()) and {0, H - 1} <= set(row.tolist())


def test_a_360_degree_scan_is_mostly_culled_and_projects_the_same(monkeypatch):
    rng = np.random.default_rng(3)
    T, cam = _T(yaw=0.0, pitch=0.0, t=(0.0, 0.0, 0.0)), CameraModel(W, H, K)
    pts = _scan360(rng)
    cand = L.view_candidates(pts, T, cam)
    assert cand.size < 0.3 * len(pts)  # a ~65-degree camera sees under a fifth of the scan
    assert np.all(np.diff(cand) > 0)  # original order: the lowest-index tie rule is unchanged
    pts[100:110] = pts[200:210]  # duplicate points: equal-depth ties
    _assert_same(*_both(monkeypatch, pts, T, cam))


def test_distorted_camera_is_culled_by_depth_only(monkeypatch):
    rng = np.random.default_rng(4)
    T = _T()
    cam = CameraModel(W, H, K, D=np.array([-0.3, 0.1, 0.001, -0.002, 0.0]))
    pts = _scan360(rng, 20000)
    cand = L.view_candidates(pts, T, cam)
    in_front = (pts[:, :3].astype(np.float64) @ T[2, :3] + T[2, 3]) > MIN_DEPTH_M
    assert set(np.flatnonzero(in_front).tolist()) <= set(cand.tolist())
    assert cand.size < 0.7 * len(pts)
    _assert_same(*_both(monkeypatch, pts, T, cam))


def test_non_finite_points_skip_the_cull_and_are_dropped(monkeypatch):
    rng = np.random.default_rng(5)
    T, cam = _T(), CameraModel(W, H, K)
    pts = _scan360(rng, 5000)
    pts[:50, 0] = np.nan
    pts[50:60, 2] = np.inf
    assert L.view_candidates(pts, T, cam) is None
    _assert_same(*_both(monkeypatch, pts, T, cam))
    pts64 = pts.astype(np.float64)
    pts64[60:70, :3] = 1e300  # finite in float64, inf in float32: no cull either
    assert L.view_candidates(pts64[50:], T, cam) is None


def test_huge_finite_coordinates_skip_the_cull_instead_of_dropping_points():
    """A byte-swapped cloud's garbage (finite float32 near 3e38): float32 plane terms would overflow
    (inf - inf = NaN) and drop a point the exact stage keeps. Found by a new-user run."""
    cam = CameraModel(160, 120, np.array([[128.0, 0, 79.5], [0, 128.0, 59.5], [0, 0, 1]]))
    T = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
    pts = np.array([[1e38, 1e37, 0, 200], [10, 0, 0, 100]], np.float32)
    assert L.view_candidates(pts, T, cam) is None
    assert L.lidar_returns(pts, T, cam)[0].tolist() == [9667, 9680]
    assert L.lidar_returns(pts, T, cam, precull=False)[0].tolist() == [9667, 9680]
