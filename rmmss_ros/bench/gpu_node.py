"""Step 3: the node's pipeline on the device, from raw message bytes to the mask on the host.

Messages are plain objects with the sensor_msgs fields and a ``bytes`` ``data`` buffer exactly as
a subscriber receives them (no rclpy or rosbags on the GPU machine): a 640 x 480 bgr8 camera
image, 16UC1 depth (millimetres), an rgb8 event frame, a 65,536-point x/y/z/intensity cloud and
the CameraInfo; the same set ``make bench`` (node section) times on the CPU.

Rows: the CPU path (``Pipeline.prepare``, numpy), the device path (``preprocess.device``: bytes
uploaded once, decode/convert/project/resize/normalise there), the whole frame on the device
(device prepare + B0 inference + argmax + nearest resize to the camera size there + mask
download), and the largest difference between the two paths' network inputs in 8-bit levels.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from rmmss_core.gpu_check.common import Context, Row, guarded, time_fn

STEP = "node"
H, W, N_POINTS = 480, 640, 65536
INPUT = (384, 512)


class _Field(SimpleNamespace):
    def __init__(self, name: str = "", offset: int = 0, datatype: int = 0, count: int = 1):
        super().__init__(name=name, offset=offset, datatype=datatype, count=count)


def messages(seed: int = 0, image: Callable[[], Any] | None = None, cloud: Callable[[], Any] | None = None,
             field: Any = _Field, camera_info: Callable[[], Any] | None = None) -> tuple[dict[str, Any], Any]:
    """The frame set's messages and CameraInfo: 640 x 480 bgr8 camera, 16UC1 depth, rgb8 event frame,
    a 65536-point x, y, z, intensity float32 cloud. Plain objects with sensor_msgs' fields by default
    (no rclpy on the GPU machine); ``make bench`` passes the rclpy message classes to serialise the
    very same frame set."""
    from rmmss_ros.conversions import fill_cloud, fill_image

    rng = np.random.default_rng(seed)

    def plain() -> SimpleNamespace:
        return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=10, nanosec=0), frame_id="cam"))

    image, cloud, camera_info = image or plain, cloud or plain, camera_info or SimpleNamespace
    pts = np.zeros(N_POINTS, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    pts["x"], pts["y"] = rng.uniform(1, 60, N_POINTS), rng.uniform(-30, 30, N_POINTS)
    pts["z"], pts["intensity"] = rng.uniform(-2, 5, N_POINTS), rng.uniform(0, 1, N_POINTS)
    msgs = {"rgb": fill_image(image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "bgr8"),
            "depth": fill_image(image(), rng.integers(0, 30000, (H, W), dtype=np.uint16), "16UC1"),
            "event": fill_image(image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8"),
            "lidar": fill_cloud(cloud(), pts, field)}
    info = camera_info()
    info.width, info.height, info.distortion_model = W, H, "plumb_bob"
    info.d, info.p, info.k = [0.0] * 5, [0.0] * 12, [500.0, 0, W / 2, 0, 500.0, H / 2, 0, 0, 1]
    return msgs, info


def run(ctx: Context) -> list[Row]:
    from rmmss_core.deploy.backends.torch_backend import TorchBackend
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec
    from rmmss_ros.pipeline.gpu import DevicePreparer
    from rmmss_ros.pipeline.pipeline import Pipeline

    msgs, info = messages()
    fs = SimpleNamespace(stamp_ns=10 * 10**9, messages=msgs, missing=())
    iters = 3 if ctx.smoke else 50
    rows: list[Row] = []
    status, note = ("smoke", "CPU smoke: the device path ran on CPU tensors with the tiny stand-in; "
                    "not the GPU figure") if not ctx.cuda else ("ok", "")
    with tempfile.TemporaryDirectory(prefix="rmmss-gpu-node-") as tmp:
        ckpt = Path(tmp) / "m.pt"
        torch.manual_seed(0)
        size = "tiny" if ctx.smoke else "b0"
        save_model_checkpoint(ckpt, create_model("anymodal", size=size, fusion="mean", missing="drop",
                                                 num_classes=25), PreprocessSpec(input_size=INPUT))
        precision = "bf16" if ctx.cuda else "fp32"
        backend = TorchBackend(ckpt, str(ctx.device), precision, cuda_graphs=ctx.cuda)
        cpu_pipe = Pipeline(backend)
        dev_prep = DevicePreparer(Pipeline(backend), ctx.device)
        common = {"camera": f"{W}x{H} bgr8 + 16UC1 depth + rgb8 event frame", "points": N_POINTS,
                  "network_input": list(INPUT), "model": size, "precision": precision,
                  "bytes_per_frame_set": int(sum(len(m.data) for m in msgs.values()))}

        def cpu_row() -> Row:
            t = time_fn(lambda: cpu_pipe.prepare(fs, info), lambda: None, 1, iters)
            return Row(STEP, "CPU path: Pipeline.prepare (numpy), no inference", "ok" if not ctx.smoke else "smoke",
                       "CPU figure from a smoke run" if ctx.smoke else "", {**common, **t})
        rows += guarded(STEP, "CPU path: Pipeline.prepare (numpy), no inference", cpu_row)

        def prep_row() -> Row:
            t = time_fn(lambda: dev_prep.prepare(fs, info), ctx.sync, 3 if ctx.cuda else 1, iters)
            return Row(STEP, "device path: bytes uploaded once, prepare on the device, no inference", status, note,
                       {**common, "device": str(ctx.device), **t})
        rows += guarded(STEP, "device path: bytes uploaded once, prepare on the device, no inference", prep_row)

        def full() -> torch.Tensor:
            p = dev_prep.prepare(fs, info)
            x, a = backend._to_device(p.inputs, p.available)
            with torch.inference_mode():
                small = backend._run(x, a, "mask")  # argmax on the device
            mask = torch.nn.functional.interpolate(small[:, None].float(), size=p.out_size, mode="nearest")
            return mask[0, 0].to(torch.uint8).cpu()  # the one download: H x W uint8

        def full_row() -> Row:
            t = time_fn(full, ctx.sync, 3 if ctx.cuda else 1, iters)
            out = full()
            assert tuple(out.shape) == (H, W), out.shape
            return Row(STEP, "whole frame on the device: bytes -> prepare -> B0 -> argmax -> resize -> mask download",
                       status, note, {**common, "device": str(ctx.device), **t})
        rows += guarded(STEP, "whole frame on the device: bytes -> prepare -> B0 -> argmax -> resize -> mask download",
                        full_row)

        def equal_row() -> Row:
            a, b = cpu_pipe.prepare(fs, info), dev_prep.prepare(fs, info)
            worst, share = 0.0, 1.0
            for m in a.inputs:
                std = torch.tensor(backend.spec.normalization[m].std).view(1, 3, 1, 1)
                d = (a.inputs[m].double() - b.inputs[m].cpu().double()).abs() * std * 255
                worst = max(worst, float(d.max()))
                share = min(share, float((d < 1e-6).double().mean()))
            fig = {"max_diff_levels": worst, "min_share_identical": share, "target_levels": 1.0,
                   "device": str(ctx.device)}
            if worst > 1.0 + 1e-3:
                return Row(STEP, "device inputs vs CPU inputs (8-bit levels)", "failed",
                           f"largest difference {worst:.3f} levels > 1", fig)
            return Row(STEP, "device inputs vs CPU inputs (8-bit levels)", "ok" if ctx.cuda else "smoke",
                       "" if ctx.cuda else "compared on CPU tensors", fig)
        rows += guarded(STEP, "device inputs vs CPU inputs (8-bit levels)", equal_row)
        backend.close()
    rows.append(_deserialise_row(ctx, msgs, iters))
    return rows


def _deserialise_row(ctx: Context, msgs: dict[str, Any], iters: int) -> Row:
    """rclpy deserialisation of the same messages, the CPU reference of ``make bench``."""
    name = "reference: rclpy deserialisation of the 4 messages (CPU)"
    try:
        from rclpy.serialization import deserialize_message, serialize_message
        from sensor_msgs.msg import Image, PointCloud2, PointField
    except ImportError:
        return Row(STEP, name, "skipped", "rclpy / sensor_msgs not installed here (make bench measures it on the "
                                          "CPU machine, side by side with the CPU path)")

    def real(m: Any, cls: Any) -> Any:
        out = cls()
        for k, v in vars(m).items():
            if k == "header":
                continue
            if k == "fields":
                v = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in v]
            setattr(out, k, v)
        return out
    raw = [(serialize_message(real(m, PointCloud2 if k == "lidar" else Image)), PointCloud2 if k == "lidar" else Image)
           for k, m in msgs.items()]
    t = time_fn(lambda: [deserialize_message(b, c) for b, c in raw], lambda: None, 1, iters)
    return Row(STEP, name, "ok" if not ctx.smoke else "smoke", "", t)
