"""Shared helpers for the message conversions."""
from __future__ import annotations

from typing import Any

import numpy as np


class ConversionError(ValueError):
    """A message that cannot be converted; the text names the input and what is wrong."""


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (``sec``, ``nanosec``) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def as_bytes_view(data: Any, what: str) -> np.ndarray:
    """A message's ``data`` (array.array, bytes, memoryview, list or numpy) as a flat uint8 array,
    without a copy where the buffer protocol allows it."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError) as e:
            raise ConversionError(f"{what}: data is not a byte buffer ({type(data).__name__}): {e}") from None
