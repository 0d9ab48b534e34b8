"""Compiled kernels for the per-frame hot loops of the node (issue #14's CPU path), with numba.

Each kernel has a numpy reference next to its caller and gives bit-identical results to it (the
same float64 operations in the same order; numba does not contract a multiply and an add into an
FMA unless ``fastmath`` is asked for, and no kernel asks): ``test/test_kernels.py`` runs both on
adversarial inputs. The kernels are optional: without numba, or with the environment variable
``RMMSS_KERNELS=0``, every caller uses its numpy reference (what the GPU machine, which has no
numba, runs). What they buy is recorded by ``make bench`` (docs/bench/node.md).

- :mod:`rmmss_core.kernels.lidar`: transform, cull, project and keep the nearest return per pixel
  (``rmmss_core.encodings.lidar.lidar_returns``);
- :mod:`rmmss_core.kernels.planes`: 8-bit codes -> normalised float32 planes (table lookups and
  the sparse LiDAR scatter of ``rmmss_core.preprocess.fit_normalize_codes``, the depth table of
  ``rmmss_ros.conversions.depth_codes``).

Compilation: each kernel is compiled on first use and cached on disk (numba ``cache=True``:
``__pycache__`` next to this file, else numba's user cache directory); :func:`warm_up` compiles or
loads all of them (the node calls it at start-up so that the first frame does not pay for it).
Kernels release the GIL (``nogil``) and run on the calling thread only (no numba thread pool: the
node's executor and OpenCV's threads keep the other cores).
"""
from __future__ import annotations

import os
from contextlib import contextmanager

_STATE: dict[str, object] = {"checked": False, "ok": False, "why": ""}


def _check() -> None:
    if _STATE["checked"]:
        return
    _STATE["checked"] = True
    if os.environ.get("RMMSS_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        _STATE["why"] = "disabled by RMMSS_KERNELS=0"
        return
    try:
        import numba  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure: the numpy references serve
        _STATE["why"] = f"numba is not importable ({type(e).__name__}: {e}); the numpy path serves"
        return
    _STATE["ok"] = True


def enabled() -> bool:
    """True when the compiled kernels are used (numba importable and not disabled)."""
    _check()
    return bool(_STATE["ok"])


def why_disabled() -> str:
    """Why the kernels are not used ("" when they are)."""
    _check()
    return str(_STATE["why"])


@contextmanager
def disabled():
    """Run the numpy references inside this block (tests compare the two paths with it)."""
    _check()
    saved = _STATE["ok"]
    _STATE["ok"] = False
    try:
        yield
    finally:
        _STATE["ok"] = saved


def warm_up() -> bool:
    """Compile (or load from the on-disk cache) every kernel for the argument types the node
    uses. Returns :func:`enabled`. Seconds on the first run after an install, ~0.1 s afterwards."""
    if not enabled():
        return False
    from rmmss_core.kernels import lidar, planes
    lidar.warm_up()
    planes.warm_up()
    return True
