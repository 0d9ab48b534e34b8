"""8-bit codes -> normalised float32 network-input planes, compiled (numba).

Table lookups only: every value written is an entry of a 256-entry float32 table built by the
float path itself (``rmmss_core.preprocess.normalize_table``), so the results equal the numpy
references exactly (nothing is computed, only copied). Callers: the sparse LiDAR image of
``rmmss_core.preprocess.fit_normalize_codes`` (:func:`fill_scatter`), its single-plane (metric
depth) images (:func:`plane_lut3`) and the 16-bit depth table of
``rmmss_ros.conversions.depth_codes`` (:func:`take_u16`).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "boundscheck": False, "error_model": "numpy"}


@njit(**_JIT)
def _fill_scatter(out, table, idx, codes):  # pragma: no cover - compiled
    for c in range(out.shape[0]):
        plane = out[c]
        plane[:] = table[c, 0]
        for k in range(idx.shape[0]):
            plane[idx[k]] = table[c, codes[k, c]]


@njit(**_JIT)
def _plane_lut3(codes, table, out):  # pragma: no cover - compiled
    for i in range(codes.shape[0]):
        o0, o1, o2 = out[0, i], out[1, i], out[2, i]
        for j in range(codes.shape[1]):
            c = codes[i, j]
            o0[j] = table[0, c]
            o1[j] = table[1, c]
            o2[j] = table[2, c]


@njit(**_JIT)
def _take_u16(table, a, out):  # pragma: no cover - compiled
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = table[a[i, j]]


def plane_lut3(codes: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """One uint8 ``H x W`` code plane standing for all three channels (metric depth) -> ``out``
    float32 ``3 x H x W`` (C-contiguous) = ``table[c, codes]`` per channel, in one pass (instead
    of a lookup and two plane copies)."""
    _plane_lut3(codes, np.ascontiguousarray(table, dtype=np.float32), out)


def fill_scatter(out: np.ndarray, table: np.ndarray, idx: np.ndarray, codes: np.ndarray) -> None:
    """A sparse code image -> its normalised planes: ``out`` float32 ``3 x P`` (C-contiguous, P
    pixels) = ``table[c, 0]`` everywhere, ``table[c, codes[k, c]]`` at flat pixel ``idx[k]``.
    ``table`` float32 3 x 256, ``idx`` int64 M (each < P), ``codes`` uint8 M x 3."""
    _fill_scatter(out, np.ascontiguousarray(table, dtype=np.float32), np.asarray(idx, dtype=np.int64),
                  np.asarray(codes, dtype=np.uint8))


def take_u16(table: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``table[a]`` for a uint16 ``H x W`` image (any strides) and a uint8 table of 65536 entries
    -> uint8 ``H x W`` (``np.take``'s result)."""
    out = np.empty(a.shape, np.uint8)
    _take_u16(table, a, out)
    return out


def warm_up() -> None:
    """Compile (or load) the kernels for the node's argument types."""
    fill_scatter(np.empty((3, 4), np.float32), np.zeros((3, 256), np.float32), np.array([1]), np.zeros((1, 3), np.uint8))
    take_u16(np.zeros(65536, np.uint8), np.zeros((2, 2), np.uint16))
    plane_lut3(np.zeros((2, 2), np.uint8), np.zeros((3, 256), np.float32), np.empty((3, 2, 2), np.float32))
