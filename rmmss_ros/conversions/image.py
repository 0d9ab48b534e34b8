"""sensor_msgs/Image <-> numpy, as cv_bridge users expect: encodings, ``step`` padding,
``is_bigendian``, and zero-copy views of the message buffer wherever the layout allows.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rmmss_ros.conversions.common import ConversionError, as_bytes_view

# encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1), "8UC1": (np.dtype(np.uint8), 1), "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1), "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}


def image_to_numpy(msg: Any, what: str = "image") -> np.ndarray:
    """Image message -> ``H x W`` (1 channel) or ``H x W x C`` array in the encoding's dtype.

    The result is a view of ``msg.data`` (no copy) when each row's padding keeps element alignment
    (``step`` a multiple of the element size) and the byte order is native; otherwise a copy.
    Raises ConversionError naming ``what`` for unknown encodings, bad sizes or steps.
    """
    enc = str(msg.encoding)
    if enc not in IMAGE_ENCODINGS:
        raise ConversionError(f"{what}: unknown encoding {enc!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    dtype, ch = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError(f"{what}: empty image ({w} x {h})")
    row = w * ch * dtype.itemsize
    if step < row:
        raise ConversionError(f"{what}: step {step} is smaller than width x channels x bytes = {row} ({enc})")
    buf = as_bytes_view(msg.data, what)
    if buf.size != step * h:
        raise ConversionError(f"{what}: data has {buf.size} bytes, expected step x height = {step} x {h} "
                              f"= {step * h} ({w} x {h} {enc})")
    big = bool(msg.is_bigendian)
    dt = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    if step % dtype.itemsize == 0:
        arr = np.ndarray((h, w, ch), dtype=dt, buffer=buf, strides=(step, ch * dtype.itemsize, dtype.itemsize))
    else:  # odd padding: rows must be copied to realign the elements
        arr = buf.reshape(h, step)[:, :row].copy().view(dt).reshape(h, w, ch)
    if dt.byteorder not in ("=", "|") and dt != dtype:  # non-native byte order -> native copy
        arr = arr.astype(dtype)
    return arr[:, :, 0] if ch == 1 else arr


def to_rgb8(msg: Any, what: str = "camera") -> np.ndarray:
    """Colour or mono camera image -> ``H x W x 3`` uint8 RGB (a view for rgb8/bgr8/rgba8/bgra8)."""
    a = image_to_numpy(msg, what)
    enc = str(msg.encoding)
    if enc in ("rgb8", "8UC3", "rgba8"):
        return a[:, :, :3]
    if enc in ("bgr8", "bgra8"):
        return a[:, :, 2::-1]
    if enc in ("mono8", "8UC1"):
        return np.repeat(a[:, :, None], 3, axis=2)
    if enc in ("mono16", "16UC1"):
        return np.repeat((a >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    raise ConversionError(f"{what}: encoding {enc!r} is not a camera image (use rgb8, bgr8, rgba8, bgra8, mono8)")


def to_depth_m(msg: Any, what: str = "depth") -> np.ndarray:
    """Depth image (REP 118) -> ``H x W`` float32 metres, NaN where invalid.

    32FC1: metres as sent (NaN invalid; +-Inf kept per REP 117, the encoder treats them as no
    return). 16UC1 / mono16: millimetres, 0 invalid. Raises ConversionError when no pixel is valid.
    """
    a = image_to_numpy(msg, what)
    enc = str(msg.encoding)
    if enc == "32FC1":
        d = a.astype(np.float32, copy=False)
    elif enc in ("16UC1", "mono16"):
        d = a.astype(np.float32) / np.float32(1000.0)
        d[a == 0] = np.nan
    else:
        raise ConversionError(f"{what}: depth must be 32FC1 (metres) or 16UC1 (millimetres), got {enc!r}")
    if not np.any(np.isfinite(d) & (d > 0)):
        raise ConversionError(f"{what}: no valid depth pixel (all NaN, Inf or <= 0)")
    return d


def fill_image(msg: Any, array: np.ndarray, encoding: str) -> Any:
    """Write ``array`` (``H x W`` or ``H x W x C`` matching ``encoding``) into an Image message's
    fields (height, width, encoding, is_bigendian = 0, step without padding, data). Returns ``msg``."""
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"unknown encoding {encoding!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    dtype, ch = IMAGE_ENCODINGS[encoding]
    a = np.asarray(array)
    shape_ok = a.ndim == 2 and ch == 1 or a.ndim == 3 and a.shape[2] == ch
    if not shape_ok or a.dtype != dtype:
        raise ConversionError(f"array {a.dtype} {a.shape} does not fit encoding {encoding!r} "
                              f"({dtype} with {ch} channel(s))")
    a = np.ascontiguousarray(a, dtype=dtype.newbyteorder("<"))
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * ch * dtype.itemsize)
    msg.data = a.tobytes()
    return msg
