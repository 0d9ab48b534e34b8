"""8-bit quantisation shared by every encoder, the dataset writer and the readers.

The one rule: a [0, 1] float image ``x`` is stored as ``uint8 = round(x * 255)`` and read back as
``uint8 / 255`` in float32. Rounding is ``np.rint`` of the float32 product (round half to even),
after clipping to [0, 1]; a GPU mirror must use the same (``torch.round`` also rounds half to even). ``quantize(x)`` goes through exactly those two functions, so an encoder
with ``quantize=True`` returns bit-identical values to what a reader decodes from the PNG.
"""
from __future__ import annotations

import numpy as np

_INV255 = np.float32(1.0 / 255.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float image (any shape) -> uint8 ``round(x * 255)``, values clipped to [0, 1] first."""
    x = np.asarray(img, dtype=np.float32)
    return np.rint(np.clip(x, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def from_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 image (any shape) -> float32 in [0, 1] (``x / 255``)."""
    u8 = np.asarray(img)
    if u8.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {u8.dtype}")
    out = u8.astype(np.float32)  # reads strided views (e.g. a bgr8 message reversed) in one pass
    return np.divide(out, np.float32(255.0), out=out)  # in place: same values as x / 255


def quantize(img: np.ndarray) -> np.ndarray:
    """Round a [0, 1] image to 1/255 steps: ``from_uint8(to_uint8(img))`` (float32, same shape)."""
    return from_uint8(to_uint8(img))


def encode_to_png_uint8(encoded: np.ndarray) -> np.ndarray:
    """An encoder's ``H x W x 3`` [0, 1] output -> the ``H x W x 3`` uint8 array the PNG stores.

    ``from_uint8(encode_to_png_uint8(e)) == e`` exactly when ``e`` was encoded with ``quantize=True``.
    """
    e = np.asarray(encoded)
    if e.ndim != 3 or e.shape[2] != 3:
        raise ValueError(f"encoded image must be H x W x 3, got shape {e.shape}")
    return to_uint8(e)


def encode_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 ``H x W x 3`` (RGB), ``H x W x 4`` (alpha dropped) or ``H x W`` (mono, repeated)
    -> float32 ``H x W x 3`` in [0, 1]. Already on the 1/255 grid, so no quantisation is needed."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"RGB image must be uint8, got dtype {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"RGB image must be H x W x 3 (or mono H x W), got shape {np.shape(img)}")
    return from_uint8(a)


def finish(img: np.ndarray, quantize_8bit: bool) -> np.ndarray:
    """Clip an encoder's float image to [0, 1], float32, and quantise it on request."""
    out = np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)
    return quantize(out) if quantize_8bit else out
