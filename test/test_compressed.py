"""CompressedImage decoding (compressed / compressedDepth png + rvl) against messages built byte for
byte the way ros-perception/image_transport_plugins builds them.

References (read, not copied): compressed_depth_image_transport ROS 2 src/codec.cpp @866a9d0
(encodeCompressedDepthImage / decodeCompressedDepthImage), src/rvl_codec.cpp @3132f44
(RvlCodec::CompressRVL / DecompressRVL), compression_common.hpp @33a7dc9 (ConfigHeader);
compressed_image_transport src/compressed_publisher.cpp (ROS 2, format strings) and
src/compressed_subscriber.cpp @f0d9ffb:66-118 (decode rules).
"""
from __future__ import annotations

import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from rmmss_ros.conversions import ConversionError, depth_codes, to_depth_m, to_rgb8
from rmmss_ros.conversions.compressed import (
    decode_compressed,
    encode_compressed,
    encode_compressed_depth,
    quantize_inverse_depth,
)
from rmmss_ros.conversions.image import image_to_numpy
from rmmss_ros.conversions.rvl import decode_rvl, encode_rvl

HEADER = SimpleNamespace(stamp=SimpleNamespace(sec=5, nanosec=7), frame_id="cam")


def msg(fmt: str, data: bytes) -> SimpleNamespace:
    return SimpleNamespace(header=HEADER, format=fmt, data=data)


# ------------------------------------------------------------------ reference RVL (literal port)
def ref_compress_rvl(pixels: np.ndarray) -> bytes:
    """A line-by-line port of RvlCodec::CompressRVL (int32 words, nibbles most significant first)."""
    out: list[int] = []
    state = {"word": 0, "n": 0}

    def vle(value: int) -> None:
        while True:
            nibble = value & 7
            value >>= 3
            if value:
                nibble |= 8
            state["word"] = ((state["word"] << 4) | nibble) & 0xFFFFFFFF
            state["n"] += 1
            if state["n"] == 8:
                out.append(state["word"])
                state["word"] = state["n"] = 0
            if not value:
                break

    px = [int(v) for v in pixels.reshape(-1)]
    i, prev = 0, 0
    while i != len(px):
        zeros = 0
        while i != len(px) and px[i] == 0:
            i += 1
            zeros += 1
        vle(zeros)
        nonzeros = 0
        j = i
        while j != len(px) and px[j] != 0:
            j += 1
            nonzeros += 1
        vle(nonzeros)
        for _ in range(nonzeros):
            cur = px[i]
            i += 1
            delta = cur - prev
            vle(((delta << 1) ^ (delta >> 31)) & 0xFFFFFFFF)
            prev = cur
    if state["n"]:
        out.append((state["word"] << (4 * (8 - state["n"]))) & 0xFFFFFFFF)
    rows, cols = pixels.shape
    return struct.pack("<II", cols, rows) + struct.pack(f"<{len(out)}I", *out)


def depth_scene(h=48, w=64, seed=0) -> np.ndarray:
    """A 16UC1 millimetre image with holes (0), edges and a far background."""
    rng = np.random.default_rng(seed)
    d = np.full((h, w), 4000, np.uint16)
    d[h // 4: 3 * h // 4, w // 4: w // 2] = 800
    d += rng.integers(0, 30, size=(h, w)).astype(np.uint16)
    d[rng.random((h, w)) < 0.1] = 0
    d[:, -3:] = 0
    d[0, 0] = 65535
    return d


@pytest.mark.parametrize("seed", [0, 1])
def test_rvl_bytes_match_the_plugin_and_round_trip(seed):
    d = depth_scene(seed=seed)
    ref = ref_compress_rvl(d)
    assert encode_rvl(d) == ref
    back = decode_rvl(np.frombuffer(ref, np.uint8))
    np.testing.assert_array_equal(back, d)


def test_rvl_edge_images():
    for img in (np.zeros((3, 5), np.uint16), np.full((2, 4), 7, np.uint16),
                np.array([[0, 1, 0, 65535, 65535, 0]], np.uint16)):
        ref = ref_compress_rvl(img)
        assert encode_rvl(img) == ref
        np.testing.assert_array_equal(decode_rvl(np.frombuffer(ref, np.uint8)), img)


def test_compressed_depth_16uc1_png_exactly_as_published():
    d = depth_scene()
    # built as encodeCompressedDepthImage does: header {INV_DEPTH, depthParam uninitialised on ROS 2}
    garbage = struct.pack("<i", 0) + bytes([0x13, 0x37, 0xAB, 0xCD, 0xEF, 0x01, 0x02, 0x7F])
    filtered = d.copy()
    filtered[filtered > 10000] = 0  # depth_max 10 m filter
    ok, png = cv2.imencode(".png", filtered, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    m = msg("16UC1; compressedDepth png", garbage + png.tobytes())
    out = decode_compressed(m, "depth")
    assert out.encoding == "16UC1" and (out.height, out.width) == d.shape
    np.testing.assert_array_equal(image_to_numpy(out), filtered)
    # our encoder writes the same payload
    fmt, data = encode_compressed_depth(d, "16UC1")
    assert fmt == "16UC1; compressedDepth png" and data[12:] == png.tobytes()
    # the metric depth of the decoded image is the raw image's
    raw = SimpleNamespace(height=d.shape[0], width=d.shape[1], encoding="16UC1", is_bigendian=0,
                          step=d.shape[1] * 2, data=filtered.tobytes())
    np.testing.assert_array_equal(to_depth_m(out), to_depth_m(raw))


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth", "16UC1"])
def test_older_publishers_formats_are_png(fmt):
    d = depth_scene()
    d[0, 0] = 9000  # within depth_max: the publisher keeps it
    _, data = encode_compressed_depth(d, "16UC1")
    out = decode_compressed(msg(fmt, data), "depth", transport="compressedDepth")
    np.testing.assert_array_equal(image_to_numpy(out), d)
    if fmt == "16UC1":  # no ';': recognised by the PNG after the 12-byte header
        np.testing.assert_array_equal(image_to_numpy(decode_compressed(msg(fmt, data), "depth")), d)


def test_compressed_depth_16uc1_rvl():
    d = depth_scene(seed=3)
    d[0, 0] = 9000  # within depth_max: the publisher keeps it
    data = struct.pack("<iff", 0, 0.0, 0.0) + ref_compress_rvl(d)
    out = decode_compressed(msg("16UC1; compressedDepth rvl", data), "depth")
    np.testing.assert_array_equal(image_to_numpy(out), d)
    assert encode_compressed_depth(d, "16UC1", codec="rvl")[1] == data


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_compressed_depth_32fc1_quantisation_bound(codec):
    rng = np.random.default_rng(4)
    d = rng.uniform(0.2, 9.99, size=(40, 50)).astype(np.float32)
    d[0, :5] = np.nan
    d[1, :5] = 12.0  # beyond depth_max -> invalid
    # the plugin's arithmetic, written out: A, B in float32; q = (uint16)(A / d + B)
    z0, dmax = np.float32(100.0), np.float32(10.0)
    A = z0 * (z0 + np.float32(1.0))
    B = np.float32(1.0) - A / dmax
    valid = d < dmax
    q = np.zeros(d.shape, np.uint16)
    q[valid] = np.trunc(A / d[valid] + B).astype(np.uint16)
    q_ours, qa, qb = quantize_inverse_depth(d)
    np.testing.assert_array_equal(q_ours, q)
    assert (qa, qb) == (float(A), float(B))
    header = struct.pack("<i", 0) + struct.pack("<ff", A, B)
    payload = cv2.imencode(".png", q, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes() if codec == "png" \
        else ref_compress_rvl(q)
    data = header + payload
    assert encode_compressed_depth(d, "32FC1", codec=codec)[1] == data
    out = decode_compressed(msg(f"32FC1; compressedDepth {codec}", data), "depth")
    assert out.encoding == "32FC1"
    dd = image_to_numpy(out)
    assert np.all(np.isnan(dd[~valid]))
    err = dd[valid] - d[valid]
    # truncation: the decoded depth is the far end of its bin, d <= d' < d / (1 - d / A)
    bound = d[valid] ** 2 / (A - d[valid])
    assert np.all(err >= -1e-6 * d[valid]) and np.all(err <= bound * (1 + 1e-5))
    assert float(np.max(err)) < 0.0099  # about 1 cm at 10 m with the defaults
    # decoded exactly as the plugin's float32 expression A / (q - B)
    np.testing.assert_array_equal(dd[valid], (A / (q[valid].astype(np.float32) - B)).astype(np.float32))
    # and usable as depth by the node's conversions
    assert np.isnan(to_depth_m(out)[0, 0])


@pytest.mark.parametrize("encoding,fmt", [("bgr8", "jpeg"), ("rgb8", "jpeg"), ("rgb8", "png"), ("bgr8", "png"),
                                          ("mono8", "jpeg"), ("mono8", "png")])
def test_compressed_camera_formats_decode_to_the_same_rgb(encoding, fmt):
    yy, xx = np.mgrid[0:48, 0:64]
    # smooth gradients, red high and blue low: a swapped channel order is far off
    rgb = np.stack([150 + xx, 2 * yy + xx, 60 - yy], axis=2).astype(np.uint8)
    if encoding == "mono8":
        arr = rgb[:, :, 0].copy()
        want = np.repeat(arr[:, :, None], 3, axis=2)
    else:
        arr = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[:, :, ::-1])
        want = rgb
    f, data = encode_compressed(arr, encoding, fmt, jpeg_quality=95)
    target = "bgr8" if encoding != "mono8" else ("mono8" if fmt == "jpeg" else "")
    assert f == f"{encoding}; {fmt} compressed {target}"
    out = decode_compressed(msg(f, data), "camera")
    assert out.encoding == encoding  # the original encoding honoured
    got = to_rgb8(out)
    if fmt == "png":
        np.testing.assert_array_equal(got, want)
    else:  # what imdecode gives, in RGB order; near the source (a swapped order would be far off)
        ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        ref = np.repeat(ref[:, :, None], 3, axis=2) if ref.ndim == 2 else ref[:, :, ::-1]
        np.testing.assert_array_equal(got, ref)
        assert np.abs(got.astype(int) - want).mean() < 4.0


def test_bare_jpeg_and_png_formats():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (255, 0, 0)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    out = decode_compressed(msg("png", cv2.imencode(".png", bgr)[1].tobytes()), "camera")
    assert out.encoding == "bgr8"
    np.testing.assert_array_equal(to_rgb8(out), rgb)
    grey = decode_compressed(msg("jpeg", cv2.imencode(".jpg", rgb[:, :, 0])[1].tobytes()), "camera")
    assert grey.encoding == "mono8"


def test_16bit_png_keeps_16_bits():
    a = (np.arange(32 * 16, dtype=np.uint32).reshape(16, 32) * 97 % 65536).astype(np.uint16)
    f, data = encode_compressed(a, "mono16", "png")
    out = decode_compressed(msg(f, data), "camera")
    assert out.encoding == "mono16"
    np.testing.assert_array_equal(image_to_numpy(out), a)
    # a 16UC1 depth sent through the plain compressed transport (png) stays millimetres
    f2, data2 = encode_compressed(a, "16UC1", "png")
    out2 = decode_compressed(msg(f2, data2), "depth")
    assert out2.encoding == "16UC1"
    np.testing.assert_array_equal(image_to_numpy(out2), a)
    rgb16 = np.stack([a, a // 2, a // 3], axis=2)
    f3, data3 = encode_compressed(rgb16, "rgb16", "png")
    assert f3 == "rgb16; png compressed bgr16"
    out3 = decode_compressed(msg(f3, data3), "camera")
    assert out3.encoding == "rgb16"
    np.testing.assert_array_equal(image_to_numpy(out3), rgb16)


@pytest.mark.parametrize("encoding,fmt", [("bayer_rggb8", "png"), ("bayer_gbrg16", "png"), ("bayer_bggr8", "jpeg")])
def test_bayer_mosaic_keeps_its_pattern(encoding, fmt):
    """compressed_publisher converts only colour encodings: png (and ROS 1 jpeg) store a Bayer
    mosaic as it is, under "bayer_rggb8; png compressed ": it must be demosaiced, not read as grey.
    ROS 2's jpeg sends grey (target mono8, "...; jpeg compressed mono8"): that stays grey."""
    bits = 16 if encoding.endswith("16") else 8
    rng = np.random.default_rng(3)
    mosaic = rng.integers(0, 2**bits, (24, 32)).astype(np.uint16 if bits == 16 else np.uint8)
    raw = SimpleNamespace(header=HEADER, height=24, width=32, encoding=encoding, is_bigendian=0,
                          step=32 * mosaic.itemsize, data=mosaic.tobytes())
    ext = ".png" if fmt == "png" else ".jpg"
    data = cv2.imencode(ext, mosaic)[1].tobytes()
    out = decode_compressed(msg(f"{encoding}; {fmt} compressed ", data), "camera")
    assert out.encoding == encoding
    if fmt == "png":
        np.testing.assert_array_equal(to_rgb8(out), to_rgb8(raw))
    grey = decode_compressed(msg(f"{encoding}; jpeg compressed mono8",
                                 cv2.imencode(".jpg", to_rgb8(raw)[:, :, 1])[1].tobytes()), "camera")
    assert grey.encoding == "mono8"


def test_depth_as_8bit_jpeg_is_refused():
    a = np.full((8, 8), 100, np.uint8)
    data = cv2.imencode(".jpg", a)[1].tobytes()
    with pytest.raises(ConversionError, match="depth values are lost"):
        decode_compressed(msg("16UC1; jpeg compressed mono8", data), "depth")


@pytest.mark.parametrize("fmt,data,match", [
    ("rgb8; jpeg compressed bgr8", b"\xff\xd8\xff\xe0garbage", "could not be decoded"),
    ("rgb8; jpeg compressed bgr8", b"", "no data"),
    ("16UC1; compressedDepth png", b"\x00" * 12, "no more than"),
    ("16UC1; compressedDepth png", b"\x00" * 12 + b"\x89PNG\r\n\x1a\nbroken", "could not be decoded"),
    ("16UC1; compressedDepth zstd", b"\x00" * 40, "unsupported compressedDepth format"),
    ("16UC1; compressedDepth rvl", b"\x00" * 12 + struct.pack("<II", 0, 5) + b"\x00" * 8, "contains zero"),
    ("16UC1; compressedDepth rvl", b"\x00" * 12 + struct.pack("<II", 4000, 4000) + b"\x00" * 8, "reports"),
    ("bgr8; compressedDepth png", b"\x00" * 40, "single-channel"),
])
def test_undecodable_packets_are_errors_never_blank_images(fmt, data, match):
    with pytest.raises(ConversionError, match=match):
        decode_compressed(msg(fmt, data), "depth")


def test_truncated_rvl_stream_is_an_error():
    d = depth_scene()
    data = struct.pack("<iff", 0, 0.0, 0.0) + ref_compress_rvl(d)
    with pytest.raises(ConversionError, match="truncated|corrupt"):
        decode_compressed(msg("16UC1; compressedDepth rvl", data[: len(data) // 2]), "depth")


def test_depth_codes_of_a_decoded_compressed_depth_equal_the_raw_path():
    from rmmss_core.spec import DepthEncoding
    enc = DepthEncoding(kind="metric")
    d = depth_scene()
    d[0, 0] = 9000  # within depth_max: the publisher keeps it
    _, data = encode_compressed_depth(d, "16UC1")
    out = decode_compressed(msg("16UC1; compressedDepth png", data), "depth")
    raw = SimpleNamespace(height=d.shape[0], width=d.shape[1], encoding="16UC1", is_bigendian=0,
                          step=d.shape[1] * 2, data=d.tobytes())
    np.testing.assert_array_equal(depth_codes(out, enc), depth_codes(raw, enc))


@pytest.mark.parametrize("invalid", [0.7, 0.99, 1.0])
def test_rvl_of_sparse_depth_decodes(invalid):
    """The plugin's own encoder writes more than 5 pixels per byte when most pixels are invalid (sky
    beyond range outdoors): such frames were refused as malformed ('more than the codec's best ratio
    allows'), a healthy depth camera reported broken. They decode, with both decoders."""
    from rmmss_core import kernels
    yy, xx = np.mgrid[0:120, 0:160]
    d = (2000 + xx + yy).astype(np.uint16)
    d[: int(round(120 * invalid))] = 0
    payload = np.frombuffer(ref_compress_rvl(d), np.uint8)
    assert d.size > payload.size * 5
    np.testing.assert_array_equal(decode_rvl(payload), d)
    with kernels.disabled():
        np.testing.assert_array_equal(decode_rvl(payload), d)
    out = decode_compressed(msg("16UC1; compressedDepth rvl", struct.pack("<iff", 0, 0.0, 0.0) + payload.tobytes()), "depth")
    np.testing.assert_array_equal(image_to_numpy(out), d)


def test_rvl_compiled_and_numpy_decoders_agree():
    from rmmss_core import kernels
    rng = np.random.default_rng(9)
    d = (rng.integers(0, 3000, (60, 80)) * (rng.random((60, 80)) > 0.2)).astype(np.uint16)
    payload = np.frombuffer(ref_compress_rvl(d), np.uint8)
    fast = decode_rvl(payload)
    with kernels.disabled():
        slow = decode_rvl(payload)
    np.testing.assert_array_equal(fast, d)
    np.testing.assert_array_equal(slow, d)
    for cut in (len(payload) // 2, len(payload) - 8):
        for ctx in (kernels.disabled(), _null()):
            with ctx, pytest.raises(ConversionError, match="truncated|corrupt"):
                decode_rvl(payload[:cut])


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
