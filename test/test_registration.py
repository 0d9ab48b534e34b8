"""Depth -> colour registration (depth_image_proc register, ros-perception/image_pipeline
@7e03ec8:depth_image_proc/src/register.cpp ``convert``) on known geometry: an 848 x 480 depth
camera (RealSense D435 depth) and a 1280 x 720 colour camera 15 mm beside it, looking at a wall
at 2 m with a box face at 1 m in front of it."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from rmmss_core.encodings import CameraModel
from rmmss_ros.conversions import ConversionError
from rmmss_ros.conversions.image import image_to_numpy
from rmmss_ros.registration.register import DepthRays, DepthRegistrar, depth_camera_from_info, register_depth

DW, DH, DF = 848, 480, 424.0
CW, CH, CF = 1280, 720, 910.0
WALL, BOX = 2.0, 1.0
BOX_ROWS, BOX_COLS = (150, 300), (300, 500)  # depth pixels of the box face


def info(w, h, f, d=(0.0,) * 5):
    cx, cy = (w - 1) / 2, (h - 1) / 2
    k = [f, 0, cx, 0, f, cy, 0, 0, 1]
    return SimpleNamespace(width=w, height=h, k=k, d=list(d), p=[f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0],
                           distortion_model="plumb_bob", header=SimpleNamespace(frame_id="x"))


def T_rgb_depth():
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.array([[0.0], [0.01], [0.0]]))[0]
    T[:3, 3] = (-0.015, 0.0, 0.0)
    return T


def depth_image(dtype=np.uint16):
    z = np.full((DH, DW), WALL)
    z[BOX_ROWS[0]:BOX_ROWS[1], BOX_COLS[0]:BOX_COLS[1]] = BOX
    return (z * 1000).astype(np.uint16) if dtype == np.uint16 else z.astype(np.float32)


def expected():
    """Per colour pixel: the depth of the first surface its ray meets (box or wall), and whether the
    pixel is within 3 pixels of the box outline (excluded from exact checks)."""
    T = T_rgb_depth()
    R, t = T[:3, :3], T[:3, 3]
    n = R[:, 2]  # the depth camera's z axis in the colour frame
    u, v = np.meshgrid(np.arange(CW, dtype=float), np.arange(CH, dtype=float))
    r = np.stack([(u - (CW - 1) / 2) / CF, (v - (CH - 1) / 2) / CF, np.ones_like(u)], axis=-1)
    out = np.full((CH, CW), np.nan)
    near_edge = np.zeros((CH, CW), bool)
    in_view = np.zeros((CH, CW), bool)
    for c in (BOX, WALL):  # the box first: it is nearer
        s = (c + n @ t) / (r @ n)
        p_c = r * s[..., None]
        p_d = (p_c - t) @ R  # R^T (p_c - t)
        ud = p_d[..., 0] / p_d[..., 2] * DF + (DW - 1) / 2
        vd = p_d[..., 1] / p_d[..., 2] * DF + (DH - 1) / 2
        inside = (ud > -0.5) & (ud < DW - 0.5) & (vd > -0.5) & (vd < DH - 0.5)
        if c == BOX:
            hit = (ud > BOX_COLS[0] - 0.5) & (ud < BOX_COLS[1] - 0.5) & (vd > BOX_ROWS[0] - 0.5) & (vd < BOX_ROWS[1] - 0.5)
            edge = ((np.abs(ud - (BOX_COLS[0] - 0.5)) < 3) | (np.abs(ud - (BOX_COLS[1] - 0.5)) < 3)
                    | (np.abs(vd - (BOX_ROWS[0] - 0.5)) < 3) | (np.abs(vd - (BOX_ROWS[1] - 0.5)) < 3))
            near_edge |= edge & (vd > BOX_ROWS[0] - 4) & (vd < BOX_ROWS[1] + 3) & (ud > BOX_COLS[0] - 4) \
                & (ud < BOX_COLS[1] + 3)
            out[hit] = p_c[hit][:, 2]
        else:
            fill = np.isnan(out) & inside
            out[fill] = p_c[fill][:, 2]
            in_view = inside & (ud > 2) & (ud < DW - 3) & (vd > 2) & (vd < DH - 3)
    # the wall the depth camera does not see (the box's shadow) is not expected anywhere
    return out, near_edge, in_view


@pytest.fixture(scope="module")
def geometry():
    return expected()


def registrar_and_cam(splat="auto"):
    reg = DepthRegistrar(splat)
    rgb = CameraModel(CW, CH, np.array(info(CW, CH, CF).k).reshape(3, 3))
    return reg, rgb


def depth_msg(a, enc):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0), frame_id="depth"),
                           height=a.shape[0], width=a.shape[1], encoding=enc, is_bigendian=0,
                           step=a.shape[1] * a.itemsize, data=a.tobytes())


@pytest.mark.parametrize("enc", ["16UC1", "32FC1"])
def test_unregistered_depth_is_reprojected_nearest_surface_winning(geometry, enc):
    want, near_edge, in_view = geometry
    reg, rgb = registrar_and_cam()
    a = depth_image(np.uint16 if enc == "16UC1" else np.float32)
    out = reg.register(depth_msg(a, enc), info(DW, DH, DF), rgb, T_rgb_depth())
    assert (out.width, out.height, out.encoding) == (CW, CH, enc)  # the colour camera's grid, not stretched
    got = image_to_numpy(out).astype(np.float64)
    got = got / 1000.0 if enc == "16UC1" else got
    filled = got > 0 if enc == "16UC1" else np.isfinite(got)
    check = in_view & ~near_edge & np.isfinite(want)
    assert filled[check].mean() > 0.995  # the splat closes the upsampling gaps
    err = np.abs(got - want)[check & filled]
    assert err.max() < 0.002  # mm rounding + sub-pixel position on the 0.01 rad tilt
    # the box hides the wall: no wall value inside the box's image, away from its outline
    box_px = check & (np.abs(want - BOX) < 0.05)
    assert box_px.sum() > 30000
    assert np.all(np.abs(got[box_px] - want[box_px]) < 0.002)


def test_splat_1_is_the_nodes_rule_and_matches_a_literal_port(geometry):
    # small cameras so the port's Python loop stays quick: 106 x 60 depth into 160 x 90 colour
    dw, dh, df, cw, ch, cf = 106, 60, 53.0, 160, 90, 113.75
    d_info, c_info = info(dw, dh, df), info(cw, ch, cf)
    rng = np.random.default_rng(0)
    a = (rng.uniform(0.8, 3.0, (dh, dw)) * 1000).astype(np.uint16)
    a[rng.random((dh, dw)) < 0.1] = 0
    T = T_rgb_depth()
    rays = DepthRays(depth_camera_from_info(d_info))
    rgb = CameraModel(cw, ch, np.array(c_info.k).reshape(3, 3))
    ours = register_depth(a, rays, T, rgb, splat=1)
    # depth_image_proc RegisterNode::convert<uint16_t>, line by line
    ref = np.zeros((ch, cw), np.uint16)
    P = np.array(d_info.p).reshape(3, 4)
    for v in range(dh):
        for u in range(dw):
            raw = int(a[v, u])
            if raw == 0:
                continue
            d = raw * 0.001
            xyz = np.array([((u - P[0, 2]) * d - P[0, 3]) / P[0, 0], ((v - P[1, 2]) * d - P[1, 3]) / P[1, 1], d, 1.0])
            x, y, z, _ = T @ xyz
            u_rgb = int((cf * x) / z + (cw - 1) / 2 + 0.5)
            v_rgb = int((cf * y) / z + (ch - 1) / 2 + 0.5)
            if not (0 <= u_rgb < cw and 0 <= v_rgb < ch):
                continue
            new = int(z * 1000.0 + 0.5)
            if ref[v_rgb, u_rgb] == 0 or ref[v_rgb, u_rgb] > new:
                ref[v_rgb, u_rgb] = new
    # the node's int(u + 0.5) also keeps points half a pixel left of / above the image in column /
    # row 0 (ours: floor, dropped); compare away from those two edges
    diff = ours[1:, 1:].astype(int) - ref[1:, 1:].astype(int)
    assert np.abs(diff).max() <= 1  # float32 vs float64 rounding of a few half-millimetre ties
    assert (diff != 0).mean() < 0.002
    assert (ref > 0).sum() > 2000


def test_depth_with_the_wrong_size_for_its_camera_info_is_refused():
    reg, rgb = registrar_and_cam()
    a = np.full((240, 424), 1000, np.uint16)
    with pytest.raises(ConversionError, match="depth image is 424 x 240 but its camera_info says 848 x 480"):
        reg.register(depth_msg(a, "16UC1"), info(DW, DH, DF), rgb, T_rgb_depth())
    with pytest.raises(ConversionError, match="16UC1 or 32FC1"):
        reg.register(depth_msg(np.zeros((DH, DW), np.uint8), "mono8"), info(DW, DH, DF), rgb, T_rgb_depth())


def test_a_raw_depth_calibration_is_undistorted():
    # Azure-Kinect-like: the depth camera has distortion; points back-projected through OpenCV's
    # undistortion land where the distorted projection of the same 3-D points says
    d_info = info(320, 288, 252.0, d=(0.1, -0.05, 0.0, 0.0, 0.0))
    cam = depth_camera_from_info(d_info)
    assert not cam.use_p
    rays = DepthRays(cam)
    z = np.full((288, 320), 1.5, np.float32)
    pts, idx = rays.points(z)
    uv, valid = cam.project(pts)
    u, v = idx % 320, idx // 320
    ok = valid & (np.abs(u - 159.5) < 120) & (np.abs(v - 143.5) < 100)
    np.testing.assert_allclose(uv[ok, 0], u[ok], atol=1e-3)
    np.testing.assert_allclose(uv[ok, 1], v[ok], atol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_compiled_and_numpy_registration_are_bit_identical(dtype):
    from rmmss_core import kernels
    rng = np.random.default_rng(3)
    d = rng.uniform(0.3, 7.0, (DH, DW))
    d[rng.random(d.shape) < 0.1] = 0 if dtype == np.uint16 else np.nan
    depth = (d * 1000).astype(np.uint16) if dtype == np.uint16 else d.astype(np.float32)
    rays = DepthRays(depth_camera_from_info(info(DW, DH, DF)))
    rgb = CameraModel(CW, CH, np.array(info(CW, CH, CF).k).reshape(3, 3))
    for splat in (1, "auto"):
        fast = register_depth(depth, rays, T_rgb_depth(), rgb, splat)
        with kernels.disabled():
            ref = register_depth(depth, rays, T_rgb_depth(), rgb, splat)
        np.testing.assert_array_equal(fast, ref)
        assert (fast > 0).sum() > 10000 if dtype == np.uint16 else np.isfinite(fast).sum() > 10000
