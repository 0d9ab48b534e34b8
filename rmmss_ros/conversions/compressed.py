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
  bgr`` and RGB otherwise, reordered to the original encoding.
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
  (about d^2 / A: 1 cm at 10 m with the defaults). RVL (``src/rvl_codec.cpp`` @3132f44): uint32
  cols, rows, then int32 words of 4-bit nibbles, most significant first; each value in 3-bit
  groups, low first, bit 3 = more; the stream is runs of (zeros, nonzeros, zig-zag deltas of
  the nonzero values from the previous nonzero). Images that report more pixels than 5 x the
  payload bytes (or a zero size) are refused, as the plugin does.

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
            enc = orig if orig in ("16UC1", "mono16") else "mono16"
        elif bits == 8:
            if orig in ("16UC1", "32FC1"):
                raise ConversionError(f"{what}: {_describe(msg, data)} carries {orig} depth as 8-bit data: the "
                                      "depth values are lost; publish it with the compressedDepth transport")
            enc = orig if orig == "8UC1" else "mono8"
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


# ------------------------------------------------------------------------------ RVL
def _nibbles(words: np.ndarray) -> np.ndarray:
    """int32 words -> their 4-bit nibbles, most significant first."""
    w = words.astype(np.uint32)
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    return ((w[:, None] >> shifts) & np.uint32(0xF)).astype(np.int64).reshape(-1)


def decode_rvl(payload: np.ndarray, what: str = "depth") -> np.ndarray:
    """RVL payload (uint32 cols, rows, then the words) -> ``rows x cols`` uint16. Raises
    ConversionError for a zero or implausible size and for a truncated or inconsistent stream."""
    if payload.size < 8:
        raise ConversionError(f"{what}: RVL payload has {payload.size} bytes, less than its 8-byte size")
    cols, rows = (int(v) for v in np.frombuffer(bytes(payload[:8]), dtype="<u4"))
    n = rows * cols
    if rows == 0 or cols == 0:
        raise ConversionError(f"{what}: malformed RVL image: size {cols} x {rows} contains zero")
    if n > 2**31 - 1 or n > payload.size * 5:
        raise ConversionError(f"{what}: malformed RVL image: it reports {cols} x {rows} pixels from "
                              f"{payload.size} bytes (more than the codec's best ratio allows)")
    body = payload[8:]
    body = body[: body.size - body.size % 4]
    from rmmss_core import kernels
    if kernels.enabled():  # the compiled sequential decoder (numba); the numpy one below is its reference
        out = np.empty(n, np.uint16)
        status = _rvl_kernel()(np.frombuffer(body.tobytes(), dtype="<u4").astype(np.int64), n, out)
        if status == -1:
            raise ConversionError(f"{what}: RVL stream ends before {n} pixels (truncated data) or has a value "
                                  "longer than 33 bits (corrupt data)")
        if status == -2:
            raise ConversionError(f"{what}: RVL stream runs past {n} pixels or its data (corrupt data)")
        return out.reshape(rows, cols)
    return _decode_rvl_numpy(body, n, rows, cols, what)


_RVL_KERNEL: Any = None


def _rvl_kernel() -> Any:
    """RvlCodec::DecompressRVL as a numba kernel (compiled on first use, cached on disk): returns 0,
    -1 (stream ends early / over-long value) or -2 (runs past the image)."""
    global _RVL_KERNEL
    if _RVL_KERNEL is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def vle(words, st):  # st: (next word, nibbles left, current word)
            value, shift = 0, 0
            while True:
                if st[1] == 0:
                    if st[0] >= words.size:
                        return -1
                    st[2] = words[st[0]]
                    st[0] += 1
                    st[1] = 8
                nib = (st[2] >> 28) & 0xF
                st[2] = (st[2] << 4) & 0xFFFFFFFF
                st[1] -= 1
                value |= (nib & 7) << shift
                shift += 3
                if (nib & 8) == 0:
                    return value
                if shift > 33:
                    return -1

        @numba.njit(cache=True, nogil=True)
        def decode(words, n, out):
            st = np.zeros(3, np.int64)
            done, prev = 0, 0
            while done < n:
                z = vle(words, st)
                if z < 0:
                    return -1
                if done + z > n:
                    return -2
                out[done:done + z] = 0
                done += z
                nz = vle(words, st)
                if nz < 0:
                    return -1
                if done + nz > n:
                    return -2
                for _ in range(nz):
                    p = vle(words, st)
                    if p < 0:
                        return -1
                    prev = (prev + ((p >> 1) ^ -(p & 1))) & 0xFFFF
                    out[done] = prev
                    done += 1
            return 0

        _RVL_KERNEL = decode
    return _RVL_KERNEL


def _decode_rvl_numpy(body: np.ndarray, n: int, rows: int, cols: int, what: str) -> np.ndarray:
    """The numpy reference of the RVL decoder (vectorised value split, a loop over the runs)."""
    nib = _nibbles(np.frombuffer(body.tobytes(), dtype="<i4"))
    # values: groups of nibbles ending at one without the continuation bit; 3 bits each, low first
    ends = np.flatnonzero((nib & 8) == 0)
    if ends.size == 0:
        raise ConversionError(f"{what}: RVL stream holds no value")
    starts = np.concatenate([[0], ends[:-1] + 1])
    nvals = ends.size
    vid = np.repeat(np.arange(nvals), ends - starts + 1)
    pos = np.arange(vid.size) - starts[vid]
    if pos.max(initial=0) > 11:
        raise ConversionError(f"{what}: RVL stream has a value longer than 33 bits (corrupt data)")
    groups = ((nib[: vid.size] & 7) << (3 * pos)).astype(np.float64)  # < 2**33: exact in float64
    vals = np.rint(np.bincount(vid, weights=groups, minlength=nvals)).astype(np.int64)
    # structure: (zeros, nonzeros, nonzeros x delta) until every pixel is decoded
    is_delta = np.zeros(nvals, bool)
    zero_starts: list[int] = []
    zero_lens: list[int] = []
    i = done = 0
    vl = vals.tolist()
    while done < n:
        if i + 1 >= nvals:
            raise ConversionError(f"{what}: RVL stream ends after {done} of {n} pixels (truncated data)")
        z, nz = vl[i], vl[i + 1]
        if done + z + nz > n or i + 2 + nz > nvals:
            raise ConversionError(f"{what}: RVL stream runs past {n} pixels or its data (corrupt data)")
        zero_starts.append(done)
        zero_lens.append(z)
        is_delta[i + 2: i + 2 + nz] = True
        done += z + nz
        i += 2 + nz
    edges = np.zeros(n + 1, np.int64)  # +1 at each zero run's start, -1 after its end
    zs, zl = np.asarray(zero_starts, np.int64), np.asarray(zero_lens, np.int64)
    np.add.at(edges, zs, 1)
    np.add.at(edges, zs + zl, -1)
    pos_mask = np.cumsum(edges[:n]) == 0
    zz = vals[is_delta]
    delta = (zz >> 1) ^ -(zz & 1)
    out = np.zeros(n, np.uint16)
    out[pos_mask] = (np.cumsum(delta) & 0xFFFF).astype(np.uint16)
    return out.reshape(rows, cols)


def encode_rvl(image: np.ndarray) -> bytes:
    """``rows x cols`` uint16 -> RVL payload (uint32 cols, rows, words) exactly as RvlCodec::CompressRVL
    writes it (for tests, bags and benchmarks)."""
    img = np.ascontiguousarray(image, dtype=np.uint16)
    rows, cols = img.shape
    px = img.reshape(-1).astype(np.int64)
    nz = px != 0
    # run boundaries: each run pair is (zeros, nonzeros); a pair starts at every zero run start
    # (or at a nonzero run that starts the image / follows the previous pair directly)
    change = np.flatnonzero(np.diff(nz.astype(np.int8)) != 0) + 1
    bounds = np.concatenate([[0], change, [px.size]])
    runs = [(bool(nz[s]), int(e - s)) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    values: list[np.ndarray] = []
    prev = 0
    k = 0
    while k < len(runs):
        zeros = 0
        if not runs[k][0]:
            zeros = runs[k][1]
            k += 1
        nonzeros, start = 0, 0
        if k < len(runs) and runs[k][0]:
            nonzeros = runs[k][1]
            start = int(bounds[k])
            k += 1
        values.append(np.array([zeros, nonzeros], np.int64))
        if nonzeros:
            cur = px[start:start + nonzeros]
            d = np.diff(np.concatenate([[prev], cur]))
            values.append((d << 1) ^ (d >> 63))  # zig-zag
            prev = int(cur[-1])
    v = np.concatenate(values) if values else np.zeros(0, np.int64)
    # VLE: 3-bit groups, low first, bit 3 set on all but the last
    lens = np.maximum(1, (np.floor(np.log2(np.maximum(v, 1))).astype(np.int64) // 3) + 1)
    lens[v == 0] = 1
    idx = np.repeat(np.arange(v.size), lens)
    pos = np.arange(idx.size) - np.repeat(np.cumsum(lens) - lens, lens)
    nib = (v[idx] >> (3 * pos)) & 7
    nib |= np.where(pos < lens[idx] - 1, 8, 0)
    pad = (-nib.size) % 8
    nib = np.concatenate([nib, np.zeros(pad, np.int64)]).reshape(-1, 8)
    words = np.zeros(nib.shape[0], np.uint64)
    for j in range(8):
        words = (words << np.uint64(4)) | nib[:, j].astype(np.uint64)
    body = words.astype(np.uint32).astype("<u4").tobytes()
    return np.array([cols, rows], "<u4").tobytes() + body


def as_image(msg: Any, what: str = "image", transport: str | None = None) -> Any:
    """``msg`` itself when it is an Image, else the decoded CompressedImage (:class:`DecodedImage`).
    Raises ConversionError for an undecodable packet."""
    return decode_compressed(msg, what, transport) if is_compressed_image(msg) else msg
