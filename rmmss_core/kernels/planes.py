"""8-bit codes -> normalised float32 network-input planes, compiled (numba).

Table lookups only: every value written is an entry of a 256-entry float32 table built by the
float path itself (``rmmss_core.preprocess.normalize_table``), so the results equal the numpy
references exactly (nothing is computed, only copied). Callers: the sparse LiDAR image of
``rmmss_core.preprocess.fit_normalize_codes`` (:func:`fill_scatter`), its nearest-resampled dense
images (:func:`remap_lut`: crop, nearest resize, letterbox padding and lookup in one pass) and the
16-bit depth table of
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
def _remap(src, rows, cols, px, py, table, out):  # pragma: no cover - compiled
    h, w = out.shape[1], out.shape[2]
    single = src.ndim == 2
    for c in range(3):
        t0 = table[c, 0]
        for i in range(h):
            o = out[c, i]
            ri = i - py
            if ri < 0 or ri >= rows.shape[0]:
                o[:] = t0
                continue
            sr = src[rows[ri]]
            for j in range(px):
                o[j] = t0
            for j in range(cols.shape[0]):
                o[px + j] = table[c, sr[cols[j]] if single else sr[cols[j], c]]
            for j in range(px + cols.shape[0], w):
                o[j] = t0


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


def remap_lut(src: np.ndarray, rows: np.ndarray, cols: np.ndarray, px: int, py: int, table: np.ndarray,
              out: np.ndarray) -> None:
    """Nearest resampling, letterbox padding and normalisation of an 8-bit code image in one pass:
    ``out[c, py + i, px + j] = table[c, src[rows[i], cols[j], c]]`` (``src`` uint8 ``H x W x 3``,
    any strides, or ``H x W`` standing for all three channels), ``table[c, 0]`` (code 0, the
    padding) outside the ``len(rows) x len(cols)`` box. ``rows`` / ``cols`` int64: source row /
    column of each output row / column (torch's ``nearest`` rule, from ``nearest_index_map``).
    ``out`` float32 ``3 x h x w`` C-contiguous."""
    _remap(src, np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int64), int(px),
           int(py), np.ascontiguousarray(table, dtype=np.float32), out)


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
    for src in (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8)[:, :, ::-1]):
        remap_lut(src, np.array([0, 2]), np.array([1, 3]), 1, 0, np.zeros((3, 256), np.float32),
                  np.empty((3, 2, 4), np.float32))
