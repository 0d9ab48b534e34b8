"""8-bit codes -> normalised float32 network-input planes, compiled (numba).

Table lookups only: every value written is an entry of a 256-entry float32 table built by the
float path itself (``rmmss_core.preprocess.normalize_table``), so the results equal the numpy
references exactly (nothing is computed, only copied). Callers: the sparse LiDAR image of
``rmmss_core.preprocess.fit_normalize_codes`` (:func:`fill_scatter`) and the 16-bit depth table of
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
def _take_u16(table, a, out):  # pragma: no cover - compiled
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = table[a[i, j]]


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
