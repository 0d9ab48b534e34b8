"""``sensor_msgs/CompressedImage`` decoding without ROS, with OpenCV, the way image_transport's
``compressed`` and ``compressedDepth`` plugins decode it (Python nodes on Jazzy cannot load
image_transport: its Python binding exists on rolling only).

Sources (ros-perception/image_transport_plugins, read, not copied):

* ``compressed`` (compressed_image_transport): the publisher writes ``format`` =
  ``"<encoding>; jpeg compressed bgr8"`` for colour and ``"...; jpeg compressed mono8"`` for grey
  images (@4168104987 stored file, ROS 2 ``src/compressed_publisher.cpp``, JPEG case), ``"<encoding>;
  png compressed bgr8|bgra8|bgr16|bgra16"`` or ``"<encoding>; png compressed "`` (grey: the image
  unchanged, 16-bit kept) and ``"<encoding>; tiff compressed "`` (any depth, float too). The
  subscriber (@f0d9ffb:compressed_image_transport/src/compressed_subscriber.cpp:66-118)
  ``imdecode``s with ``IMREAD_UNCHANGED``; without ``;`` (old publishers, or a bare ``"jpeg"`` /
  ``"png"``) the encoding is mono8 / bgr8 by channel count; with it, the encoding is the text
  before ``;`` and, for a colour encoding, the channels are BGR when the rest says ``compressed
  bgr`` and RGB otherwise, reordered to the original encoding. Grey and Bayer encodings are not
  colour: png / tiff (and ROS 1's jpeg) store a Bayer mosaic unconverted, so a single-channel
  image under ``bayer_*`` keeps that encoding (and is demosaiced); ROS 2's jpeg converts it to
  grey first (``"...; jpeg compressed mono8"``), read as mono8.
* ``compressedDepth`` (compressed_depth_image_transport, ROS 2 ``src/codec.cpp`` @866a9d0,
  ``decodeCompressedDepthImage`` l. 50, ``encodeCompressedDepthImage``; ``ConfigHeader`` in
  ``include/compressed_depth_image_transport/compression_common.hpp`` @33a7dc9 l. 44-51):
  ``format`` = ``"<encoding>; compressedDepth png|rvl"`` (``"<encoding>; compressedDepth"`` and
  no ``;`` at all: png, older publishers). ``data`` = a 12-byte ``ConfigHeader`` (int32 format =
  0 ``INV_DEPTH``, float32 depthQuantA, float32 depthQuantB; native = little-endian) + payload.
  16UC1: the millimetres (values above ``depth_max`` x 1000 zeroed by the publisher) as a 16-bit
  PNG or RVL; the header's floats are not written for 16-bit images (uninitialised on ROS 2) and
  are ignored. 32FC1: inverse depth ``q = (uint16)(A / d + B)`` with ``A = z0 (z0 + 1)``,
  ``B = 1 - A / depth_max`` (z0 = ``depth_quantization``, default 100; depth_max default 10 m;
  ``d >= depth_max`` and NaN -> 0), decoded as ``d = A / (q - B)`` in float32, q = 0 -> NaN. The
  truncation makes the decoded depth the upper end of its bin: ``d <= d' < d / (1 - d / A)``
  (about d^2 / A: 1 cm at 10 m with the defaults). RVL: rmmss_ros.conversions.rvl.

What comes back is an :class:`DecodedImage`, an Image-shaped object (height, width, encoding,
step, is_bigendian, data = the decoded array) that the sensor_msgs/Image conversions
(``to_rgb8``, ``to_depth_m``, ``depth_codes``, ``event_image_codes``) accept unchanged. A packet
that cannot be decoded raises :class:`ConversionError` naming the input and what is wrong: it is
malformed, never a blank image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rmmss_ros.conversions.common import ConversionError, as_bytes_view
from rmmss_ros.conversions.rvl import decode_rvl, encode_rvl

COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CONFIG_HEADER_BYTES = 12  # compressionFormat (int32) + float depthParam[2]
INV_DEPTH = 0  # compressionFormat::INV_DEPTH
# compressed_depth_image_transport's publisher defaults (compressed_depth_publisher.cpp)
DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_QUANTIZATION = 100.0
DEFAULT_PNG_LEVEL = 9
TRANSPORTS = ("compressed", "compressedDepth")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_COLOR = {"rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"}  # enc::isColor


@dataclass
class DecodedImage:
    """A decoded CompressedImage in sensor_msgs/Image's shape: ``data`` is the ``H x W`` or
    ``H x W x C`` array itself (C-contiguous, native byte order), ``step`` its row size in bytes."""

    header: Any
    height: int
    width: int
    encoding: str
    step: int
    data: np.ndarray
    is_bigendian: int = 0
    source_format: str = ""

    @classmethod
    def of(cls, header: Any, array: np.ndarray, encoding: str, source_format: str) -> DecodedImage:
        a = np.ascontiguousarray(array)
        return cls(header, int(a.shape[0]), int(a.shape[1]), encoding, int(a.strides[0]), a, 0, source_format)


def is_compressed_image(msg: Any) -> bool:
    """True for a CompressedImage-like message (``format`` and ``data``, no ``encoding``)."""
    return hasattr(msg, "format") and hasattr(msg, "data") and not hasattr(msg, "encoding")


def is_compressed_depth_format(fmt: str) -> bool:
    """True when ``format`` names the compressedDepth transport."""
    return "compressedDepth" in fmt


def _describe(msg: Any, data: np.ndarray) -> str:
    return f"compressed image (format {str(msg.format)!r}, {data.size} bytes)"


def decode_compressed(msg: Any, what: str = "image", transport: str | None = None) -> DecodedImage:
    """CompressedImage -> :class:`DecodedImage`, by ``transport`` (``compressed`` /
    ``compressedDepth``) or, when None, by the format (``compressedDepth`` in it, or no ``;`` and
    a PNG after a 12-byte header: compressedDepth; else compressed). Raises ConversionError."""
    fmt = str(msg.format)
    data = as_bytes_view(msg.data, what)
    if data.size == 0:
        raise ConversionError(f"{what}: {_describe(msg, data)} has no data")
    if transport is None:
        depth = is_compressed_depth_format(fmt) or (
            ";" not in fmt and data.size > CONFIG_HEADER_BYTES + 8
            and bytes(data[:8]) != _PNG_MAGIC and bytes(data[12:20]) == _PNG_MAGIC)
        transport = "compressedDepth" if depth else "compressed"
    if transport == "compressedDepth":
        return decode_compressed_depth(msg, what)
    if transport != "compressed":
        raise ConversionError(f"{what}: unknown image transport {transport!r}; expected one of {list(TRANSPORTS)}")
    return _decode_image(msg, fmt, data, what)


# ------------------------------------------------------------------------------ compressed
def _is_bayer(encoding: str, bits: int) -> bool:
    """True for ``bayer_<pattern><bits>`` (sensor_msgs/image_encodings' names)."""
    return encoding.startswith("bayer_") and encoding[6:10] in ("rggb", "bggr", "gbrg", "grbg") \
        and encoding[10:] == str(bits)


def _decode_image(msg: Any, fmt: str, data: np.ndarray, what: str) -> DecodedImage:
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(f"{what}: {_describe(msg, data)} could not be decoded by OpenCV "
                              "(corrupt or truncated data, or not JPEG / PNG / TIFF)")
    ch = 1 if img.ndim == 2 else img.shape[2]
    if ch == 1 and img.ndim == 3:
        img = img[:, :, 0]
    bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(img.dtype)
    if ";" not in fmt:  # old publishers / bare "jpeg" or "png": mono8 or bgr8 by channels
        if ch == 1 and img.dtype == np.float32:
            return DecodedImage.of(msg.header, img, "32FC1", fmt)
        if bits is None or ch == 2:
            raise ConversionError(f"{what}: {_describe(msg, data)} decodes to {ch} channel(s) of {img.dtype}, "
                                  "which no image encoding names")
        enc = {1: "mono", 3: "bgr", 4: "bgra"}[ch] + str(bits)
        return DecodedImage.of(msg.header, img, enc, fmt)
    orig, rest = fmt.split(";", 1)
    orig = orig.strip()
    if ch == 1:
        if img.dtype == np.float32:
            enc = "32FC1"
        elif bits == 16:
            enc = orig if orig in ("16UC1", "mono16") or _is_bayer(orig, 16) else "mono16"
        elif bits == 8:
            if orig in ("16UC1", "32FC1"):
                raise ConversionError(f"{what}: {_describe(msg, data)} carries {orig} depth as 8-bit data: the "
                                      "depth values are lost; publish it with the compressedDepth transport")
            # a Bayer mosaic stored as it is (png / tiff: the publisher converts nothing that is
            # not colour) keeps its pattern, so that it is demosaiced; jpeg's "mono8" is grey already
            enc = orig if orig == "8UC1" or (_is_bayer(orig, 8) and "compressed mono" not in rest) else "mono8"
        else:
            raise ConversionError(f"{what}: {_describe(msg, data)} decodes to 1 channel of {img.dtype}")
        return DecodedImage.of(msg.header, img, enc, fmt)
    if bits is None or ch not in (3, 4):
        raise ConversionError(f"{what}: {_describe(msg, data)} decodes to {ch} channel(s) of {img.dtype}")
    stored_bgr = "compressed bgr" in rest  # what the plugin tests; else the channels are RGB
    if orig in _COLOR:
        want_rgb = orig.startswith("rgb")
        want_alpha = "a" in orig[3:4]
    else:  # e.g. bayer / yuv422 sent as "...; jpeg compressed bgr8": the stored channel order
        want_rgb, want_alpha = not stored_bgr, ch == 4
    if ch == 3 and want_alpha:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)  # OpenCV's alpha is opaque: the plugin's cvtColor
    elif ch == 4 and not want_alpha:
        img = img[:, :, :3]
    if stored_bgr == want_rgb:  # reorder the colour channels (alpha stays last)
        img = img[:, :, [2, 1, 0, 3][:img.shape[2]]]
    enc = ("rgb" if want_rgb else "bgr") + ("a" if want_alpha else "") + str(bits)
    return DecodedImage.of(msg.header, img, enc, fmt)


def encode_compressed(array: np.ndarray, encoding: str, fmt: str = "jpeg", jpeg_quality: int = 95,
                      png_level: int = 1) -> tuple[str, bytes]:
    """An image as compressed_image_transport's publisher sends it -> (``format``, ``data``).

    ``array`` in ``encoding``'s channel order (rgb8, bgr8, mono8, rgba8, mono16, rgb16...). JPEG:
    colour -> bgr8, grey -> mono8 (16-bit scaled to 8 bits: / 257, rounded), quality
    ``jpeg_quality``; PNG: colour -> bgr(a)8/16, grey unchanged. For tests, bags and benchmarks."""
    a = np.asarray(array)
    color = encoding in _COLOR
    bits = 16 if a.dtype == np.uint16 else 8
    if fmt == "jpeg":
        if color:
            bgr = a[:, :, 2::-1] if encoding.startswith("rgb") else a[:, :, :3]
            target = "bgr8"
        else:
            bgr, target = a, "mono8"
        if bgr.dtype == np.uint16:
            bgr = (bgr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        out_fmt = f"{encoding}; jpeg compressed {target}"
    elif fmt == "png":
        if color:
            alpha = "a" in encoding[3:4]
            order = [2, 1, 0, 3] if encoding.startswith("rgb") else [0, 1, 2, 3]
            bgr = a[:, :, order[:a.shape[2]]]
            target = "bgr" + ("a" if alpha else "") + str(bits)
        else:
            bgr, target = a, ""
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
        out_fmt = f"{encoding}; png compressed {target}"
    else:
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {a.dtype} {a.shape} image as {fmt}")
    return out_fmt, buf.tobytes()


# ------------------------------------------------------------------------------ compressedDepth
def _depth_format(fmt: str, what: str) -> tuple[str, str]:
    """``format`` -> (image encoding, codec ``png`` | ``rvl``) as decodeCompressedDepthImage reads it."""
    if ";" not in fmt:
        return fmt.strip(), "png"
    enc, rest = fmt.split(";", 1)
    if "compressedDepth png" in rest:
        return enc.strip(), "png"
    if "compressedDepth rvl" in rest:
        return enc.strip(), "rvl"
    if "compressedDepth" in rest and "compressedDepth " not in rest:
        return enc.strip(), "png"
    raise ConversionError(f"{what}: unsupported compressedDepth format {fmt!r} (expected "
                          "'<encoding>; compressedDepth png' or '... rvl')")


def decode_compressed_depth(msg: Any, what: str = "depth") -> DecodedImage:
    """compressedDepth CompressedImage -> :class:`DecodedImage` (16UC1 millimetres or 32FC1 metres,
    NaN invalid). Raises ConversionError for unsupported formats and undecodable data."""
    fmt = str(msg.format)
    data = as_bytes_view(msg.data, what)
    enc, codec = _depth_format(fmt, what)
    if enc not in ("16UC1", "mono16", "32FC1"):
        raise ConversionError(f"{what}: compressedDepth carries single-channel 16-bit or 32FC1 depth, "
                              f"format {fmt!r} names {enc!r}")
    if data.size <= CONFIG_HEADER_BYTES:
        raise ConversionError(f"{what}: compressedDepth (format {fmt!r}) has {data.size} bytes, no more than "
                              f"its {CONFIG_HEADER_BYTES}-byte ConfigHeader")
    payload = data[CONFIG_HEADER_BYTES:]
    if codec == "png":
        q = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
        if q is None or q.size == 0:
            raise ConversionError(f"{what}: compressedDepth PNG (format {fmt!r}, {payload.size} bytes after the "
                                  "header) could not be decoded (corrupt or truncated data)")
        if q.dtype != np.uint16 or q.ndim != 2:
            raise ConversionError(f"{what}: compressedDepth PNG decodes to {q.dtype} {q.shape}, expected a "
                                  "single-channel 16-bit image")
    else:
        q = decode_rvl(payload, what)
    if enc == "32FC1":
        a, b = np.frombuffer(bytes(data[4:CONFIG_HEADER_BYTES]), dtype="<f4")
        if not (np.isfinite(a) and np.isfinite(b)) or a == 0:
            raise ConversionError(f"{what}: compressedDepth 32FC1 header has unusable quantisation "
                                  f"parameters depthQuantA = {a}, depthQuantB = {b}")
        with np.errstate(divide="ignore"):
            d = a / (q.astype(np.float32) - b)
        d[q == 0] = np.nan
        return DecodedImage.of(msg.header, d.astype(np.float32, copy=False), "32FC1", fmt)
    return DecodedImage.of(msg.header, q, enc, fmt)


def quantize_inverse_depth(depth_m: np.ndarray, depth_max: float = DEFAULT_DEPTH_MAX,
                           depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION) -> tuple[np.ndarray, float, float]:
    """32FC1 metres -> (uint16 inverse depth, depthQuantA, depthQuantB) as encodeCompressedDepthImage
    computes them in float32 (float -> uint16 as x86-64 builds convert: truncation, wrapping beyond
    16 bits for depths closer than about A / 65536 m)."""
    z0, dmax = np.float32(depth_quantization), np.float32(depth_max)
    a = np.float32(z0 * (z0 + np.float32(1.0)))
    b = np.float32(np.float32(1.0) - a / dmax)
    d = np.asarray(depth_m, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = a / d + b
        keep = d < dmax  # False for NaN, as the plugin's test
        iv = np.where(keep & np.isfinite(v), v, 0).astype(np.float64)
    q = (np.trunc(iv).astype(np.int64) & 0xFFFF).astype(np.uint16)
    return q, float(a), float(b)


def encode_compressed_depth(array: np.ndarray, encoding: str, codec: str = "png",
                            depth_max: float = DEFAULT_DEPTH_MAX,
                            depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION,
                            png_level: int = DEFAULT_PNG_LEVEL) -> tuple[str, bytes]:
    """Depth as compressed_depth_image_transport's publisher sends it -> (``format``, ``data``):
    the ConfigHeader (format INV_DEPTH; the 32FC1 quantisation floats, zeros for 16-bit) then the
    PNG (``IMWRITE_PNG_COMPRESSION`` = ``png_level``) or RVL payload. For tests, bags, benchmarks."""
    a = np.asarray(array)
    quant = (0.0, 0.0)
    if encoding == "32FC1":
        img, qa, qb = quantize_inverse_depth(a, depth_max, depth_quantization)
        quant = (qa, qb)
    elif encoding in ("16UC1", "mono16"):
        img = np.array(a, dtype=np.uint16, copy=True)
        img[img > np.uint16(int(np.float32(depth_max) * np.float32(1000.0)))] = 0  # the max-depth filter
    else:
        raise ValueError(f"compressedDepth needs 16UC1 or 32FC1 depth, got {encoding!r}")
    if codec == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
        if not ok:
            raise ValueError("OpenCV could not encode the depth PNG")
        payload = buf.tobytes()
    elif codec == "rvl":
        payload = encode_rvl(img)
    else:
        raise ValueError(f"compressedDepth codec must be png or rvl, got {codec!r}")
    header = np.array([INV_DEPTH], "<i4").tobytes() + np.array(quant, "<f4").tobytes()
    return f"{encoding}; compressedDepth {codec}", header + payload


def as_image(msg: Any, what: str = "image", transport: str | None = None) -> Any:
    """``msg`` itself when it is an Image, else the decoded CompressedImage (:class:`DecodedImage`).
    Raises ConversionError for an undecodable packet."""
    return decode_compressed(msg, what, transport) if is_compressed_image(msg) else msg
