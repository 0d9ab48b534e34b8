"""PNG reading and writing (Pillow) with errors that name the file and the problem.

Reads return numpy arrays: uint8 ``H x W`` (L / P modes as stored), ``H x W x 3`` (RGB),
``H x W x 4`` (RGBA); 16-bit PNGs return uint16 ``H x W``. Writes are atomic.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rmmss_core.utils.io import atomic_write_bytes


class DataError(ValueError):
    """A dataset file is missing, corrupt, of the wrong size or holds unexpected values.

    The message always names the file and the problem, so a failing DataLoader worker reports
    something actionable instead of a bare traceback.
    """


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a numpy array (see module docstring for dtypes and shapes)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file is missing")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode == "P":
                arr = np.asarray(im)  # palette index = the stored value (label maps)
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.uint16)
            elif im.mode in ("L", "RGB", "RGBA"):
                arr = np.asarray(im)
            elif im.mode == "LA":
                arr = np.asarray(im)[:, :, 0]
            else:
                arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{p}: corrupt or unreadable image ({e})") from e
    return np.array(arr, copy=True)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 ``H x W x 3``: RGBA drops alpha, 1-channel images are repeated."""
    a = read_png(path)
    if a.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit image, got {a.dtype}")
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    return a[:, :, :3]


def read_channel0(path: str | os.PathLike) -> np.ndarray:
    """Channel 0 of an 8-bit image as uint8 ``H x W`` (DELIVER labels: semantic PNG channel 0)."""
    a = read_png(path)
    if a.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit label image, got {a.dtype}")
    return a if a.ndim == 2 else a[:, :, 0]


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint8 ``H x W`` / ``H x W x 3`` / ``H x W x 4`` or uint16 ``H x W`` atomically as PNG."""
    a = np.ascontiguousarray(array)
    if a.dtype == np.uint16 and a.ndim == 2:
        im = Image.fromarray(a)
    elif a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        im = Image.fromarray(a)
    else:
        raise ValueError(f"{path}: cannot write a {a.dtype} array of shape {a.shape} as PNG "
                         "(uint8 H x W [x 3|4] or uint16 H x W)")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
