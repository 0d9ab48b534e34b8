"""Frozen copy of the node's per-frame path as it was before the issue #14 CPU work (main at
e587f39: rmmss_ros.pipeline.Pipeline.prepare with rmmss_core.encodings.{depth,lidar,common} and
rmmss_core.preprocess.normalize), kept verbatim in behaviour as the reference the optimised path
must reproduce bit for bit. Straightforward float64 numpy; do not optimise this file.
"""
from __future__ import annotations

import numpy as np
import torch

from rmmss_core.encodings.camera import MIN_DEPTH_M
from rmmss_core.preprocess import fit
from rmmss_ros.conversions import cloud_to_xyzi, image_to_numpy, to_rgb8


def from_uint8(u8):
    return u8.astype(np.float32) / np.float32(255.0)


def to_uint8(x):
    return np.rint(np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def quantize(x):
    return from_uint8(to_uint8(x))


def finish(img, q):
    out = np.clip(img, 0.0, 1.0).astype(np.float32)
    return quantize(out) if q else out


def to_depth_m(msg):
    a = image_to_numpy(msg, "depth")
    if str(msg.encoding) == "32FC1":
        return a.astype(np.float32)
    d = a.astype(np.float32) / np.float32(1000.0)
    d[a == 0] = np.nan
    return d


def encode_depth_metric(depth, enc, q):
    m = np.asarray(depth).astype(np.float64)
    valid = np.isfinite(m) & (m > 0)
    d = np.where(valid, m, 0.0)
    x = np.where(valid, d / enc.max_depth, 0.0)
    return finish(np.repeat(x[:, :, None], 3, axis=2), q)


def normalize_intensity(values, units):
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if units == "unit":
        out = v
    elif units == "byte":
        out = v * np.float32(1.0 / 255.0)
    else:
        out = np.log1p(np.maximum(v, np.float32(0.0))) / np.float32(np.log1p(65535.0))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def project_lidar(points, T, camera, enc, q, units):
    pts = np.asarray(points)
    H, W = camera.height, camera.width
    out = np.zeros((H * W, 3), dtype=np.float32)
    xyz_all = pts[:, :3].astype(np.float64)
    front = np.flatnonzero(xyz_all @ T[2, :3] + T[2, 3] > MIN_DEPTH_M)
    xyz = xyz_all[front]
    r2 = np.einsum("ij,ij->i", xyz, xyz)
    ok = np.isfinite(r2) & (r2 > 1e-3 ** 2)
    front, xyz = front[ok], xyz[ok]
    pts = pts[front]
    cam = xyz @ T[:3, :3].T + T[:3, 3]
    pix, valid = camera.pixel_indices(cam)
    depth = cam[valid, 2]
    # z-buffer: nearest point per pixel, ties -> lowest index (plain loop-free reference: lexsort)
    order = np.lexsort((np.arange(pix.size), depth, pix))
    first = np.ones(order.size, bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    keep = order[first]
    src = np.flatnonzero(valid)[keep]
    target = pix[keep]
    for c, name in enumerate(enc.channels):
        if name == "range":
            v = np.sqrt((xyz[src] ** 2).sum(axis=1)) / enc.max_range
        elif name == "intensity":
            v = normalize_intensity(pts[src, 3], units) if pts.shape[1] > 3 else np.zeros(src.size)
        elif name == "height":
            v = (xyz[src, 2] - enc.min_height) / (enc.max_height - enc.min_height)
        else:
            v = cam[src, 2] / enc.max_range
        v = np.clip(v, 0.0, 1.0).astype(np.float32)
        out[target, c] = quantize(v) if q else v
    return out.reshape(H, W, 3)


def normalize(x, norm):
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for c in range(3):
        torch.sub(x.select(-3, c), norm.mean[c], out=out.select(-3, c))
        out.select(-3, c).div_(norm.std[c])
    return out


def reference_prepare(pipe, frame_set, camera_info, event_image=None):
    """The model input {m: 1 x 3 x h x w} the old path gave for ``frame_set``; ``event_image`` is
    the encoded event image (H x W x 3 float) for packet/cloud events (that path is unchanged)."""
    spec, msgs = pipe.spec, frame_set.messages
    enc = {}
    camera = pipe.camera(camera_info)
    if "rgb" in msgs:
        enc["rgb"] = from_uint8(np.ascontiguousarray(to_rgb8(msgs["rgb"])))
    if "depth" in msgs:
        enc["depth"] = encode_depth_metric(to_depth_m(msgs["depth"]), spec.depth, spec.quantize_8bit)
    if "event" in msgs:
        enc["event"] = event_image if event_image is not None else from_uint8(
            np.ascontiguousarray(to_rgb8(msgs["event"])))
    if "lidar" in msgs:
        enc["lidar"] = project_lidar(cloud_to_xyzi(msgs["lidar"]), pipe.T_cam_lidar, camera, spec.lidar,
                                     spec.quantize_8bit, pipe.lidar_units(msgs["lidar"]))
    out = {}
    for m in ("rgb", "depth", "event", "lidar"):
        if m not in enc:
            out[m] = torch.zeros(1, 3, *spec.input_size)
            continue
        x = torch.from_numpy(np.ascontiguousarray(enc[m], dtype=np.float32)).permute(2, 0, 1)
        out[m] = normalize(fit(x, tuple(spec.input_size), m, spec), spec.normalization[m])[None]
    return out
