"""RVL, the lossless depth codec of compressed_depth_image_transport's ``compressedDepth rvl``
(ros-perception/image_transport_plugins@3132f44:compressed_depth_image_transport/src/rvl_codec.cpp,
read, not copied): uint32 cols, rows, then int32 words of 4-bit nibbles, most significant first;
each value in 3-bit groups, low first, bit 3 = more; the stream is runs of (zeros, nonzeros,
zig-zag deltas of the nonzero values from the previous nonzero). A zero size is refused, as the
plugin does. The plugin also refuses images that report more than 5 pixels per payload byte
(@3132f44 codec.cpp, "the best compression ratio is 4x"), but its own encoder exceeds that on sparse
depth (zero runs cost a few nibbles: 70% invalid pixels, e.g. sky beyond range, gives 6.6 pixels
per byte, an all-invalid frame thousands), so valid frames of a healthy camera were malformed; the
same check's author later raised it to 50 (ctu-vras/ros-utils@ae7486b:image_transport_codecs/src/
codecs/compressed_depth_codec.cpp, decodeRVL), still short of an all-invalid frame. Here the size
is capped at :data:`MAX_PIXELS` (beyond any depth camera) against corrupt headers, and a stream
that does not hold the pixels it reports is refused as truncated or corrupt while decoding.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rmmss_ros.conversions.common import ConversionError

MAX_PIXELS = 1 << 23  # 8.4 MP: a 3840 x 2160 depth image fits; a corrupt header allocates no more


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
    if n > MAX_PIXELS:
        raise ConversionError(f"{what}: malformed RVL image: it reports {cols} x {rows} pixels from "
                              f"{payload.size} bytes (more than {MAX_PIXELS} pixels: a corrupt header)")
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


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the RVL kernel now, so that the first
    ``compressedDepth`` frame does not pay for it; nothing without the kernels."""
    from rmmss_core import kernels
    if kernels.enabled():
        decode_rvl(np.frombuffer(encode_rvl(np.array([[0, 1000], [2000, 0]], np.uint16)), np.uint8), "warm-up")


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
