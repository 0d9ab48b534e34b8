"""Part of ``make bench`` section "node" (issue #22): what a compressed camera and a compressedDepth
image cost the node next to the raw path, in the same run: bytes on the wire, rclpy deserialisation,
OpenCV decoding (rmmss_ros.conversions.compressed) and the conversion to the network's 8-bit codes
(``to_rgb8`` / ``depth_codes``), at 640 x 480.

The images are a smooth synthetic scene with sensor noise (a jpeg of pure noise would be
unrealistically large), the camera jpeg at quality 95 and 80, depth as 16UC1 millimetres with
holes, compressedDepth PNG (the plugin's default, level 9) and RVL.
"""
from __future__ import annotations

import numpy as np

from rmmss_core.bench.report import time_callable

H, W = 480, 640


def _scene(rng) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    rgb = np.stack([128 + 100 * np.sin(xx / 60), 128 + 90 * np.cos(yy / 45), 128 + 60 * np.sin((xx + yy) / 80)], 2)
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    depth = 1500 + 8 * yy + 2000 * (np.sin(xx / 90) > 0.6) + rng.normal(0, 6, yy.shape)
    depth = depth.astype(np.uint16)
    depth[rng.random(depth.shape) < 0.05] = 0  # holes (no return)
    return rgb, depth


def run(quick: bool, iters: int) -> tuple[list[dict], str]:
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from rmmss_core.spec import DepthEncoding
    from rmmss_ros.conversions import depth_codes, fill_image, to_rgb8
    from rmmss_ros.conversions.compressed import decode_compressed, encode_compressed, encode_compressed_depth

    rng = np.random.default_rng(0)
    rgb, depth = _scene(rng)
    enc = DepthEncoding()
    cases = [("camera rgb8 640 x 480", "raw Image", fill_image(Image(), rgb, "rgb8"), lambda m: to_rgb8(m))]
    for q in (95, 80):
        fmt, data = encode_compressed(rgb, "rgb8", "jpeg", jpeg_quality=q)
        cases.append(("camera rgb8 640 x 480", f"compressed jpeg q{q}", CompressedImage(format=fmt, data=data),
                      lambda m: to_rgb8(decode_compressed(m, "rgb"))))
    cases.append(("depth 16UC1 640 x 480", "raw Image", fill_image(Image(), depth, "16UC1"),
                  lambda m: depth_codes(m, enc)))
    for codec in ("png", "rvl"):
        fmt, data = encode_compressed_depth(depth, "16UC1", codec)
        cases.append(("depth 16UC1 640 x 480", f"compressedDepth {codec}", CompressedImage(format=fmt, data=data),
                      lambda m: depth_codes(decode_compressed(m, "depth"), enc)))
    records = []
    lines = ["| input | transport | bytes on the wire | deserialise (rclpy) p50 ms | decode + codes p50 ms | "
             "total p50 ms |", "|---|---|---|---|---|---|"]
    for name, transport, msg, fn in cases:
        raw = serialize_message(msg)
        cls = type(msg)
        de = time_callable(lambda raw=raw, cls=cls: deserialize_message(raw, cls), iters=iters)
        co = time_callable(lambda fn=fn, msg=msg: fn(msg), iters=iters)
        total = de["p50_ms"] + co["p50_ms"]
        records.append({"input": name, "transport": transport, "bytes": len(raw), "deserialise_p50_ms": de["p50_ms"],
                        "decode_p50_ms": co["p50_ms"], "total_p50_ms": total})
        lines.append(f"| {name} | {transport} | {len(raw):,} | {de['p50_ms']:.2f} | {co['p50_ms']:.2f} | {total:.2f} |")
    reg = _registration(iters)
    records.append(reg)
    lines += ["", f"Unregistered depth (848 x 480, fx 424) reprojected into a 1280 x 720 camera (fx 910), "
              f"16UC1, nearest surface wins, splat 3 (rmmss_ros.registration), p50: {reg['p50_ms']:.1f} ms; "
              f"splat 1 (depth_image_proc's rule, mostly holes): {reg['splat1_p50_ms']:.1f} ms"]
    return records, "\n".join(lines)


def _registration(iters: int) -> dict:
    from types import SimpleNamespace

    from rmmss_core.encodings import CameraModel
    from rmmss_ros.registration.register import DepthRays, depth_camera_from_info, register_depth

    def info(w, h, f):
        cx, cy = (w - 1) / 2, (h - 1) / 2
        return SimpleNamespace(width=w, height=h, k=[f, 0, cx, 0, f, cy, 0, 0, 1], d=[0.0] * 5,
                               p=[f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0], distortion_model="plumb_bob")

    rays = DepthRays(depth_camera_from_info(info(848, 480, 424.0)))
    rgb = CameraModel(1280, 720, np.array([[910.0, 0, 639.5], [0, 910.0, 359.5], [0, 0, 1]]))
    rng = np.random.default_rng(1)
    depth = (rng.uniform(0.5, 6.0, (480, 848)) * 1000).astype(np.uint16)
    T = np.eye(4)
    T[0, 3] = -0.015
    a = time_callable(lambda: register_depth(depth, rays, T, rgb), iters=iters)
    b = time_callable(lambda: register_depth(depth, rays, T, rgb, splat=1), iters=iters)
    return {"input": "depth registration 848x480 -> 1280x720", "p50_ms": a["p50_ms"], "splat1_p50_ms": b["p50_ms"]}


if __name__ == "__main__":  # python -m rmmss_ros.bench.compressed [--quick]
    import sys

    print(run("--quick" in sys.argv, 5 if "--quick" in sys.argv else 30)[1])
