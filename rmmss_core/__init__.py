"""rmmss_core: robust multi-modal semantic segmentation (PyTorch library and offline CLI).

No ROS imports anywhere in this package: the ROS 2 node (`rmmss_ros`) is a thin shell around it.
"""
from rmmss_core.modalities import MODALITIES, NUM_MODALITIES, SUBSETS

__version__ = "0.1.0"
__all__ = ["MODALITIES", "NUM_MODALITIES", "SUBSETS", "__version__"]
