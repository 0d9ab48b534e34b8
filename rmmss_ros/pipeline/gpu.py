"""``Pipeline.prepare`` on a torch device: raw message bytes uploaded once, decoded, converted,
projected, resized and normalised on the device (``preprocess.device: cuda`` in the node and in
``rmmss replay --param preprocess.device=cuda``).

Per frame set, each message's ``data`` buffer is copied to the device as it arrived (one host ->
device copy per message, padding and byte order included); everything after that runs there:

* camera ``Image`` (rgb8, bgr8, rgba8, bgra8, mono8, 8UC1/8UC3, mono16/16UC1): strip the row
  padding, reorder the channels, ``/ 255``; other encodings (YUV, Bayer: OpenCV) convert on the
  host and upload the RGB image;
* depth ``Image`` (32FC1 metres, 16UC1/mono16 millimetres): bytes -> values (either byte order),
  metric or HHA encoding;
* event frame ``Image``, or an event ``PointCloud2`` (x, y, t, polarity) decoded and accumulated
  on the device; where the pipeline buffers events across packets (an ``encode_events`` method:
  EventPacket, several packets per window) the events stay in that host buffer, are accumulated
  there and the event image is uploaded;
* LiDAR ``PointCloud2``: the x, y, z, intensity fields gathered from the point records by their
  offsets and datatypes, intensity units as the pipeline resolves them, projected with the camera
  model, nearest point per pixel;
* fit to the network input (the CPU path's ``fit`` / ``resize``) and ``(x - mean) / std``.

Message metadata (sizes, encodings, fields, steps) are checked on the host with the same rules
and the same error texts as :mod:`rmmss_ros.conversions`, so a malformed message costs only its
modality here too. The encodings themselves are :mod:`rmmss_core.preprocess_torch` (equal to the
CPU path within one intensity level per pixel, tested on CPU tensors in ``make test``).

One function per sensor (:func:`rgb_image`, :func:`depth_image`, :func:`event_image`,
:func:`lidar_cloud`) keeps each conversion next to its CPU counterpart; cloud and packet events
are buffered across messages on the host (``Pipeline.encode_events``) and their image uploaded.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from rmmss_core.encodings import CameraModel
from rmmss_core.preprocess_torch import (
    encode_depth_t,
    encode_rgb_t,
    preprocess_t,
    project_lidar_t,
)
from rmmss_core.spec import PreprocessSpec
from rmmss_ros.conversions import ConversionError, to_rgb8
from rmmss_ros.conversions.common import as_bytes_view
from rmmss_ros.conversions.image import IMAGE_ENCODINGS, image_to_numpy
from rmmss_ros.conversions.pointcloud import cloud_dtype
from rmmss_ros.pipeline.prepared import Prepared, try_modality

_CAMERA_ENCODINGS = ("rgb8", "8UC3", "rgba8", "bgr8", "bgra8", "mono8", "8UC1", "mono16", "16UC1")
_TORCH_DTYPES = {np.dtype(np.int8): torch.int8, np.dtype(np.uint8): torch.uint8, np.dtype(np.int16): torch.int16,
                 np.dtype(np.int32): torch.int32, np.dtype(np.float32): torch.float32,
                 np.dtype(np.float64): torch.float64}


def upload(data: Any, device: torch.device, what: str) -> torch.Tensor:
    """A message's ``data`` buffer -> flat uint8 tensor on ``device`` (one copy; no copy on CPU)."""
    buf = as_bytes_view(data, what)
    with warnings.catch_warnings():  # read-only message buffers: never written to
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(buf)
    return t.to(device, non_blocking=False) if t.device != device else t


def _values(raw: torch.Tensor, dtype: np.dtype, big: bool) -> torch.Tensor:
    """``... x itemsize`` uint8 bytes -> ``...`` values of ``dtype`` (the given byte order)."""
    size = dtype.itemsize
    if size == 1:
        return raw[..., 0].view(torch.int8) if dtype == np.int8 else raw[..., 0]
    if dtype in (np.uint16, np.uint32):  # torch views of unsigned ints are limited: assemble in int64
        b = raw.long()
        if big:
            b = b.flip(-1)
        shifts = torch.arange(size, device=raw.device) * 8
        return (b << shifts).sum(-1)
    b = raw.flip(-1) if big else raw
    return b.contiguous().view(_TORCH_DTYPES[dtype]).squeeze(-1)


def image_values(msg: Any, device: torch.device, what: str) -> tuple[torch.Tensor, str]:
    """Image -> ``H x W x C`` on ``device`` (uint8, int64 for 16-bit, float32) and its encoding.

    The host checks the layout (``conversions.image.image_to_numpy``: a view, no copy) and the raw
    buffer goes to the device, where row padding and byte order are undone."""
    image_to_numpy(msg, what)  # validation only (same errors as the CPU path)
    enc = str(msg.encoding)
    dtype, ch = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    raw = upload(msg.data, device, what).view(h, step)[:, :w * ch * dtype.itemsize]
    vals = _values(raw.reshape(h, w, ch, dtype.itemsize), dtype, bool(msg.is_bigendian))
    return vals, enc


def rgb_image(msg: Any, device: torch.device, what: str = "camera") -> torch.Tensor:
    """Camera Image -> uint8 ``H x W x 3`` RGB on the device (``conversions.to_rgb8``).

    rgb8 / bgr8 / rgba8 / bgra8 / mono8 / 8UC1 / 8UC3 / mono16 / 16UC1 are decoded on the device;
    any other encoding the CPU path accepts (YUV, Bayer, 16-bit colour: OpenCV) is converted by
    ``to_rgb8`` on the host and the RGB image uploaded."""
    if str(msg.encoding) not in _CAMERA_ENCODINGS:
        return torch.from_numpy(np.ascontiguousarray(to_rgb8(msg, what))).to(device)
    a, enc = image_values(msg, device, what)
    if enc in ("rgb8", "8UC3", "rgba8"):
        return a[:, :, :3]
    if enc in ("bgr8", "bgra8"):
        return a[:, :, [2, 1, 0]]
    if enc in ("mono8", "8UC1"):
        return a.expand(-1, -1, 3)
    if enc in ("mono16", "16UC1"):
        return (a >> 8).to(torch.uint8).expand(-1, -1, 3)
    raise ConversionError(f"{what}: encoding {enc!r} is not a camera image (use rgb8, bgr8, rgba8, bgra8, mono8)")


def depth_image(msg: Any, device: torch.device, what: str = "depth") -> torch.Tensor:
    """Depth Image -> ``H x W`` float32 metres on the device, NaN invalid (``conversions.to_depth_m``)."""
    a, enc = image_values(msg, device, what)
    a = a[:, :, 0]
    if enc == "32FC1":
        d = a.float()
    elif enc in ("16UC1", "mono16"):
        d = torch.where(a == 0, torch.full((), float("nan"), device=a.device), a.float() / 1000.0)
    else:
        raise ConversionError(f"{what}: depth must be 32FC1 (metres) or 16UC1 (millimetres), got {enc!r}")
    if not bool((torch.isfinite(d) & (d > 0)).any()):
        raise ConversionError(f"{what}: no valid depth pixel (all NaN, Inf or <= 0)")
    return d


def event_image(msg: Any, device: torch.device, what: str = "event") -> torch.Tensor:
    """Event-frame Image -> float32 ``3 x H x W`` in [0, 1] (``conversions.encode_event_image``)."""
    if str(msg.encoding) in ("32FC1", "16UC1", "mono16"):
        a = image_to_numpy(msg, what)
        raise ConversionError(f"{what}: event frame must be 8-bit (rgb8, bgr8, mono8), got {msg.encoding!r} "
                              f"{a.shape}")
    return encode_rgb_t(rgb_image(msg, device, what))


def cloud_fields(msg: Any, device: torch.device, what: str) -> tuple[dict[str, torch.Tensor], int]:
    """PointCloud2 -> ({field name: values ``N`` on the device}, N), checked like
    ``conversions.read_points`` (same error texts); multi-count fields keep their first element."""
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    if h * w and rs < w * ps:
        raise ConversionError(f"{what}: row_step {rs} < width x point_step = {w} x {ps}")
    big = bool(msg.is_bigendian)
    dtype = cloud_dtype(msg.fields, ps, big, what)
    nbytes = as_bytes_view(msg.data, what).size
    if nbytes != rs * h:
        raise ConversionError(f"{what}: data has {nbytes} bytes, expected row_step x height = {rs} x {h}")
    n = h * w
    if n == 0:
        return {name: torch.zeros(0, device=device) for name in dtype.names}, 0
    rows = upload(msg.data, device, what).view(h, rs)[:, :w * ps].reshape(n, ps)
    out = {}
    for name in dtype.names:
        dt, off = dtype.fields[name][:2]
        base = dt.base.newbyteorder("=")
        out[name] = _values(rows[:, off:off + base.itemsize], base, big)
    return out, n


def lidar_points(msg: Any, device: torch.device, what: str = "lidar") -> torch.Tensor:
    """PointCloud2 -> ``N x 4`` float32 (x, y, z, intensity) of the finite points on the device
    (``conversions.cloud_to_xyzi``)."""
    f, n = cloud_fields(msg, device, what)
    if n == 0:
        raise ConversionError(f"{what}: empty cloud ({int(msg.width)} x {int(msg.height)} points)")
    missing = [k for k in ("x", "y", "z") if k not in f]
    if missing:
        raise ConversionError(f"{what}: cloud lacks fields {missing}; has {list(f)}")
    inten = f["intensity"].float() if "intensity" in f else torch.zeros(n, device=device)
    out = torch.stack([f["x"].float(), f["y"].float(), f["z"].float(), inten], dim=1)
    finite = torch.isfinite(out[:, :3]).all(dim=1)
    if not bool(finite.any()):
        raise ConversionError(f"{what}: none of the {n} points has finite x, y, z")
    out = out[finite]
    out[:, 3] = torch.nan_to_num(out[:, 3], nan=0.0, posinf=0.0, neginf=0.0)
    return out


def lidar_cloud(msg: Any, T_cam_lidar: np.ndarray, camera: CameraModel, spec: PreprocessSpec,
                device: torch.device, what: str = "lidar", units: str = "unit",
                warn: Any = None) -> torch.Tensor:
    """LiDAR cloud -> float32 ``3 x H x W`` LiDAR image at the camera resolution (``project_lidar``),
    raw intensity in ``units``; ``warn(text)`` gets the pipeline's byte-scale warning."""
    pts = lidar_points(msg, device, what)
    if warn is not None and units == "byte" and pts.shape[0]:
        top = float(pts[:, 3].max())
        if top > 255.0:
            warn(f"lidar: intensity up to {top:.0f} exceeds the byte scale 0..255; set lidar.intensity_units "
                 "to counts16 if this is a photon-count (Ouster-like) sensor")
    return project_lidar_t(pts, T_cam_lidar, camera, spec.lidar, spec.quantize_8bit, intensity_units=units)


class DevicePreparer:
    """``Pipeline.prepare`` on ``device``: same ``Prepared`` (inputs ``{m: 1 x 3 x h x w}`` on the
    device, or on the host for a backend other than torch), same per-modality error handling."""

    def __init__(self, pipeline: Any, device: str | torch.device):
        self.pipeline = pipeline
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"preprocess.device {str(device)!r}: torch sees no CUDA device")
        self.keep_on_device = getattr(pipeline.backend, "name", "") == "torch"

    def prepare(self, frame_set: Any, camera_info: Any | None = None) -> Any:
        pipe, dev = self.pipeline, self.device
        t0 = time.perf_counter()
        spec = pipe.spec
        msgs, errors, camera = pipe.begin(frame_set, camera_info)
        enc: dict[str, torch.Tensor] = {}
        rgb = None
        size = None
        if "rgb" in msgs:
            rgb = try_modality(errors, "rgb", lambda: rgb_image(msgs["rgb"], dev))
            if rgb is not None:
                enc["rgb"] = encode_rgb_t(rgb)
                size = tuple(rgb.shape[:2])
        if size is None and camera is not None:
            size = (camera.height, camera.width)
        if "depth" in msgs:
            d = self._try(errors, "depth", lambda: encode_depth_t(depth_image(msgs["depth"], dev), spec.depth,
                                                                  spec.quantize_8bit, camera=camera))
            if d is not None:
                enc["depth"] = d
                size = size or tuple(d.shape[1:])
        if "event" in msgs:
            msg = msgs["event"]
            if pipe.params.event_format in ("cloud", "packet"):
                if size is None:
                    errors["event"] = "event: no camera image or CameraInfo yet to size the event image"
                else:  # events buffered across packets on the host: encode there, upload the image
                    e = self._try(errors, "event", lambda: self._upload_image(
                        pipe.encode_events(msg, frame_set.stamp_ns, size, camera)))
                    if e is not None:
                        enc["event"] = e
            else:
                e = self._try(errors, "event", lambda: event_image(msg, dev))
                if e is not None:
                    enc["event"] = e
                    size = size or tuple(e.shape[1:])
        if "lidar" in msgs:
            if camera is None:
                errors["lidar"] = "lidar: no valid CameraInfo received yet; cannot project the cloud"
            else:
                units = pipe.lidar_units(msgs["lidar"])
                li = self._try(errors, "lidar", lambda: lidar_cloud(msgs["lidar"], pipe.T_cam_lidar, camera,
                                                                    spec, dev, units=units,
                                                                    warn=pipe._warn))
                if li is not None:
                    enc["lidar"] = li
                    size = size or (camera.height, camera.width)
        t1 = time.perf_counter()
        tensors, available = preprocess_t(enc, spec, dev)
        inputs = {m: x[None] if self.keep_on_device else x[None].cpu() for m, x in tensors.items()}
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)  # honest timings (inference needs the inputs next anyway)
        t2 = time.perf_counter()
        out_size = tuple(size) if size is not None else tuple(spec.input_size)
        rgb_host = None
        if rgb is not None and pipe.params.color and pipe.params.overlay:
            rgb_host = rgb.cpu().numpy()
        warnings, pipe._pending_warnings = pipe._pending_warnings, []  # configuration warnings, said once
        return Prepared(int(frame_set.stamp_ns), inputs, available[None].numpy(), out_size, rgb_host, errors,
                        {"encode_ms": (t1 - t0) * 1e3, "preprocess_ms": (t2 - t1) * 1e3}, warnings=warnings)

    def _upload_image(self, img: np.ndarray) -> torch.Tensor:
        """A host-encoded ``H x W x 3`` float image -> ``3 x H x W`` on the device."""
        return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).to(self.device).permute(2, 0, 1)

    def _try(self, errors: dict[str, str], name: str, fn) -> torch.Tensor | None:
        """:func:`try_modality` for tensors: errors are recorded, non-finite images rejected."""
        out = try_modality(errors, name, fn)
        if out is not None and not bool(torch.isfinite(out).all()):
            errors[name] = f"{name}: encoded image has NaN or Inf"
            return None
        return out
