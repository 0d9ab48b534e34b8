"""What one frame set becomes on its way through the pipeline, and the per-modality error rule.

:class:`Prepared` (network inputs of one frame) is made by :meth:`Pipeline.prepare
<rmmss_ros.pipeline.pipeline.Pipeline.prepare>` on the host and by
:class:`~rmmss_ros.pipeline.gpu.DevicePreparer` on a device; :class:`Result` is what the node and
replay publish or score. :func:`try_modality` is how every path turns one modality's failure into
an entry of ``errors`` (that modality then counts as missing for the frame) instead of an exception.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmmss_core.modalities import MODALITIES
from rmmss_ros.conversions import ConversionError


@dataclass
class Prepared:
    """Network inputs for one frame: ``inputs`` {m: 1 x 3 x h x w}, ``available`` bool 1 x 4."""

    stamp_ns: int
    inputs: dict[str, Any]
    available: np.ndarray
    out_size: tuple[int, int]  # (H, W) of the published mask: the camera resolution
    rgb: np.ndarray | None
    errors: dict[str, str]
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def used(self) -> tuple[str, ...]:
        return tuple(m for m, a in zip(MODALITIES, self.available[0], strict=True) if a)


@dataclass
class Result:
    """mask ``H x W`` uint8 class ids (None if no modality was usable), color ``H x W x 3`` uint8 or
    None, the modalities used, per-modality errors (malformed input), timings in ms, and confidence
    ``H x W`` uint8 (the winning class's softmax probability x 255, rmmss_core.deploy.confidence;
    0 outside the image after a crop) when ``PipelineParams.confidence`` asks for it."""

    stamp_ns: int
    mask: np.ndarray | None
    color: np.ndarray | None
    used_modalities: tuple[str, ...]
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # configuration that looks wrong (said once)
    confidence: np.ndarray | None = None


def error_text(name: str, e: BaseException) -> str:
    """What ``errors[name]`` says about ``e``: its own text when it already names the input (a
    ConversionError, or a message starting with ``name:``), else ``name: Type: text``."""
    text = str(e)
    named = isinstance(e, ConversionError) or text.startswith(f"{name}:")
    return text if named else f"{name}: {type(e).__name__}: {text}"


def try_modality(errors: dict[str, str], name: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with ``errors[name]`` set when it raises or returns a float array with
    NaN/Inf: one bad message must only cost its own modality."""
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - one bad message must only cost its own modality
        errors[name] = error_text(name, e)
        return None
    if isinstance(out, np.ndarray) and out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        errors[name] = f"{name}: encoded image has NaN or Inf"
        return None
    return out
