"""Event accumulation into a 3-channel event image (MUSES-style polarity counts).

Timestamps are in seconds (any epoch, float64 recommended); the window is
``t_end - window_s < t <= t_end``. Polarity ``p > 0`` is positive, ``p <= 0`` negative
(0/1 and -1/+1 conventions both work).
"""
from __future__ import annotations

import numpy as np

from rmmss_core.encodings.common import finish
from rmmss_core.spec import EventEncoding


def accumulate_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray, t_end: float,
                      height: int, width: int, enc: EventEncoding = EventEncoding(),
                      quantize: bool = True) -> np.ndarray:
    """Accumulate events (arrays of length N) in the window before ``t_end`` into ``H x W x 3``.

    Channels per ``enc.channels``: ``pos`` / ``neg`` = event count / count_scale clipped to 1,
    ``time_surface`` = exp(-(t_end - t_last) / tau_s) of the latest event per pixel (0 if none),
    ``zero``. Events outside the image or the window are ignored. Returns float32 ``H x W x 3``
    in [0, 1], on the 1/255 grid if ``quantize``.
    """
    n = len(x)
    if not (len(y) == n and len(t) == n and len(p) == n):
        raise ValueError(f"event arrays differ in length: x {n}, y {len(y)}, t {len(t)}, p {len(p)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"event image size must be positive, got {height} x {width}")
    xi = np.asarray(x).astype(np.int64, copy=False)
    yi = np.asarray(y).astype(np.int64, copy=False)
    tt = np.asarray(t, dtype=np.float64)
    keep = ((xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            & (tt > t_end - enc.window_s) & (tt <= t_end))
    idx = yi[keep] * width + xi[keep]
    pos = np.asarray(p)[keep] > 0
    npix = height * width
    out = np.zeros((npix, 3), dtype=np.float32)
    for c, name in enumerate(enc.channels):
        if name == "pos":
            out[:, c] = np.bincount(idx[pos], minlength=npix) / enc.count_scale
        elif name == "neg":
            out[:, c] = np.bincount(idx[~pos], minlength=npix) / enc.count_scale
        elif name == "time_surface":
            out[:, c] = _time_surface(idx, tt[keep], t_end, npix, enc.tau_s)
    return finish(out.reshape(height, width, 3), quantize)


def _time_surface(idx: np.ndarray, t: np.ndarray, t_end: float, npix: int, tau: float) -> np.ndarray:
    last = np.full(npix, -np.inf)
    np.maximum.at(last, idx, t)
    hit = np.isfinite(last)
    ts = np.zeros(npix)
    ts[hit] = np.exp(-(t_end - last[hit]) / tau)
    return ts
