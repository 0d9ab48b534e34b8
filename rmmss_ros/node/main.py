"""Entry point of the ``perception_node`` console script: arm the start-up stop handlers first.

``rmmss_ros.node.perception_node`` imports rclpy, torch and the model pipeline (1-2 s on a loaded
machine); a SIGTERM in that time used to kill the node with exit code 143. This module imports
nothing heavy: it arms ``rmmss_core.early_stop`` (SIGINT/SIGTERM -> exit 0, quietly) and only then
imports and runs the node. The remaining window (interpreter start-up, ``site`` hooks incl. the
``ros_wheels_bootstrapper`` re-exec) is documented in ``rmmss_core.early_stop``.
"""
from __future__ import annotations

import sys

from rmmss_core import early_stop


def main(args: list[str] | None = None) -> int:
    early_stop.install()
    try:
        from rmmss_ros.node import perception_node

        return perception_node.main(args)
    except early_stop.EarlyStop:
        return 0


if __name__ == "__main__":
    sys.exit(main())
