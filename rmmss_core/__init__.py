"""rmmss_core: robust multi-modal semantic segmentation (PyTorch library and offline CLI).

No ROS imports anywhere in this package: the ROS 2 node (`rmmss_ros`) is a thin shell around it.
Importing the package is light (no torch): ``MODALITIES``, ``NUM_MODALITIES`` and ``SUBSETS`` load
``rmmss_core.modalities`` on first use (PEP 562), so entry points (``rmmss``, ``perception_node``)
can install their signal handlers before torch is imported (``rmmss_core.early_stop``).
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["MODALITIES", "NUM_MODALITIES", "SUBSETS", "__version__"]


def __getattr__(name: str):
    if name in ("MODALITIES", "NUM_MODALITIES", "SUBSETS"):
        from rmmss_core import modalities

        return getattr(modalities, name)
    raise AttributeError(f"module 'rmmss_core' has no attribute {name!r}")
